/**
 * Yjs rooms on the Redis engine: any node serves any room, awareness crosses nodes, documents
 * outlive every node, and a SIGKILLed node loses nothing acknowledged.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { TEST_APP, startTestServer, wsBase } from './helpers.ts';
import { Balancer, Node } from './cluster.ts';
import { TestRedis } from './redis.ts';
import { editor, eventually, synced, type Editor } from './yjs-helpers.ts';

process.setMaxListeners(100);
let redis: TestRedis;
let redisClient: Redis;
const cleanups: Array<() => unknown> = [];
before(async () => {
  redis = await TestRedis.start();
  redisClient = redis.client();
});
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  redisClient.disconnect();
  await redis.stop();
});
function track(e: Editor): Editor {
  cleanups.push(() => e.destroy());
  return e;
}
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('yjs rooms on Redis', () => {
  it('two nodes share a room, awareness crosses them, and the document outlives both nodes, compacted', async () => {
    const config = { engine: { type: 'redis' as const, url: redis.url }, yjs: { idleUnloadMs: 50 }, apps: [{ ...TEST_APP, limits: { messagesPerSecond: 0 } }] };
    const [one, two] = await Promise.all([startTestServer(config), startTestServer(config)]);
    const a = track(editor(`${wsBase(one)}/yjs`, 'shared'));
    const b = track(editor(`${wsBase(two)}/yjs`, 'shared'));
    await Promise.all([synced(a), synced(b)]);
    a.text.insert(0, 'from one ');
    b.text.insert(0, 'from two ');
    await eventually(() => a.text.toJSON() === b.text.toJSON() && a.text.length === 18, 'the nodes converge');
    a.provider.awareness.setLocalStateField('user', { name: 'Ada' });
    await eventually(() => b.provider.awareness.getStates().has(a.doc.clientID), 'b sees a\'s awareness through the other node');
    a.provider.disconnect();
    await eventually(() => !b.provider.awareness.getStates().has(a.doc.clientID), 'a\'s state removed on the other node when it leaves');
    // Enough updates to compact (every 64 KiB): the stream is trimmed to what came after the snapshot.
    for (let i = 0; i < 100; i++) b.text.insert(b.text.length, `${i.toString().padStart(3, '0')}${'x'.repeat(1000)}\n`);
    const final = b.text.toJSON();
    a.provider.connect();
    await eventually(() => a.text.toJSON() === final, 'the other node has every update');
    b.destroy();
    a.destroy();
    await Promise.all([one.close(), two.close()]);
    const snapshot = await redisClient.hget('{chorus:yjs:test:shared}:snapshot', 'id');
    assert.ok(snapshot, 'a snapshot was stored');
    assert.ok((await redisClient.xlen('{chorus:yjs:test:shared}:updates')) < 100, 'the stream was trimmed');
    const three = await startTestServer(config);
    cleanups.push(() => three.close());
    const late = track(editor(`${wsBase(three)}/yjs`, 'shared'));
    await synced(late);
    assert.equal(late.text.toJSON(), final);
  });

  it('Redis going away: an update that cannot be stored is not relayed, and its connection closes with 4504', async () => {
    const own = await TestRedis.start();
    cleanups.push(() => own.stop());
    const server = await startTestServer({ engine: { type: 'redis', url: own.url } });
    cleanups.push(() => server.close());
    const a = track(editor(`${wsBase(server)}/yjs`, 'fragile'));
    const b = track(editor(`${wsBase(server)}/yjs`, 'fragile'));
    await Promise.all([synced(a), synced(b)]);
    const closes: number[] = [];
    a.provider.on('connection-close', (event: { code: number } | null) => event && closes.push(event.code));
    await own.stop();
    a.text.insert(0, 'nowhere to go');
    await eventually(() => closes.includes(4504), 'closed with 4504', 15_000);
    assert.equal(b.text.toJSON(), '', 'nothing unstored was relayed');
    const health = await fetch(`http://127.0.0.1:${server.port}/health`);
    assert.equal(health.status, 200, 'the server keeps serving');
    a.provider.disconnect();
  });

  it('a SIGKILLed node while 5 clients edit: all converge, with every acknowledged update', { timeout: 90_000 }, async () => {
    const overrides = { yjs: { idleUnloadMs: 100 } };
    const [nodeA, nodeB] = await Promise.all([Node.start(redis.url, overrides), Node.start(redis.url, overrides)]);
    cleanups.push(() => nodeA.stop('SIGKILL'), () => nodeB.stop());
    const balancer = await Balancer.start([nodeA.port, nodeB.port]);
    cleanups.push(() => balancer.close());
    const room = 'kill-test';
    // Five editors through the balancer (alternating nodes); reconnects go to the live node.
    const editors = Array.from({ length: 5 }, () => track(editor(`ws://127.0.0.1:${balancer.port}/yjs`, room)));
    // The observer on node B sees only what the servers relayed, which they relay once stored.
    const observer = track(editor(`ws://127.0.0.1:${nodeB.port}/yjs`, room));
    // A client on node A only, gone with it: its awareness must expire on node B.
    const ghost = track(editor(`ws://127.0.0.1:${nodeA.port}/yjs`, room));
    await Promise.all([...editors, observer, ghost].map((e) => synced(e)));
    ghost.provider.awareness.setLocalStateField('user', { name: 'ghost' });
    await eventually(() => observer.provider.awareness.getStates().has(ghost.doc.clientID), 'the ghost\'s awareness crosses nodes');

    const written = editors.map(() => [] as string[]);
    let typing = true;
    const typists = editors.map(async (e, i) => {
      for (let n = 0; typing; n++) {
        const token = `<${i}:${n}>`;
        // Only between whole tokens, so every token stays readable in the merged text.
        const boundaries = [0, ...[...e.text.toJSON().matchAll(/>/g)].map((m) => m.index + 1)];
        e.text.insert(boundaries[Math.floor(Math.random() * boundaries.length)] ?? 0, token);
        written[i]?.push(token);
        await sleep(5 + Math.random() * 10);
      }
    });
    await sleep(600);
    await nodeA.stop('SIGKILL');
    const acknowledged = observer.text.toJSON().match(/<\d+:\d+>/g) ?? [];
    ghost.provider.disconnect(); // its node is dead: it never comes back
    await sleep(600);
    typing = false;
    await Promise.all(typists);

    const tokens = (text: string): string[] => (text.match(/<\d+:\d+>/g) ?? []).sort();
    const everyWritten = written.flat().sort();
    await eventually(() => [...editors, observer].every((e) => e.text.toJSON() === observer.text.toJSON()) && tokens(observer.text.toJSON()).length === everyWritten.length, 'all clients converge', 20_000);
    assert.deepEqual(tokens(observer.text.toJSON()), everyWritten, 'every edit is in the converged document');
    assert.ok(acknowledged.length > 20, `edits were acknowledged before the kill (${acknowledged.length})`);
    const final = observer.text.toJSON();

    // From the server alone (node B, Redis): every acknowledged update, and everything since.
    for (const e of editors) e.destroy();
    const fresh = track(editor(`ws://127.0.0.1:${nodeB.port}/yjs`, room));
    await synced(fresh);
    assert.equal(fresh.text.toJSON(), final);
    for (const token of acknowledged) assert.ok(fresh.text.toJSON().includes(token), `acknowledged ${token} kept`);

    // The dead node's client: its awareness is still known to node B, until it expires (30 s).
    assert.ok(fresh.provider.awareness.getStates().has(ghost.doc.clientID), 'the ghost is still listed right after the kill');
    await sleep(31_500);
    const later = track(editor(`ws://127.0.0.1:${nodeB.port}/yjs`, room));
    await synced(later);
    await sleep(200);
    assert.ok(!later.provider.awareness.getStates().has(ghost.doc.clientID), 'the ghost\'s awareness expired on node B');
  });
});
