/**
 * A connection holder: a child process of the benchmark that opens many idle WebSocket
 * connections and keeps them open (answering pings) until its stdin closes. Several holders,
 * each from its own source address, put more connections on a server than one process could
 * hold (20,000 open files per process here) and keep them off the benchmark's own fd budget.
 *
 * Started by holders.ts: node --import tsx bench/lib/holder-process.ts '<HolderConfig JSON>'
 * Prints JSON lines: {"progress":n} while connecting, then {"ready":true,"open":n} or
 * {"error":"…"}; answers a `status` line on stdin with {"status":{"open":n,"closed":n}}.
 */
import { createInterface } from 'node:readline';
import { BENCH_HOST } from './config.ts';
import { SubscriberPool } from './loadgen.ts';
import { channelPath, findPeers } from './peers.ts';
import type { HolderConfig } from './holders.ts';

const config = JSON.parse(process.argv[2] ?? '{}') as HolderConfig;
const [peer] = findPeers([config.peer]);
const send = (message: unknown): void => void process.stdout.write(`${JSON.stringify(message)}\n`);

let pool: SubscriberPool | undefined;
const commands = createInterface({ input: process.stdin });
commands.on('close', () => {
  pool?.close();
  process.exit(0);
});
commands.on('line', (line) => {
  if (line.trim() === 'status' && pool) send({ status: { open: pool.size - pool.closedCount, closed: pool.closedCount } });
});

if (!peer) {
  send({ error: `unknown peer ${config.peer}` });
} else {
  let lastReport = performance.now();
  try {
    pool = await SubscriberPool.open((index) => {
      if (performance.now() - lastReport > 1000) {
        lastReport = performance.now();
        send({ progress: index });
      }
      const channel = `idle-${config.firstChannel + Math.floor(index / config.perChannel)}`;
      return { host: BENCH_HOST, port: config.port, path: channelPath(peer, channel), dialect: peer.dialect, localAddress: config.localAddress };
    }, config.count, { concurrency: 128 });
    send({ ready: true, open: pool.size });
  } catch (error) {
    send({ error: error instanceof Error ? error.message : String(error) });
  }
}
