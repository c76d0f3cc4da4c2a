/**
 * Chorus under test: the built server (packages/server/dist, so `tsc -b` must have run, which
 * `npm run bench*` does), one app, no logging, and the per-app limits that would refuse a
 * benchmark's load switched off (connections per IP, message rate). `maxPendingBytes` (the
 * slow-consumer cap) is 16 MiB so that a burst never disconnects a subscriber, unless
 * BENCH_CHORUS_MAX_PENDING_BYTES says otherwise (the slow-readers scenario runs with the
 * production default).
 *
 * Run: node --import tsx bench/servers/chorus.ts   (prints {"ready":true,"port":…} when listening)
 */
import { pathToFileURL } from 'node:url';
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
  // The Yjs scenario unloads its rooms quickly, to weigh the stored documents (scenarios/yjs.ts).
  ...(process.env.BENCH_CHORUS_YJS_IDLE_MS ? { yjs: { idleUnloadMs: Number(process.env.BENCH_CHORUS_YJS_IDLE_MS) } } : {}),
});
announceReady(server.port);
