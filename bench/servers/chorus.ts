/**
 * Chorus under test: the built server (packages/server/dist, so `tsc -b` must have run, which
 * `npm run bench:*` does), one app, no logging, a large slow-consumer limit so that a burst in
 * the benchmark never disconnects a subscriber.
 *
 * Run: node --import tsx bench/servers/chorus.ts   (prints {"ready":true,"port":…} when listening)
 */
import { startServer } from '../../packages/server/dist/index.js';
import { BENCH_APP, BENCH_HOST } from '../lib/config.ts';
import { announceReady } from './harness.ts';

const server = await startServer({
  port: 0,
  host: BENCH_HOST,
  logLevel: 'silent',
  // Benchmarks open thousands of connections from one address and publish at saturation: lift
  // the per-IP, per-app and rate limits that protect a public server.
  apps: [{ ...BENCH_APP, limits: { maxPendingBytes: 16 * 1024 * 1024, maxConnections: 1_000_000, maxConnectionsPerIp: 1_000_000, messagesPerSecond: 0 } }],
  heartbeatIntervalMs: 60_000,
});
announceReady(server.port);
