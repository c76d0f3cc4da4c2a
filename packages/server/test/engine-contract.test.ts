/**
 * One contract, every engine: the memory engine and the Redis engine (against a real
 * redis-server, and against a real 3-primary Redis Cluster) must behave the same for publish,
 * history, recovery, idempotency, delivery and presence. A new engine joins by adding a row to
 * ENGINES.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { setTimeout } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import type { Member } from '@chorus/protocol';
import { createMemoryEngine } from '../src/engine/memory.ts';
import { createRedisEngine } from '../src/engine/redis/index.ts';
import type { ControlMessage, CountChange, Engine, EngineHandlers, HistoryPolicy, MessageInput, Publication } from '../src/engine/types.ts';
import { settle } from './helpers.ts';
import { TestRedis } from './redis.ts';
import { TestRedisCluster } from './redis-cluster.ts';

interface Harness {
  engine: Engine;
  delivered: Publication[];
  gaps: string[];
  controls: ControlMessage[];
  changes: CountChange[];
}

let redis: TestRedis;
let redisCluster: TestRedisCluster;
before(async () => {
  [redis, redisCluster] = await Promise.all([TestRedis.start(), TestRedisCluster.start({ primaries: 3 })]);
});
after(() => Promise.all([redis.stop(), redisCluster.stop()]));

const policy = (_app: string, channel: string): HistoryPolicy => (channel.startsWith('small') ? { size: 3, ttlMs: 60_000 } : channel.startsWith('brief') ? { size: 100, ttlMs: 1000 } : { size: 100, ttlMs: 60_000 });
const localStats = (): { connections: number; channels: number } => ({ connections: 0, channels: 0 });

/** Short, so a stopped node's share of the counts is swept within the test (redis). */
const NODE_TTL_MS = 1500;

const ENGINES: Array<[string, (handlers: EngineHandlers) => Engine]> = [
  ['memory', (handlers) => createMemoryEngine(handlers, policy, localStats)],
  ['redis', (handlers) => createRedisEngine({ url: redis.url, nodeId: `n${Math.random().toString(36).slice(2, 8)}`, log: pino({ level: 'silent' }), handlers, policy, localStats, nodeTtlMs: NODE_TTL_MS })],
  ['redis-cluster', (handlers) => createRedisEngine({ nodes: redisCluster.startupNodes, nodeId: `n${Math.random().toString(36).slice(2, 8)}`, log: pino({ level: 'silent' }), handlers, policy, localStats, nodeTtlMs: NODE_TTL_MS })],
];

function message(channel: string, text: string, extra: Partial<MessageInput> = {}): MessageInput {
  return { appId: 'app', channel, originId: 'c1', event: 'e', payload: Buffer.from(JSON.stringify(text)), binary: false, ...extra };
}

const member = (user: string): Member => ({ user, uuid: `uuid-${user}` });

for (const [name, create] of ENGINES) {
  describe(`engine contract: ${name}`, () => {
    const harnesses: Harness[] = [];
    let run = 0;
    /** A fresh engine and a channel name unique to this test (the Redis server is shared). */
    async function setup(prefix = 'ch'): Promise<Harness & { channel: string }> {
      const harness: Harness = { engine: undefined as unknown as Engine, delivered: [], gaps: [], controls: [], changes: [] };
      harness.engine = create({
        onPublication: (p) => harness.delivered.push(p),
        onGap: (_a, c) => harness.gaps.push(c),
        onControl: (m) => harness.controls.push(m),
        onCountChange: (c) => harness.changes.push(c),
      });
      harnesses.push(harness);
      if (name !== 'memory') {
        // Connected and subscribed: a broadcast of its own comes back (a cluster's sharded
        // subscribers connect lazily, in more than the 100 ms that are enough for one Redis).
        const ready: ControlMessage = { kind: 'terminate-user', appId: 'app', userId: `ready-${run}-${Math.random()}` };
        await waitFor(async () => {
          await harness.engine.broadcast(ready).catch(() => undefined);
          await settle(50);
          return harness.controls.some((m) => m.kind === 'terminate-user' && m.userId === ready.userId);
        }, 10_000);
      }
      return { ...harness, channel: `${prefix}-${Date.now().toString(36)}-${run++}` };
    }
    after(() => Promise.all(harnesses.map((h) => h.engine.close())));

    it('assigns consecutive offsets in one epoch and delivers to the attached node in order', async () => {
      const { engine, delivered, channel } = await setup();
      await engine.broker.attach('app', channel);
      const outcomes = [];
      for (let i = 1; i <= 5; i++) outcomes.push(await engine.broker.publish(message(channel, `m${i}`)));
      assert.deepEqual(outcomes.map((o) => o.offset), [1, 2, 3, 4, 5]);
      assert.equal(new Set(outcomes.map((o) => o.epoch)).size, 1);
      await waitFor(() => delivered.length === 5);
      assert.deepEqual(delivered.map((p) => (p.kind === 'message' ? [p.offset, p.payload.toString(), p.event, p.originId] : [])), [1, 2, 3, 4, 5].map((i) => [i, `"m${i}"`, 'e', 'c1']));
    });

    it('send (no outcome wanted) places messages in the same stream, in order, after and before publish', async () => {
      const { engine, delivered, channel } = await setup();
      await engine.broker.attach('app', channel);
      const failures: unknown[] = [];
      await engine.broker.publish(message(channel, 'm1'));
      for (let i = 2; i <= 4; i++) engine.broker.send(message(channel, `m${i}`), (error) => failures.push(error));
      const last = await engine.broker.publish(message(channel, 'm5'));
      assert.equal(last.offset, 5, 'the sent messages took offsets 2–4');
      await waitFor(() => delivered.length === 5);
      assert.deepEqual(delivered.map((p) => (p.kind === 'message' ? [p.offset, p.payload.toString()] : [])), [1, 2, 3, 4, 5].map((i) => [i, `"m${i}"`]));
      assert.deepEqual((await engine.broker.history('app', channel, { limit: 10 })).publications.map((p) => p.offset), [1, 2, 3, 4, 5]);
      assert.deepEqual(failures, []);
    });

    it('broadcast reaches every node, the sender included, once', async () => {
      const first = await setup();
      const others = name !== 'memory' ? [await setup()] : [];
      const order: ControlMessage = { kind: 'terminate-user', appId: 'app', userId: `u-${first.channel}` };
      await first.engine.broadcast(order);
      const mine = (h: Harness): ControlMessage[] => h.controls.filter((m) => m.kind === 'terminate-user' && m.userId === order.userId);
      await waitFor(() => [first, ...others].every((h) => mine(h).length > 0));
      await settle(100);
      for (const h of [first, ...others]) assert.deepEqual(mine(h), [order]);
    });

    it('keeps binary payloads byte for byte', async () => {
      const { engine, delivered, channel } = await setup();
      await engine.broker.attach('app', channel);
      const bytes = Buffer.from([0, 10, 13, 255, 0x7b]);
      await engine.broker.publish(message(channel, '', { payload: bytes, binary: true, event: undefined }));
      await waitFor(() => delivered.length === 1);
      const [p] = delivered;
      assert.ok(p?.kind === 'message' && p.binary && p.payload.equals(bytes) && p.event === undefined);
      const page = await engine.broker.history('app', channel, { limit: 10 });
      assert.ok(page.publications[0]?.payload.equals(bytes));
    });

    it('history holds a payload’s own bytes, not the larger socket read it is a view of', async () => {
      const { engine, channel } = await setup();
      // What ws hands over: a few bytes inside a 64 KiB read that also held a refused message.
      const read = Buffer.alloc(64 * 1024, 0x61);
      const payload = read.subarray(100, 110).fill(0x62);
      await engine.broker.publish(message(channel, '', { payload }));
      read.fill(0x63); // the read buffer is reused or freed; history must not depend on it
      const [kept] = (await engine.broker.history('app', channel, { limit: 1 })).publications;
      assert.equal(kept?.payload.toString(), 'bbbbbbbbbb');
      assert.ok((kept?.payload.buffer.byteLength ?? Infinity) <= 16 * 1024, `history pins ${kept?.payload.buffer.byteLength} bytes for a 10-byte message`);
    });

    it('dedupes a repeated msgId with the original offset', async () => {
      const { engine, delivered, channel } = await setup();
      await engine.broker.attach('app', channel);
      const first = await engine.broker.publish(message(channel, 'once', { msgId: 'k1' }));
      const again = await engine.broker.publish(message(channel, 'once', { msgId: 'k1' }));
      assert.deepEqual([first.offset, first.duplicate, again.offset, again.duplicate], [1, false, 1, true]);
      await settle(100);
      assert.equal(delivered.length, 1);
    });

    it('history: latest first-to-last, since, exact trimming, and recovery limits', async () => {
      const { engine, channel } = await setup('small');
      for (let i = 1; i <= 5; i++) await engine.broker.publish(message(channel, `m${i}`));
      const latest = await engine.broker.history('app', channel, { limit: 10 });
      assert.deepEqual(latest.publications.map((p) => p.offset), [3, 4, 5], 'exactly size 3 kept');
      assert.equal(latest.offset, 5);
      assert.equal(latest.recovered, undefined);
      const { epoch } = latest;
      assert.deepEqual((await engine.broker.history('app', channel, { limit: 10, since: { offset: 3, epoch } })).publications.map((p) => p.offset), [4, 5]);
      assert.equal((await engine.broker.history('app', channel, { limit: 10, since: { offset: 2, epoch } })).recovered, true, 'offsets 3–5 retained');
      assert.equal((await engine.broker.history('app', channel, { limit: 10, since: { offset: 1, epoch } })).recovered, false, 'offset 2 is gone');
      assert.equal((await engine.broker.history('app', channel, { limit: 10, since: { offset: 5, epoch } })).recovered, true, 'nothing missed');
      assert.equal((await engine.broker.history('app', channel, { limit: 10, since: { offset: 3, epoch: 'other' } })).recovered, false);
      assert.deepEqual((await engine.broker.history('app', channel, { limit: 2 })).publications.map((p) => p.offset), [4, 5]);
    });

    it('history of a new channel starts an epoch at offset 0', async () => {
      const { engine, channel } = await setup();
      const page = await engine.broker.history('app', channel, { limit: 10 });
      assert.equal(page.offset, 0);
      assert.ok(page.epoch.length > 0);
      const first = await engine.broker.publish(message(channel, 'x'));
      assert.deepEqual([first.offset, first.epoch], [1, page.epoch]);
    });

    it('history entries expire with the TTL; offsets do not', async () => {
      const { engine, channel } = await setup('brief');
      await engine.broker.publish(message(channel, 'x'));
      const fresh = await engine.broker.history('app', channel, { limit: 10 });
      assert.equal(fresh.publications.length, 1);
      await settle(1100);
      const stale = await engine.broker.history('app', channel, { limit: 10, since: { offset: 0, epoch: fresh.epoch } });
      assert.equal(stale.recovered, false);
      assert.deepEqual(stale.publications, []);
      assert.equal((await engine.broker.publish(message(channel, 'y'))).offset, 2);
    });

    it('detached channels are not delivered to this node', async () => {
      const { engine, delivered, channel } = await setup();
      await engine.broker.attach('app', channel);
      engine.broker.detach('app', channel);
      await settle(50);
      await engine.broker.publish(message(channel, 'x'));
      await settle(150);
      assert.equal(delivered.filter((p) => p.channel === channel).length, name === 'memory' ? 1 : 0, 'memory delivers everything to its one node; the hub drops it');
    });

    it('presence: join order, replace, leave, cap', async () => {
      const { engine, channel } = await setup();
      const p = engine.presence;
      assert.deepEqual(await p.join('app', channel, 'c1', member('a'), 2), [member('a')]);
      await settle(5);
      assert.deepEqual(await p.join('app', channel, 'c2', member('b'), 2), [member('a'), member('b')]);
      assert.equal(await p.join('app', channel, 'c3', member('c'), 2), undefined, 'full');
      assert.deepEqual(await p.join('app', channel, 'c2', member('b'), 2), [member('a'), member('b')], 'rejoin when full is a replace');
      assert.deepEqual(await p.leave('app', channel, 'c1'), [member('b')]);
      assert.deepEqual(await p.members('app', channel), [member('b')]);
      assert.equal(await p.leave('app', channel, 'nobody'), undefined, 'no member: no roster, so nobody announces a leave');
      assert.equal(await p.leave('app', channel, 'c1'), undefined, 'left already');
    });

    it('counts: totals over every node, each change reported once with before and after, listings by prefix', async () => {
      const a = await setup('cnt');
      const nodes = name !== 'memory' ? [a, await setup()] : [a];
      const other = nodes.at(-1) as Harness;
      const { channel } = a;
      a.engine.counts.set('app', 'subscriptions', channel, 2);
      other.engine.counts.set('app', 'subscriptions', channel, nodes.length === 2 ? 3 : 5);
      other.engine.counts.set('app', 'subscriptions', `${channel}-x`, 1);
      other.engine.counts.set('app', 'users', channel, 1);
      const reported = (): CountChange[] => nodes.flatMap((h) => h.changes).filter((c) => c.name.startsWith(channel));
      await waitFor(() => reported().length >= 3 + (nodes.length - 1));
      for (const h of nodes) assert.equal(await h.engine.counts.total('app', 'subscriptions', channel), 5);
      assert.equal(await a.engine.counts.total('app', 'users', channel), 1, 'spaces are apart');
      assert.equal(await a.engine.counts.total('other-app', 'subscriptions', channel), 0, 'apps are apart');
      assert.deepEqual([...(await a.engine.counts.list('app', 'subscriptions', channel)).entries()].sort(), [[channel, 5], [`${channel}-x`, 1]]);
      assert.deepEqual([...(await a.engine.counts.list('app', 'subscriptions', `${channel}-`)).entries()], [[`${channel}-x`, 1]]);
      // The channel went 0 → 2 → 5 or 0 → 3 → 5 (redis: the nodes write in either order): one
      // chain of changes, each reported on one node only.
      const chain = reported().filter((c) => c.name === channel && c.space === 'subscriptions').sort((x, y) => x.before - y.before);
      assert.equal(chain[0]?.before, 0, 'one change occupied it');
      for (let i = 1; i < chain.length; i++) assert.equal(chain[i]?.before, chain[i - 1]?.after, 'each change once, none missing');
      assert.equal(chain.at(-1)?.after, 5);

      a.engine.counts.set('app', 'subscriptions', channel, 0);
      other.engine.counts.set('app', 'subscriptions', channel, 0);
      await waitFor(() => reported().filter((c) => c.name === channel && c.space === 'subscriptions' && c.after === 0).length === 1);
      await settle(100);
      assert.equal(reported().filter((c) => c.name === channel && c.space === 'subscriptions' && c.after === 0).length, 1, 'vacated once');
      assert.equal(await other.engine.counts.total('app', 'subscriptions', channel), 0);
      assert.equal((await a.engine.counts.list('app', 'subscriptions', channel)).has(channel), false, 'a vacated channel is not listed');
    });

    if (name !== 'memory') {
      it('counts: a node that stops refreshing loses its share within ~1.3 × nodeTtlMs, the change reported once, on a live node', async () => {
        const doomed = await setup('crash');
        const live = await setup();
        const { channel } = doomed;
        doomed.engine.counts.set('app', 'subscriptions', channel, 4);
        live.engine.counts.set('app', 'subscriptions', channel, 1);
        await waitFor(async () => (await live.engine.counts.total('app', 'subscriptions', channel)) === 5);
        await doomed.engine.close(); // writes what is pending, then stops refreshing: a crash, as far as Redis can tell
        const started = Date.now();
        await waitFor(async () => (await live.engine.counts.total('app', 'subscriptions', channel)) === 1, 4 * NODE_TTL_MS);
        const sweptAfterMs = Date.now() - started;
        const sweeps = (): CountChange[] => harnesses.flatMap((h) => h.changes).filter((c) => c.name === channel && c.before === 5);
        await waitFor(() => sweeps().length > 0);
        await settle(NODE_TTL_MS);
        assert.deepEqual(sweeps().map((c) => c.after), [1], 'reported once, by whichever live node swept it');
        assert.ok(sweptAfterMs <= 1.5 * NODE_TTL_MS + 500, `swept ${sweptAfterMs} ms after the stop`);
        assert.deepEqual((await live.engine.counts.list('app', 'subscriptions', channel)).get(channel), 1);
      });
    }

    it('presence changes reach the attached node', async () => {
      const { engine, delivered, channel } = await setup();
      await engine.broker.attach('app', channel);
      await engine.broker.publishPresence({ kind: 'presence', action: 'joined', appId: 'app', channel, originId: 'c9', member: member('z'), members: [member('z')] });
      await waitFor(() => delivered.length === 1);
      assert.deepEqual(delivered[0], { kind: 'presence', action: 'joined', appId: 'app', channel, originId: 'c9', member: member('z'), members: [member('z')] });
    });
  });
}

async function waitFor(predicate: () => boolean | Promise<boolean>, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await settle(10);
  }
}

describe('engine close', () => {
  // A server that shuts down must be able to exit. ioredis 5.11's own slot-refresh timer once kept
  // a process with a closed redis-cluster engine alive forever (it re-arms when a refresh is in
  // flight at disconnect); any ref'd timer or socket left by close() would too. Each engine runs
  // in a process of its own through two of the cluster engine's one-second slot refreshes.
  const targets = (): Array<[string, string]> => [
    ['memory', ''],
    ['redis', redis.url],
    ['redis-cluster', JSON.stringify(redisCluster.startupNodes)],
  ];
  it('once closed, no engine keeps its process alive', async () => {
    const child = fileURLToPath(new URL('./engine-exit-child.ts', import.meta.url));
    const results = await Promise.all(
      targets().map(async ([kind, target]) => {
        const engineProcess = spawn(process.execPath, ['--import', 'tsx', child, kind, target, '2200'], { stdio: ['ignore', 'pipe', 'pipe'] });
        let output = '';
        engineProcess.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
        engineProcess.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
        const deadline = new AbortController();
        const exited = await Promise.race([
          once(engineProcess, 'exit').then(([code]) => `exit ${String(code)}`),
          setTimeout(15_000, 'still running 15 s after it started', { signal: deadline.signal }).catch(() => 'aborted'),
        ]);
        deadline.abort();
        engineProcess.kill('SIGKILL');
        return [kind, exited, output.trim()];
      }),
    );
    assert.deepEqual(
      results.map(([kind, exited, output]) => [kind, exited, output]),
      targets().map(([kind]) => [kind, 'exit 0', 'closed']),
    );
  });
});
