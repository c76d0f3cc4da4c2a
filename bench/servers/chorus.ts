/**
 * Chorus under test: the built server (packages/server/dist, so `tsc -b` must have run, which
 * `npm run bench*` does), one app, no logging, and the per-app limits that would refuse a
 * benchmark's load switched off (connections per IP, message rate). `maxPendingBytes` (the
 * slow-consumer cap) is 16 MiB so that a burst never disconnects a subscriber, unless
 * BENCH_CHORUS_MAX_PENDING_BYTES says otherwise (the slow-readers scenario runs with the
 * production default). BENCH_CHORUS_REDIS_URL puts the node on the Redis engine (bench:soak
 * --redis, bench:scale). BENCH_CHORUS_HISTORY_SIZE sets `history.size` (the `chorus-history-off`
 * peer: 0).
 *
 * To see where memory goes (never on in a measured run):
 * - BENCH_TRACE_GC=1 prints V8's --trace-gc lines (each scavenge and mark-compact, its pause);
 * - BENCH_HEAP_PROF=<file> writes a sampling heap profile (open it in Chrome DevTools' Memory
 *   tab) of 8 s starting BENCH_HEAP_PROF_AT ms (default 14000) after start: every allocation
 *   sampled, also those collected since, unless BENCH_HEAP_PROF_ALL=0 (only what is still alive).
 *
 * Run: node --import tsx bench/servers/chorus.ts   (prints {"ready":true,"port":…} when listening)
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { pathToFileURL } from 'node:url';
import v8 from 'node:v8';
import type * as ServerModule from '../../packages/server/dist/index.js';
import { BENCH_APP, BENCH_HOST } from '../lib/config.ts';
import { announceReady } from './harness.ts';

/**
 * BENCH_CHORUS_DIST points at another build of the server (an A/B copy of packages/server/dist
 * with a change under test, placed somewhere inside the repo so that its imports resolve).
 */
const distUrl = process.env.BENCH_CHORUS_DIST ? pathToFileURL(process.env.BENCH_CHORUS_DIST).href : new URL('../../packages/server/dist/index.js', import.meta.url).href;
const { startServer } = (await import(distUrl)) as typeof ServerModule;

const maxPendingBytes = Number(process.env.BENCH_CHORUS_MAX_PENDING_BYTES) || 16 * 1024 * 1024;
/** BENCH_CHORUS_METRICS=off: `metrics.enabled: false` (the `chorus-metrics-off` peer). */
const metrics = process.env.BENCH_CHORUS_METRICS !== 'off';
/** With metrics on, /metrics is scraped this often (Prometheus's default is 15 s; 1 s is harsher); 0: never. */
const scrapeEveryMs = Number(process.env.BENCH_CHORUS_SCRAPE_MS ?? 1000);

if (process.env.BENCH_TRACE_GC) v8.setFlagsFromString('--trace-gc');
const server = await startServer({
  port: 0,
  host: BENCH_HOST,
  logLevel: 'silent',
  apps: [
    {
      ...BENCH_APP,
      limits: { maxPendingBytes, maxConnections: 1_000_000, maxConnectionsPerIp: 1_000_000, messagesPerSecond: 0 },
    },
  ],
  heartbeatIntervalMs: 60_000,
  ...(process.env.BENCH_CHORUS_HISTORY_SIZE ? { history: { size: Number(process.env.BENCH_CHORUS_HISTORY_SIZE) } } : {}),
  // Only when off: a build from before metrics existed (BENCH_CHORUS_DIST) does not know the option.
  ...(metrics ? {} : { metrics: { enabled: false } }),
  // bench:soak --redis and bench:scale: nodes sharing one redis-server (its URL).
  ...(process.env.BENCH_CHORUS_REDIS_URL ? { engine: { type: 'redis' as const, url: process.env.BENCH_CHORUS_REDIS_URL } } : {}),
  // The Yjs scenario unloads its rooms quickly, to weigh the stored documents (scenarios/yjs.ts).
  ...(process.env.BENCH_CHORUS_YJS_IDLE_MS ? { yjs: { idleUnloadMs: Number(process.env.BENCH_CHORUS_YJS_IDLE_MS) } } : {}),
});
announceReady(server.port);
if (metrics && scrapeEveryMs > 0) {
  // Scraped from this process, so the scraper's own CPU counts against Chorus too; once at once,
  // as Prometheus does when a target appears.
  const scrape = (): void => {
    fetch(`http://${BENCH_HOST}:${server.port}/metrics`)
      .then((response) => response.text())
      .catch((error: unknown) => process.stderr.write(`metrics scrape failed: ${String(error)}\n`));
  };
  scrape();
  setInterval(scrape, scrapeEveryMs).unref();
}
if (process.env.BENCH_HEAP_PROF) sampleHeap(process.env.BENCH_HEAP_PROF, Number(process.env.BENCH_HEAP_PROF_AT ?? 14_000), process.env.BENCH_HEAP_PROF_ALL !== '0');

function sampleHeap(file: string, startAtMs: number, includeCollected: boolean): void {
  const session = new Session();
  session.connect();
  const sample = async (): Promise<void> => {
    // The two include flags are V8's (Chrome 100+); Node's typings do not list them yet.
    const options = { samplingInterval: 2048, includeObjectsCollectedByMajorGC: includeCollected, includeObjectsCollectedByMinorGC: includeCollected };
    await session.post('HeapProfiler.startSampling', options as { samplingInterval: number });
    await new Promise((resolve) => setTimeout(resolve, 8000));
    const { profile } = await session.post('HeapProfiler.stopSampling');
    writeFileSync(file, JSON.stringify(profile));
  };
  setTimeout(() => void sample().catch((error: unknown) => process.stderr.write(`heap sampling failed: ${String(error)}\n`)), startAtMs).unref();
}
