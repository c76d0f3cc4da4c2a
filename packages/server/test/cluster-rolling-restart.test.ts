/**
 * A rolling restart of a two-node cluster under load, with real parts: two `chorus serve`
 * processes on a real redis-server, behind a TCP balancer that health-checks /health, the real
 * SDK (@chorus/client) as subscribers and as a publisher that publishes continuously and counts
 * only acknowledged publications, pusher-js through the balancer, and raw and Pusher-protocol
 * sockets straight on the nodes. SIGTERM node
 * A, start it again, then the same for node B: every subscriber must end with every acknowledged
 * publication exactly once, in order, and the drains must have spread their closes over
 * drainWindowMs with each dialect's "reconnect elsewhere" code.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import WebSocket from 'ws';
import { createClient, type ChorusClient } from '../../client/src/index.ts';
import { TEST_APP, TestClient, settle } from './helpers.ts';
import { Balancer, Node } from './cluster.ts';
import { Pusher, type PusherClient } from './pusher-js.ts';
import { TestRedis } from './redis.ts';

const DRAIN_WINDOW_MS = 1500;
const SUBSCRIBERS = 24;
const CHANNEL = 'rolling';

const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

interface Subscriber {
  readonly client: ChorusClient;
  readonly numbers: number[];
  recoveryFailures: number;
  /** performance.now() of each disconnect and each (re)connect. */
  readonly disconnects: number[];
  readonly connects: number[];
}

async function subscriber(port: number): Promise<Subscriber> {
  const client = createClient(`ws://127.0.0.1:${port}`, { key: TEST_APP.key, WebSocket, minDelayMs: 20, maxDelayMs: 500 });
  cleanups.push(() => client.close());
  const sub: Subscriber = { client, numbers: [], recoveryFailures: 0, disconnects: [], connects: [] };
  client.on('disconnected', () => sub.disconnects.push(performance.now()));
  client.on('connected', () => sub.connects.push(performance.now()));
  const channel = client.channel(CHANNEL);
  channel.on('n', (data) => sub.numbers.push(data as number));
  channel.on('recovery-failed', () => sub.recoveryFailures++);
  await channel.subscribe();
  return sub;
}

/** pusher-js through the balancer: at-most-once, it must follow its 4200 to the other node. */
interface PusherListener {
  readonly client: PusherClient;
  readonly numbers: number[];
  connects: number;
}

async function pusherListener(port: number): Promise<PusherListener> {
  const client = new Pusher(TEST_APP.key, { cluster: 'local', wsHost: '127.0.0.1', wsPort: port, forceTLS: false, enabledTransports: ['ws'] });
  cleanups.push(() => client.disconnect());
  const listener: PusherListener = { client, numbers: [], connects: 0 };
  client.connection.bind('connected', () => listener.connects++);
  const channel = client.subscribe(CHANNEL);
  channel.bind('n', (data: unknown) => listener.numbers.push(Number(data)));
  await new Promise((resolve) => channel.bind('pusher:subscription_succeeded', resolve));
  return listener;
}

/** Raw and Pusher-protocol sockets straight on a node, recording their close code and time. */
interface Watched {
  readonly dialect: 'raw' | 'pusher';
  readonly client: TestClient;
  closedAt?: number;
}

async function watchers(node: Node, count: number): Promise<Watched[]> {
  const all: Watched[] = [];
  for (let i = 0; i < count; i++) {
    for (const [dialect, path] of [['raw', `/v4/${CHANNEL}?api_key=${TEST_APP.key}`], ['pusher', `/app/${TEST_APP.key}?protocol=7`]] as const) {
      const client = await TestClient.open(`ws://127.0.0.1:${node.port}${path}`);
      cleanups.push(() => client.ws.terminate());
      const watched: Watched = { dialect, client };
      client.ws.once('close', () => (watched.closedAt = performance.now()));
      all.push(watched);
    }
  }
  return all;
}

async function waitFor(predicate: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await settle(20);
  }
}

const spread = (times: number[]): number => (times.length === 0 ? 0 : Math.max(...times) - Math.min(...times));

describe('rolling restart of a two-node cluster', { timeout: 120_000 }, () => {
  it('SIGTERM A, restart it, SIGTERM B, restart it, under load: every acknowledged publication reaches every subscriber once, in order; closes spread over the window', async () => {
    const redis = await TestRedis.start();
    cleanups.push(() => redis.stop());
    const config = { history: { size: 20_000 }, drainWindowMs: DRAIN_WINDOW_MS, shutdownTimeoutMs: 3000 };
    const startNode = async (): Promise<Node> => {
      const node = await Node.start(redis.url, config);
      cleanups.push(() => node.stop('SIGKILL'));
      return node;
    };
    const nodes = [await startNode(), await startNode()];
    const balancer = await Balancer.start(nodes.map((n) => n.port), { healthCheckMs: 50 });
    cleanups.push(() => balancer.close());

    const subscribers: Subscriber[] = [];
    for (let i = 0; i < SUBSCRIBERS; i++) subscribers.push(await subscriber(balancer.port));
    const pusherListeners = [await pusherListener(balancer.port), await pusherListener(balancer.port)];

    // The publisher: one publication at a time, counted once acknowledged. A refused publish is
    // retried with the same msgId, so a publish that did happen is not published twice.
    const publisher = createClient(`ws://127.0.0.1:${balancer.port}`, { key: TEST_APP.key, WebSocket, minDelayMs: 20, maxDelayMs: 500 });
    cleanups.push(() => publisher.close());
    const acknowledged: number[] = [];
    let publishing = true;
    const published = (async () => {
      const channel = publisher.channel(CHANNEL);
      for (let i = 1; publishing; i++) {
        for (;;) {
          try {
            await channel.publish('n', i, { msgId: `n-${i}` });
            break;
          } catch {
            await settle(50);
          }
        }
        acknowledged.push(i);
        await settle(2);
      }
    })();

    const drains: Array<{ node: string; ms: number; watched: Watched[]; sdkDisconnects: number[]; sdkReconnects: number[] }> = [];
    for (const [index, name] of [[0, 'A'], [1, 'B']] as const) {
      await waitFor(() => acknowledged.length >= 200 * (index + 1), 20_000, 'publications before the restart');
      const node = nodes[index] as Node;
      const watched = await watchers(node, 3);
      const before = performance.now();
      await node.stop('SIGTERM');
      const ms = performance.now() - before;
      assert.equal(node.child.exitCode, 0, `node ${name} exits 0 after its drain`);
      // The node's SDK clients reconnected through the balancer to the other node.
      const sdkDisconnects = subscribers.flatMap((s) => s.disconnects.filter((t) => t >= before));
      await waitFor(() => subscribers.every((s) => s.client.state === 'connected'), 10_000, `subscribers back after node ${name}'s drain`);
      const sdkReconnects = subscribers.flatMap((s) => s.connects.filter((t) => t >= before));
      drains.push({ node: name, ms, watched, sdkDisconnects, sdkReconnects });
      const restarted = await startNode();
      nodes[index] = restarted;
      balancer.backends = nodes.map((n) => n.port);
      await settle(300);
    }

    await waitFor(() => acknowledged.length >= 600, 20_000, 'publications after the restarts');
    publishing = false;
    await published;
    const total = acknowledged.length;
    await waitFor(() => subscribers.every((s) => s.numbers.length >= total), 20_000, `all ${total} publications at every subscriber`);
    await settle(200);

    const expected = Array.from({ length: total }, (_, i) => i + 1);
    assert.deepEqual(acknowledged, expected);
    for (const [i, s] of subscribers.entries()) {
      assert.equal(s.recoveryFailures, 0, `subscriber ${i} recovered every gap`);
      assert.deepEqual(s.numbers, expected, `subscriber ${i}: every acknowledged publication once, in order`);
    }

    // pusher-js reconnected through the balancer after each 4200 and kept receiving: what it got
    // is in order, without duplicates, and includes the last publication.
    for (const [i, p] of pusherListeners.entries()) {
      assert.ok(p.connects >= 2, `pusher-js ${i} reconnected (${p.connects} connects)`);
      assert.ok(p.numbers.every((n, k) => k === 0 || n > (p.numbers[k - 1] as number)), `pusher-js ${i}: in order, no duplicates`);
      assert.equal(p.numbers.at(-1), total, `pusher-js ${i} received the last publication`);
    }

    for (const drain of drains) {
      for (const w of drain.watched) assert.equal(w.client.closeCode, w.dialect === 'raw' ? 1001 : 4200, `${w.dialect} on node ${drain.node}`);
      // Every connection of the node (about half the SDK clients and the 6 watched sockets) was
      // closed over the window, not at once: their closes span most of it.
      const closes = [...drain.watched.map((w) => w.closedAt as number), ...drain.sdkDisconnects];
      assert.ok(drain.sdkDisconnects.length >= 3, `node ${drain.node} had SDK clients (${drain.sdkDisconnects.length})`);
      assert.ok(spread(closes) >= DRAIN_WINDOW_MS * 0.5, `node ${drain.node}: ${closes.length} closes spread over ${Math.round(spread(closes))} ms of ${DRAIN_WINDOW_MS}`);
      console.log(
        `rolling restart, node ${drain.node}: ${closes.length} connections closed over ${Math.round(spread(closes))} ms (window ${DRAIN_WINDOW_MS} ms); ` +
          `${drain.sdkReconnects.length} SDK reconnects over ${Math.round(spread(drain.sdkReconnects))} ms; SIGTERM to exit ${Math.round(drain.ms)} ms`,
      );
    }
    console.log(`rolling restart: ${total} acknowledged publications, each received once and in order by ${SUBSCRIBERS} SDK subscribers; pusher-js received ${pusherListeners.map((p) => p.numbers.length).join(' and ')} of them`);
  });
});
