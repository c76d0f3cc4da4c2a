/**
 * A connection holder: a child process of the benchmark that opens many idle WebSocket
 * connections and keeps them open (answering pings) until its stdin closes. Several holders,
 * each from its own source address, put more connections on a server than one process could
 * hold (20,000 open files per process here) and keep them off the benchmark's own fd budget.
 *
 * Started by holders.ts: node --import tsx bench/lib/holder-process.ts '<HolderConfig JSON>'
 * Prints JSON lines: {"progress":n} while connecting, then {"ready":true,"open":n} or
 * {"error":"…"}; answers a `status` line on stdin with {"status":{"open":n,"closed":n}} and, with
 * chat traffic (bench:scale), a `chat` line with {"chat":{"delivered","published","latencies"}}.
 */
import { createInterface } from 'node:readline';
import { BENCH_HOST } from './config.ts';
import { messagePayload, setClockOrigin, StampedFrames, SubscriberPool, nowMicros } from './loadgen.ts';
import { channelPath, findPeers } from './peers.ts';
import type { ChatStats, HolderConfig } from './holders.ts';

const config = JSON.parse(process.argv[2] ?? '{}') as HolderConfig;
const [peer] = findPeers([config.peer]);
const send = (message: unknown): void => void process.stdout.write(`${JSON.stringify(message)}\n`);
const chat = config.chat;
const firstConnection = config.firstConnection ?? 0;
/** Chat: latencies (µs) recorded since the last `chat` command. */
let latencies: number[] = [];
let published = 0;

let pool: SubscriberPool | undefined;
const commands = createInterface({ input: process.stdin });
commands.on('close', () => {
  pool?.close();
  process.exit(0);
});
commands.on('line', (line) => {
  const command = line.trim();
  if (command === 'status' && pool) send({ status: { open: pool.size - pool.closedCount, closed: pool.closedCount } });
  if (command === 'chat') {
    const stats: ChatStats = { delivered: pool?.delivered ?? 0, published, latencies };
    latencies = [];
    send({ chat: stats });
  }
});

/** Chat: the publishers among this holder's connections each send `perSecond` a second, taking turns so the load is even. */
function startPublishing(settings: NonNullable<HolderConfig['chat']>, clients: SubscriberPool): void {
  const publishers = clients.clients.filter((_, i) => (firstConnection + i) % settings.publishEvery === 0);
  if (publishers.length === 0) return;
  const frames = new StampedFrames(messagePayload('raw', settings.size, true));
  const rate = publishers.length * settings.perSecond;
  const startedAt = performance.now();
  let turn = 0;
  setInterval(() => {
    const due = Math.floor(((performance.now() - startedAt) / 1000) * rate);
    for (; published < due; published++) {
      const publisher = publishers[turn++ % publishers.length]!;
      if (!publisher.closed) publisher.send(frames.next());
    }
  }, 10);
}

if (!peer) {
  send({ error: `unknown peer ${config.peer}` });
} else {
  if (chat) setClockOrigin(chat.clockOrigin);
  const probe = chat ? { every: 1, onStamp: (sent: number) => void latencies.push(nowMicros() - sent) } : undefined;
  const prefix = chat ? 'chat' : 'idle';
  let lastReport = performance.now();
  try {
    pool = await SubscriberPool.open(
      (index) => {
        if (performance.now() - lastReport > 1000) {
          lastReport = performance.now();
          send({ progress: index });
        }
        const connection = firstConnection + index;
        const channel = `${prefix}-${config.firstChannel + Math.floor((config.ports ? connection : index) / config.perChannel)}`;
        const port = config.ports ? config.ports[connection % config.ports.length]! : config.port;
        return { host: BENCH_HOST, port, path: channelPath(peer, channel), dialect: peer.dialect, localAddress: config.localAddress };
      },
      config.count,
      // Chat holders (bench:scale) open tens of thousands of connections on a shared box: a handshake stalled past the server's headersTimeoutMs is tried again.
      { concurrency: 128, probe, retries: chat ? 3 : 0 },
    );
    if (chat) startPublishing(chat, pool);
    send({ ready: true, open: pool.size, retried: pool.retried });
  } catch (error) {
    send({ error: error instanceof Error ? error.message : String(error) });
  }
}
