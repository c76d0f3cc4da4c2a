/**
 * Bun.serve pub/sub under test (uWebSockets inside). Runs under Bun, not Node:
 *
 *   node_modules/.bin/bun bench/servers/bun.mjs   (prints {"ready":true,"port":…} when listening)
 *
 * Same URL shape as a Chorus raw channel (`/v4/{channel}?api_key=…`). Each socket subscribes to
 * its channel's topic on open; every message is relayed with `ws.publish(topic, message)`,
 * which with `publishToSelf: false` (the default, set explicitly) reaches every other
 * subscriber: `server.publish` would echo it to the sender too. Compression off. Bun's default
 * backpressure handling stays (16 MiB per socket, then messages to that socket are dropped).
 *
 * Plain JavaScript on purpose: the repo's TypeScript setup has no Bun types. It speaks the
 * harness protocol of harness.ts itself (ready line; `cpu` and `mem` commands on stdin; exit
 * when stdin closes). The app key must match bench/lib/config.ts (BENCH_APP.key).
 */
/* global Bun, URL, Response, process */
import { createInterface } from 'node:readline';

const HOST = '127.0.0.1';
const API_KEY = 'bench-key-123';
const RAW_PATH = /^\/v[34]\/([^/]+)$/;

const server = Bun.serve({
  hostname: HOST,
  port: 0,
  fetch(req, srv) {
    const url = new URL(req.url);
    const match = RAW_PATH.exec(url.pathname);
    if (!match || url.searchParams.get('api_key') !== API_KEY) return new Response('unknown api key or channel', { status: 403 });
    if (srv.upgrade(req, { data: { channel: decodeURIComponent(match[1]) } })) return undefined;
    return new Response('WebSocket upgrade expected', { status: 426 });
  },
  websocket: {
    perMessageDeflate: false,
    publishToSelf: false,
    // The load generator answers pings; idle connections are what the idle-memory run measures.
    idleTimeout: 0,
    open(ws) {
      ws.subscribe(ws.data.channel);
    },
    message(ws, message) {
      ws.publish(ws.data.channel, message);
    },
  },
});

process.stdout.write(`${JSON.stringify({ ready: true, port: server.port, pid: process.pid })}\n`);

const commands = createInterface({ input: process.stdin });
commands.on('line', (line) => {
  const command = line.trim();
  if (command === 'cpu') {
    const usage = process.cpuUsage();
    process.stdout.write(`${JSON.stringify({ cpu: { user: usage.user / 1e6, system: usage.system / 1e6 } })}\n`);
  } else if (command === 'mem') {
    Bun.gc(true);
    Bun.gc(true);
    const usage = process.memoryUsage();
    process.stdout.write(`${JSON.stringify({ mem: { rss: usage.rss, heapUsed: usage.heapUsed, gc: true } })}\n`);
  }
});
commands.on('close', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
