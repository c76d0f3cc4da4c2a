/**
 * Redis Cluster (issue 16, part 2): Chorus processes on a real 3-primary Redis Cluster (one
 * replica each), engine {type: "redis-cluster"}. Publications cross nodes through sharded pub/sub
 * (only the slot's shard carries them), v1 history and recovery, presence with a killed node's
 * members leaving, and cluster-wide counts. Then, under traffic, the busy channel's slot is
 * migrated to another primary, and that primary is failed over to its replica: v1 subscribers
 * end with every number once in order, or are told `recovered: false`; what raw subscribers
 * (no recovery) lose meanwhile is measured and reported.
 */
import assert from 'node:assert/strict';
import calculateSlot from 'cluster-key-slot';
import { after, before, describe, it, type TestContext } from 'node:test';
import WebSocket from 'ws';
import { createClient, type ChorusClient } from '../../client/src/index.ts';
import { TEST_APP, TestClient, settle, withTimeout } from './helpers.ts';
import { Node } from './cluster.ts';
import { pusherBackend } from './pusher-helpers.ts';
import { TestRedisCluster } from './redis-cluster.ts';
import { V1Client, connectionToken } from './v1-helpers.ts';
import { editor, eventually, synced } from './yjs-helpers.ts';

let redisCluster: TestRedisCluster;
let nodes: Node[] = [];
const cleanups: Array<() => Promise<void> | void> = [];

function startNode(): Promise<Node> {
  return Node.start('', {
    engine: { type: 'redis-cluster', nodes: redisCluster.startupNodes, probeIntervalMs: 300, presenceTtlMs: 2000, nodeTtlMs: 1500 },
    history: { size: 2000 },
  });
}

before(async () => {
  redisCluster = await TestRedisCluster.start({ primaries: 3, replicasPerPrimary: 1 });
  nodes = await Promise.all([startNode(), startNode()]);
});
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await Promise.all(nodes.map((n) => n.stop('SIGKILL')));
  await redisCluster.stop();
});

const raw = (node: Node, channel: string, query = ''): string => `ws://127.0.0.1:${node.port}/v4/${channel}?api_key=${TEST_APP.key}${query}`;
const server = (node: Node): never => ({ port: node.port, scheme: 'http' }) as never;
const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i + 1);

async function rawClient(node: Node, channel: string, query = ''): Promise<TestClient> {
  const client = await TestClient.open(raw(node, channel, query));
  cleanups.push(() => client.ws.terminate());
  return client;
}

async function v1On(node: Node, fields: Record<string, unknown> = {}): Promise<V1Client> {
  const client = await V1Client.connected(server(node), fields);
  cleanups.push(() => client.raw.ws.terminate());
  return client;
}

function sdk(node: Node): ChorusClient {
  const c = createClient(`ws://127.0.0.1:${node.port}`, { key: TEST_APP.key, WebSocket, minDelayMs: 20, maxDelayMs: 300 });
  cleanups.push(() => c.close());
  return c;
}

async function until(predicate: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await settle(25);
  }
}

/** A channel name other than `not` whose keys share `slot` (hash tag `{app:channel}`). */
function channelInSlot(slot: number, not: string): string {
  for (let i = 0; ; i++) if (`k${i}` !== not && calculateSlot(`{${TEST_APP.id}:k${i}}`) === slot) return `k${i}`;
}

/** The hash slot of a Chorus channel's keys and pub/sub channel (hash tag `{app:channel}`). */
function slotOf(channel: string): Promise<number> {
  return slotOfKey(`{${TEST_APP.id}:${channel}}`);
}

async function slotOfKey(key: string): Promise<number> {
  const client = redisCluster.nodeClient(redisCluster.nodes[0]?.port ?? 0);
  try {
    return Number(await client.call('CLUSTER', 'KEYSLOT', key));
  } finally {
    client.disconnect();
  }
}

/** The shard channels a primary has subscribers for. */
async function shardChannels(port: number): Promise<string[]> {
  const client = redisCluster.nodeClient(port);
  try {
    return ((await client.call('PUBSUB', 'SHARDCHANNELS')) as string[]).sort();
  } finally {
    client.disconnect();
  }
}

describe('Chorus on a Redis Cluster', { timeout: 90_000 }, () => {
  it('a publish on either node (raw, v1, REST) reaches subscribers on the other, in order, through the slot\'s shard only', async () => {
    const [a, b] = nodes as [Node, Node];
    const rawA = await rawClient(a, 'everywhere');
    const v1B = await v1On(b);
    await v1B.command('subscribe', { channel: 'everywhere' });
    await settle(200);
    for (let i = 0; i < 20; i++) rawA.ws.send(`raw-${i}`);
    const publisher = await v1On(b);
    await v1B.untilPushes(20);
    for (let i = 0; i < 20; i++) await publisher.command('publish', { channel: 'everywhere', event: 'n', data: i });
    const res = await fetch(`http://127.0.0.1:${a.port}/api/publish`, { method: 'POST', body: JSON.stringify({ key: TEST_APP.key, secret: TEST_APP.secret, channelId: 'everywhere', message: 'from-rest' }) });
    assert.equal(res.status, 200);
    const pubs = await v1B.untilPushes(41);
    assert.deepEqual(pubs.map((p) => p.offset), range(41), 'one stream, consecutive offsets');
    const atA = await rawA.messages(21, 10_000);
    assert.deepEqual(atA.map((m) => m.text), [...range(20).map((i) => JSON.stringify({ event: 'n', data: i - 1 })), 'from-rest']);

    // Sharded pub/sub: the channel is subscribed at the primary that owns its slot, and nowhere else.
    const owner = await redisCluster.ownerOf(await slotOf('everywhere'));
    const pubsub = `chorus:{${TEST_APP.id}:everywhere}:pub`;
    assert.ok((await shardChannels(owner.port)).includes(pubsub), 'subscribed at the owner');
    for (const node of redisCluster.running()) if (node.port !== owner.port) assert.ok(!(await shardChannels(node.port)).includes(pubsub), `not at ${node.port}`);
  });

  it('v1 history and recovery: a client that was away gets exactly what it missed', async () => {
    const [a, b] = nodes as [Node, Node];
    const first = await v1On(a);
    const reply = await first.command('subscribe', { channel: 'rec' });
    const publisher = await v1On(b);
    for (let i = 1; i <= 3; i++) await publisher.command('publish', { channel: 'rec', event: 'n', data: i });
    const seen = await first.untilPushes(3);
    const last = { offset: seen.at(-1)?.offset, epoch: reply.result?.['epoch'] };
    first.raw.ws.terminate();
    for (let i = 4; i <= 6; i++) await publisher.command('publish', { channel: 'rec', event: 'n', data: i });
    const second = await v1On(b);
    const resumed = await second.command('subscribe', { channel: 'rec', since: last });
    assert.deepEqual(resumed.result, { channel: 'rec', epoch: last.epoch, offset: 6, recovered: true, replayed: 3 });
    assert.deepEqual((await second.untilPushes(3)).map((p) => p.data), [4, 5, 6]);
  });

  it('presence is cluster-wide, and a SIGKILLed node\'s members leave within the presence TTL', async () => {
    const [a] = nodes as [Node, Node];
    const doomed = await startNode();
    const watcher = await v1On(a, { token: await connectionToken('watcher') });
    await watcher.command('subscribe', { channel: 'presence-crash' });
    const ghost = await V1Client.connected(server(doomed), { token: await connectionToken('ghost') });
    await ghost.command('subscribe', { channel: 'presence-crash' });
    await watcher.untilPushes(1, 'join');
    const before = (await watcher.command('presence', { channel: 'presence-crash' })).result?.['members'] as Array<{ user: string }>;
    assert.deepEqual(before.map((m) => m.user), ['watcher', 'ghost']);
    const killedAt = Date.now();
    await doomed.stop('SIGKILL');
    const [left] = await watcher.untilPushes(1, 'leave');
    assert.equal((left?.['member'] as { user: string }).user, 'ghost');
    assert.ok(Date.now() - killedAt < 4000, `left ${Date.now() - killedAt} ms after the kill (presenceTtlMs 2000)`);
    const after = (await watcher.command('presence', { channel: 'presence-crash' })).result?.['members'] as Array<{ user: string }>;
    assert.deepEqual(after.map((m) => m.user), ['watcher']);
  });

  it('counts are cluster-wide: the HTTP API of either node counts both nodes\' subscribers; a killed node\'s are swept', async () => {
    const [a, b] = nodes as [Node, Node];
    const doomed = await startNode();
    await rawClient(a, 'counted');
    await rawClient(b, 'counted');
    const onDoomed = new TestClient(raw(doomed, 'counted'));
    await onDoomed.opened();
    const count = async (node: Node): Promise<number> => {
      const info = (await (await pusherBackend(TEST_APP, node.port).get({ path: '/channels/counted', params: { info: 'subscription_count' } })).json()) as { subscription_count?: number };
      return info.subscription_count ?? 0;
    };
    await until(async () => (await count(a)) === 3 && (await count(b)) === 3, 'a count of 3 on both nodes');
    await doomed.stop('SIGKILL');
    await until(async () => (await count(a)) === 2 && (await count(b)) === 2, 'the killed node\'s subscriber swept', 8000);
  });

  it('Yjs rooms: two nodes share a room through the cluster (the document store follows the engine)', async () => {
    const [one, two] = nodes as [Node, Node];
    const a = editor(`ws://127.0.0.1:${one.port}/yjs`, 'shared');
    const b = editor(`ws://127.0.0.1:${two.port}/yjs`, 'shared');
    cleanups.push(() => a.destroy(), () => b.destroy());
    await Promise.all([synced(a), synced(b)]);
    a.text.insert(0, 'from one ');
    b.text.insert(0, 'from two ');
    await eventually(() => a.text.toJSON() === b.text.toJSON() && a.text.length === 18, 'the nodes converge');
    const client = redisCluster.nodeClient((await redisCluster.ownerOf(await slotOfKey('{chorus:yjs:test:shared}'))).port);
    cleanups.push(() => void client.disconnect());
    assert.ok((await client.xlen('{chorus:yjs:test:shared}:updates')) >= 2, 'the updates are stored in the cluster');
  });

  it('a slot migration and a CLUSTER FAILOVER under traffic: v1 gets every number once in order (or recovered:false); raw loss is measured', async (t) => {
    const outcome = await traffic(t, 'busy', 600, {
      150: async (slot) => {
        const from = await redisCluster.ownerOf(slot);
        const to = (await redisCluster.primaryPorts()).find((port) => port !== from.port) ?? 0;
        const { keys } = await redisCluster.migrateSlot(slot, to);
        return `slot ${slot} (${keys} keys) migrated ${from.port} → ${to}`;
      },
      400: async (slot) => {
        const owner = await redisCluster.ownerOf(slot);
        const replica = await redisCluster.replicaOf(owner.id);
        await redisCluster.failover(replica);
        return `CLUSTER FAILOVER: replica ${replica} took over from ${owner.port}`;
      },
    });
    assert.equal(outcome.refused, 0, 'publishes wait for a migrating slot and a manual failover; none is refused');
  });

  it('the primary owning a busy channel SIGKILLed under traffic: publishes refused until its replica takes over, then accepted; v1 once in order or recovered:false', async (t) => {
    const restStatuses = new Map<number, number>();
    let rest: Promise<void> = Promise.resolve();
    const outcome = await traffic(t, 'killed', 300, {
      100: async (slot) => {
        const owner = await redisCluster.ownerOf(slot);
        const replica = await redisCluster.replicaOf(owner.id);
        await redisCluster.replicaSynced(replica);
        redisCluster.kill(owner.port);
        // Meanwhile REST publishes to another channel of the same slot: refused with 503, never a 500.
        const sibling = channelInSlot(slot, 'killed');
        rest = (async () => {
          for (let status = 0, until = Date.now() + 30_000; status !== 200 && Date.now() < until; await settle(100)) {
            status = (await fetch(`http://127.0.0.1:${(nodes[1] as Node).port}/api/publish`, { method: 'POST', body: JSON.stringify({ key: TEST_APP.key, secret: TEST_APP.secret, channelId: sibling, message: 'x' }), signal: AbortSignal.timeout(10_000) })).status;
            restStatuses.set(status, (restStatuses.get(status) ?? 0) + 1);
          }
        })();
        return `primary ${owner.port} SIGKILLed (its replica ${replica}; cluster-node-timeout 1000 ms)`;
      },
    });
    await rest;
    t.diagnostic(`publishing resumed ${outcome.resumedAfterMs} ms after the kill; REST answers meanwhile: ${[...restStatuses].map(([status, n]) => `${n} × ${status}`).join(', ')}`);
    assert.deepEqual([...restStatuses.keys()].filter((status) => status !== 200 && status !== 503), [], 'refused with 503 while the slot has no primary, nothing else');
    assert.ok(restStatuses.has(200), 'REST publishes accepted again once the replica took over');
  });
});

interface Traffic {
  refused: number;
  /** From the first action to the first publish accepted after it. */
  resumedAfterMs: number;
}

/**
 * Publishes 1..total through node B (the SDK, retrying what is refused, as an application would)
 * to an SDK and a raw subscriber on node A; before number n, runs actions[n] (given the channel's
 * slot). Checks that v1 got every number once in order or was told recovered:false, and that
 * nothing arrived twice or out of order anywhere; reports what raw lost around each action.
 */
async function traffic(t: TestContext, channel: string, total: number, actions: Record<number, (slot: number) => Promise<string>>): Promise<Traffic> {
  const [a, b] = nodes as [Node, Node];
  const received: number[] = [];
  const failures: string[] = [];
  const subscription = sdk(a).channel(channel);
  subscription.on('n', (data) => received.push(data as number));
  subscription.on('recovery-failed', (event) => failures.push(JSON.stringify(event)));
  await subscription.subscribe();
  const rawSub = await rawClient(a, channel);
  await settle(200);

  const slot = await slotOf(channel);
  const publisher = sdk(b).channel(channel);
  let refused = 0;
  const refusals = new Set<string>();
  let actedAt = 0;
  let resumedAfterMs = 0;
  const events: string[] = [];
  for (let i = 1; i <= total; i++) {
    const action = actions[i];
    if (action) {
      const startedAt = Date.now();
      actedAt ||= startedAt;
      events.push(`${await action(slot)} in ${Date.now() - startedAt} ms, before number ${i}`);
    }
    for (const firstTry = Date.now(); ; ) {
      try {
        // The SDK holds a publish while it reconnects, without a deadline of its own.
        await withTimeout(publisher.publish('n', i), 20_000, `publish ${i} unanswered for 20 s; ${events.join('; ')}; node B said: ${b.output.split('\n').filter((l) => /"level":[45]0/.test(l)).slice(-5).join(' ')}`);
        if (actedAt > 0 && resumedAfterMs === 0) resumedAfterMs = Date.now() - actedAt;
        break;
      } catch (error) {
        refused++; // refused (engine unavailable): the application retries, as it would
        refusals.add(`${String((error as { code?: unknown }).code)} ${(error as Error).message}`);
        if (/unanswered for 20 s/.test((error as Error).message) || Date.now() - firstTry > 20_000) throw new Error(`number ${i} refused for 20 s (${[...refusals].join('; ')}); ${events.join('; ')}`, { cause: error });
        await settle(50);
      }
    }
    if (i % 10 === 0) await settle(5);
  }
  await until(() => received.length >= total || failures.length > 0, `all ${total} numbers at the v1 subscriber`, 20_000).catch(() => undefined);
  await settle(1000);
  const rawNumbers = rawSub.received.map((r) => (JSON.parse(r.text) as { data: number }).data);
  const rawMissing = range(total).filter((n) => !rawNumbers.includes(n));
  const starts = Object.keys(actions).map(Number);
  const lostPerAction = starts.map((start, k) => rawMissing.filter((n) => n >= start && n < (starts[k + 1] ?? Infinity)).length);
  t.diagnostic(events.join('; '));
  t.diagnostic(`publishes refused and retried: ${refused} (${[...refusals].join('; ')}); v1 received ${received.length} of ${total}, recovery failures ${failures.length} ${failures.join(' ')}; raw received ${rawNumbers.length}${rawSub.closeCode === undefined ? '' : ` (closed with ${rawSub.closeCode})`}, lost ${rawMissing.length} (${lostPerAction.map((lost, k) => `${lost} from number ${starts[k]}`).join(', ')})`);
  if (process.env['CLUSTER_DEBUG']) t.diagnostic(`raw missing: ${rawMissing.join(',')}\n${a.output.split('\n').filter((l) => /redis/i.test(l)).join('\n')}`);
  if (failures.length === 0) assert.deepEqual(received, range(total), 'every number once, in order');
  else assert.deepEqual(received.filter((n, i) => i > 0 && n <= (received[i - 1] ?? 0)), [], 'never a duplicate or a step back, even when told recovered:false');
  assert.deepEqual(rawNumbers.filter((n, i) => i > 0 && n <= (rawNumbers[i - 1] ?? 0)), [], 'raw: never a duplicate or out of order');
  for (const node of nodes) assert.equal(node.child.exitCode, null, 'no node crashed');
  return { refused, resumedAfterMs };
}
