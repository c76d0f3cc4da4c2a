/**
 * The Redis engine's failure modes, each against real processes and a real redis-server, with
 * the real SDK as the client: a numbered stream must arrive exactly once and in order, or the
 * client must be told it could not be recovered — never a silent loss, never a duplicate.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import WebSocket from 'ws';
import { ErrorCodes } from '@chorus/protocol';
import { createClient, type ChorusClient } from '../../client/src/index.ts';
import { TEST_APP, settle } from './helpers.ts';
import { Balancer, Node } from './cluster.ts';
import { TestRedis, freePort } from './redis.ts';
import { V1Client } from './v1-helpers.ts';

const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

function client(port: number): ChorusClient {
  const c = createClient(`ws://127.0.0.1:${port}`, { key: TEST_APP.key, WebSocket, minDelayMs: 20, maxDelayMs: 300 });
  cleanups.push(() => c.close());
  return c;
}

async function cluster(count: number): Promise<{ redis: TestRedis; nodes: Node[] }> {
  const redis = await TestRedis.start();
  // History must outlast a reconnect at full publishing speed (default 100 publications).
  const nodes = await Promise.all(Array.from({ length: count }, () => Node.start(redis.url, { history: { size: 2000 } })));
  cleanups.push(() => redis.stop(), ...nodes.map((n) => () => n.stop('SIGKILL')));
  return { redis, nodes };
}

interface Received {
  numbers: number[];
  recoveryFailures: number;
}

/** Subscribes and records the numbers published as event `n`. */
async function subscriber(c: ChorusClient, channel: string): Promise<Received> {
  const received: Received = { numbers: [], recoveryFailures: 0 };
  const ch = c.channel(channel);
  ch.on('n', (data) => received.numbers.push(data as number));
  ch.on('recovery-failed', () => received.recoveryFailures++);
  await ch.subscribe();
  return received;
}

/**
 * Publishes 1..count, one at a time; `during(i)` runs before number i. A publish the server
 * refuses (Redis away) is retried until it is acknowledged, like an application would.
 */
async function publishStream(c: ChorusClient, channel: string, count: number, during: (i: number) => Promise<void> | void, paceMs = 0): Promise<void> {
  const ch = c.channel(channel);
  for (let i = 1; i <= count; i++) {
    await during(i);
    for (;;) {
      try {
        await ch.publish('n', i);
        break;
      } catch {
        await settle(100);
      }
    }
    if (paceMs > 0) await settle(paceMs);
    else if (i % 10 === 0) await settle(5);
  }
}

async function waitFor(predicate: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await settle(20);
  }
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i + 1);

describe('Redis engine failures', { timeout: 120_000 }, () => {
  it('pub/sub connections killed (CLIENT KILL TYPE pubsub): detected, resubscribed, the gap recovered — every message once, in order', async () => {
    const { redis, nodes } = await cluster(2);
    const [a, b] = nodes as [Node, Node];
    const admin = redis.client();
    cleanups.push(() => void admin.disconnect());
    const pubsubClients = async (): Promise<number> => (String(await admin.call('CLIENT', 'LIST', 'TYPE', 'pubsub')).match(/^id=/gm) ?? []).length;
    const received = await subscriber(client(a.port), 'killed');
    const total = 300;
    let kills = 0;
    await publishStream(client(b.port), 'killed', total, async (i) => {
      if (i % 60 !== 30) return;
      // Kill only once both nodes' pub/sub connections are back from the previous kill.
      for (let tries = 0; tries < 100 && (await pubsubClients()) < 2; tries++) await settle(20);
      kills += Number(await admin.client('KILL', 'TYPE', 'pubsub'));
    });
    await waitFor(() => received.numbers.length >= total, 15_000, 'all numbers').catch((error: unknown) => {
      throw new Error(`${String(error)}: got ${received.numbers.length}, missing ${range(total).filter((n) => !received.numbers.includes(n)).join(',')}`);
    });
    await settle(200);
    assert.ok(kills >= 10, `${kills} pub/sub connections killed (2 nodes × 5)`);
    assert.deepEqual(received.numbers, range(total));
    assert.equal(received.recoveryFailures, 0);
    assert.match(a.output, /redis pub\/sub reconnected; subscribers of its channels resume from history/);
  });

  it('a node killed with SIGKILL mid-stream: its clients reconnect to another node and recover — every message once, in order', async () => {
    const { nodes } = await cluster(3);
    const [a, b, c] = nodes as [Node, Node, Node];
    const balancer = await Balancer.start([a.port, b.port]);
    cleanups.push(() => balancer.close());
    const sub = client(balancer.port);
    const received = await subscriber(sub, 'sigkill');
    const connectedTo: string[] = [];
    sub.on('connected', (session) => connectedTo.push(session.client));
    const total = 300;
    await publishStream(client(c.port), 'sigkill', total, async (i) => {
      if (i === 120) await a.stop('SIGKILL');
    });
    await waitFor(() => received.numbers.length >= total, 20_000, 'all numbers');
    await settle(200);
    assert.deepEqual(received.numbers, range(total));
    assert.equal(received.recoveryFailures, 0);
    assert.ok(connectedTo.length >= 1, 'reconnected after the kill');
  });

  it('Redis restarts and loses everything: nodes reconnect; subscribers recover or are told recovered:false — never a duplicate', async () => {
    const { redis, nodes } = await cluster(2);
    const [a, b] = nodes as [Node, Node];
    const received = await subscriber(client(a.port), 'restart');
    const total = 200;
    // Paced, so the stream goes on well after the subscriber has reconnected.
    await publishStream(
      client(b.port),
      'restart',
      total,
      async (i) => {
        if (i === 80) await redis.restart();
      },
      15,
    );
    await waitFor(() => received.numbers.at(-1) === total, 20_000, 'the last number');
    await settle(200);
    const { numbers, recoveryFailures } = received;
    assert.equal(new Set(numbers).size, numbers.length, 'no duplicates');
    assert.deepEqual([...numbers].sort((x, y) => x - y), numbers, 'in order');
    const missing = range(total).filter((n) => !numbers.includes(n));
    if (missing.length > 0) assert.ok(recoveryFailures > 0, `${missing.length} missing without being told`);
    assert.ok(recoveryFailures > 0 || missing.length === 0);
    assert.match(a.output, /redis connection lost; reconnecting with backoff/);
    assert.match(a.output, /redis connected again/);
  });

  it('Redis unreachable at start: a clear log line, retries with backoff, no crash; works once Redis is up', async () => {
    const port = await freePort();
    const node = await Node.start(`redis://127.0.0.1:${port}`);
    cleanups.push(() => node.stop('SIGKILL'));
    await waitFor(() => /redis unreachable/.test(node.output), 5_000, 'the unreachable log line');
    assert.equal(node.output.match(/redis unreachable/g)?.length, 1, 'logged once, not once per retry');
    const health = await fetch(`http://127.0.0.1:${node.port}/health`);
    assert.equal(health.status, 200, 'still serving');

    const redis = await TestRedis.start(port);
    cleanups.push(() => redis.stop());
    await waitFor(() => /redis connected again/.test(node.output), 10_000, 'the reconnect log line');
    const c = client(node.port);
    const received = await subscriber(c, 'late');
    await c.channel('late').publish('n', 1);
    await waitFor(() => received.numbers.length === 1, 5_000, 'delivery');
    assert.equal(node.child.exitCode, null);
  });

  it('a v1 subscribe whose history read fails after its live subscription was made is refused as unavailable, and its retry succeeds (not "already subscribed")', async () => {
    const redis = await TestRedis.start();
    // A paused write times out after commandTimeoutMs; the probe must not reconnect meanwhile.
    const node = await Node.start(redis.url, { engine: { type: 'redis', url: redis.url, probeIntervalMs: 30_000, commandTimeoutMs: 300 } });
    const admin = redis.client();
    cleanups.push(() => redis.stop(), () => node.stop('SIGKILL'), () => void admin.disconnect());
    const v1 = await V1Client.connected({ port: node.port, scheme: 'http' } as never);
    cleanups.push(() => v1.raw.ws.terminate());

    // CLIENT PAUSE WRITE lets the SUBSCRIBE through and holds the history script (it may write).
    await admin.call('CLIENT', 'PAUSE', '5000', 'WRITE');
    const refused = await v1.command('subscribe', { channel: 'paused' });
    await admin.call('CLIENT', 'UNPAUSE');
    assert.equal(refused.error?.code, ErrorCodes.ENGINE_UNAVAILABLE.code, JSON.stringify(refused));

    const retried = await v1.command('subscribe', { channel: 'paused' });
    assert.equal(retried.ok, true, JSON.stringify(retried));
    const res = await fetch(`http://127.0.0.1:${node.port}/api/publish`, { method: 'POST', body: JSON.stringify({ key: TEST_APP.key, secret: TEST_APP.secret, channelId: 'paused', message: 'after' }) });
    assert.equal(res.status, 200);
    const [pub] = await v1.untilPushes(1);
    assert.equal(pub?.['data'], 'after');
    await settle(200);
    assert.equal(v1.pushes('pub').length, 1, 'delivered once');
  });
});
