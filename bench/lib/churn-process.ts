/**
 * A churn helper of `npm run bench:soak`: a child process that opens short-lived clients at a
 * steady rate, over every dialect Chorus speaks, and ends each one after a random lifetime —
 * most with a close frame, the rest by cutting the socket (destroy without a close frame, or a
 * TCP reset). Each client does what a real one does in its dialect:
 *
 * - raw (`/v3/{channel}?api_key=…`, PieSocket-style): half with `presence=1&user=…`; one message;
 * - v1 (`/v1/connect?key=…`): `connect`, `subscribe` (half with `presence: true`), one `publish`,
 *   pipelined (the server runs them in order);
 * - pusher (`/app/{key}?protocol=7`): half on `presence-…` channels (signed `auth` and
 *   `channel_data`, as an app's auth endpoint would make them) sending one `client-` event,
 *   half on public channels;
 * - yjs (`/yjs/{room}?key=…`, optional): a sync step 1 with an empty state vector.
 *
 * Channels come from a fixed pool, so what a channel legitimately keeps (history, rosters, Yjs
 * documents) is bounded and anything that grows with the number of connections is a leak.
 *
 * Started by soak.ts through holders.ts's spawnHelper: node --import tsx bench/lib/churn-process.ts '<ChurnConfig JSON>'
 * Prints `{"stats":{…}}` (cumulative counters) every second; `pause` and `resume` on stdin stop
 * and restart new clients (those open end as planned); stops and exits when stdin closes.
 */
import { createHmac } from 'node:crypto';
import { createInterface } from 'node:readline';
import { BENCH_APP, BENCH_HOST, pusherAppPath } from './config.ts';
import { maskedFrame, maskedTextFrame, RawWebSocket, type Endpoint } from './loadgen.ts';

export type ChurnDialect = 'raw' | 'v1' | 'pusher' | 'yjs';

export interface ChurnConfig {
  /** Server ports; client i goes to ports[i % length]. */
  ports: number[];
  /** Source addresses, used in turn (each has ~28,000 ports; TIME_WAIT keeps them for 60 s). */
  addresses: string[];
  /** New clients per second. */
  rate: number;
  /** Lifetime of a client in ms, uniformly between these. */
  lifetimeMs: [number, number];
  dialects: ChurnDialect[];
  /** Size of the channel pool (and of the Yjs room pool, a tenth of it). */
  channels: number;
  /** Share of clients cut without a close frame (half of them with a TCP reset). */
  cutShare: number;
  /** Distinguishes this helper's clients (user ids) from the other helpers'. */
  id: number;
}

export interface ChurnStats {
  /** Connections started, upgraded, refused or failed, and ended by this helper. */
  started: number;
  opened: number;
  failed: number;
  ended: number;
  cut: number;
  /** Closed by the server before the client ended them (a close frame or a dropped socket). */
  closedByServer: number;
  /** Clients not started because too many handshakes were still in flight (the server fell behind). */
  skipped: number;
  open: number;
  /** The last few handshake errors, for the report. */
  errors: string[];
}

const TICK_MS = 20;
/**
 * Handshakes in flight at most; past that new clients are skipped (and counted): a server (or
 * a generator) that cannot keep up sees a steady load instead of a pile of timed-out handshakes.
 */
const MAX_PENDING = 300;
/** A clean close waits this long for the server's close before dropping the socket. */
const CLOSE_WAIT_MS = 2_000;
const CLOSE_NORMAL = maskedFrame(Buffer.from([0x03, 0xe8]), 0x8);
/** y-protocols: messageSync (0), syncStep1 (0), a state vector of 1 byte: 0 clients. */
const YJS_SYNC_STEP_1 = maskedFrame(Buffer.from([0, 0, 1, 0]), 0x2);

const config = JSON.parse(process.argv[2] ?? '{}') as ChurnConfig;
const stats: ChurnStats = { started: 0, opened: 0, failed: 0, ended: 0, cut: 0, closedByServer: 0, skipped: 0, open: 0, errors: [] };
const live = new Set<RawWebSocket>();
let pending = 0;
let stopping = false;

function channelOf(index: number): string {
  return `soak-${index % config.channels}`;
}

function pusherPresenceAuth(channel: string, userId: string): (socketId: string) => { auth: string; channel_data: string } {
  const channelData = JSON.stringify({ user_id: userId, user_info: { name: userId } });
  return (socketId) => ({
    auth: `${BENCH_APP.key}:${createHmac('sha256', BENCH_APP.secret).update(`${socketId}:${channel}:${channelData}`).digest('hex')}`,
    channel_data: channelData,
  });
}

/** The endpoint of client `index` in `dialect`, and the frames it sends once open. */
function plan(index: number, dialect: ChurnDialect): { endpoint: Endpoint; frames: Buffer[] } {
  const base = { host: BENCH_HOST, port: config.ports[index % config.ports.length]!, localAddress: config.addresses[index % config.addresses.length] };
  const channel = channelOf(index);
  const user = `u${config.id}-${index}`;
  const presence = index % 2 === 0;
  const text = (value: unknown): Buffer => maskedTextFrame(Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)));
  switch (dialect) {
    case 'raw':
      return {
        endpoint: { ...base, path: `/v3/${channel}?api_key=${BENCH_APP.key}${presence ? `&presence=1&user=${user}` : ''}` },
        frames: [text({ event: 'chat', data: { from: user, text: 'hello' } })],
      };
    case 'v1':
      return {
        endpoint: { ...base, path: `/v1/connect?key=${BENCH_APP.key}` },
        frames: [
          text({ id: 1, type: 'connect', client: 'soak' }),
          text({ id: 2, type: 'subscribe', channel, presence }),
          text({ id: 3, type: 'publish', channel, event: 'chat', data: { from: user, text: 'hello' } }),
        ],
      };
    case 'pusher': {
      const pusherChannel = presence ? `presence-${channel}` : channel;
      return {
        endpoint: { ...base, path: pusherAppPath(), dialect: 'pusher', channel: pusherChannel, ...(presence ? { pusherAuth: pusherPresenceAuth(pusherChannel, user) } : {}) },
        frames: presence ? [text({ event: 'client-chat', channel: pusherChannel, data: { text: 'hello' } })] : [],
      };
    }
    case 'yjs':
      return { endpoint: { ...base, path: `/yjs/soak-${index % Math.max(1, Math.round(config.channels / 10))}?key=${BENCH_APP.key}` }, frames: [YJS_SYNC_STEP_1] };
  }
}

function startClient(index: number): void {
  const dialect = config.dialects[index % config.dialects.length]!;
  const { endpoint, frames } = plan(index, dialect);
  stats.started++;
  pending++;
  RawWebSocket.connect(endpoint).then(
    (ws) => {
      pending--;
      stats.opened++;
      if (stopping) return ws.close();
      live.add(ws);
      for (const frame of frames) ws.send(frame);
      let ended = false;
      ws.socket.once('close', () => {
        live.delete(ws);
        if (!ended) stats.closedByServer++;
      });
      const [min, max] = config.lifetimeMs;
      const lifetime = min + Math.random() * (max - min);
      setTimeout(() => {
        ended = true;
        if (ws.socket.destroyed) return;
        if (ws.frames.closeReceived) stats.closedByServer++;
        stats.ended++;
        const roll = Math.random();
        if (roll < config.cutShare / 2) {
          stats.cut++;
          ws.socket.resetAndDestroy();
        } else if (roll < config.cutShare) {
          stats.cut++;
          ws.socket.destroy();
        } else {
          ws.send(CLOSE_NORMAL);
          ws.socket.end();
          setTimeout(() => ws.socket.destroy(), CLOSE_WAIT_MS).unref();
        }
      }, lifetime);
    },
    (error: unknown) => {
      pending--;
      stats.failed++;
      const message = `${dialect}: ${error instanceof Error ? error.message : String(error)}`;
      if (stats.errors.length < 5 && !stats.errors.includes(message)) stats.errors.push(message);
    },
  );
}

let next = 0;
let startedAt = performance.now();
/** While paused (the soak's mid-run reading without clients) no client is started. */
let paused = false;
const ticker = setInterval(() => {
  if (paused) return;
  const due = Math.floor(((performance.now() - startedAt) / 1000) * config.rate);
  while (next < due) {
    if (pending >= MAX_PENDING) {
      stats.skipped += due - next;
      next = due;
      break;
    }
    startClient(next++);
  }
}, TICK_MS);

const reporter = setInterval(() => {
  stats.open = live.size;
  process.stdout.write(`${JSON.stringify({ stats })}\n`);
}, 1000);

const commands = createInterface({ input: process.stdin });
commands.on('line', (line) => {
  if (line.trim() === 'pause') paused = true;
  if (line.trim() === 'resume' && paused) {
    paused = false;
    // Carry on at the same rate from now, without catching up on the pause.
    startedAt = performance.now() - (next / config.rate) * 1000;
  }
});
commands.on('close', () => {
  stopping = true;
  clearInterval(ticker);
  clearInterval(reporter);
  for (const ws of live) ws.close();
  process.exit(0);
});
