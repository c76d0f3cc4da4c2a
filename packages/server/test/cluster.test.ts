/**
 * Three Chorus processes on one real redis-server act as one server: a publication made on any
 * node, in any dialect or through REST, reaches subscribers on every node in order; presence
 * is cluster-wide; a crashed node's members expire.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { TEST_APP, TestClient, settle } from './helpers.ts';
import { V1Client, connectionToken } from './v1-helpers.ts';
import { Node } from './cluster.ts';
import { TestRedis } from './redis.ts';

let redis: TestRedis;
let nodes: Node[] = [];
const clients: TestClient[] = [];

before(async () => {
  redis = await TestRedis.start();
  nodes = await Promise.all([1, 2, 3].map(() => Node.start(redis.url)));
});
after(async () => {
  for (const client of clients) client.ws.terminate();
  await Promise.all(nodes.map((n) => n.stop()));
  await redis.stop();
});

const raw = (node: Node, channel: string, query = ''): string => `ws://127.0.0.1:${node.port}/v4/${channel}?api_key=${TEST_APP.key}${query}`;
const server = (node: Node): { port: number; scheme: 'http' } => ({ port: node.port, scheme: 'http' });

async function v1On(node: Node, fields: Record<string, unknown> = {}): Promise<V1Client> {
  const client = await V1Client.connected(server(node) as never, fields);
  clients.push(client.raw);
  return client;
}

describe('three nodes on one Redis', { timeout: 60_000 }, () => {
  it('a publish on any node (raw, v1, REST) reaches subscribers on every node, in order', async () => {
    const [a, b, c] = nodes as [Node, Node, Node];
    const rawA = await TestClient.open(raw(a, 'everywhere'));
    const rawC = await TestClient.open(raw(c, 'everywhere'));
    clients.push(rawA, rawC);
    const v1B = await v1On(b);
    await v1B.command('subscribe', { channel: 'everywhere' });
    await settle(100);

    for (let i = 0; i < 20; i++) rawA.ws.send(`raw-${i}`);
    // Raw frames are fire-and-forget: let them land before another node publishes, so the
    // expected order is well defined.
    await rawC.messages(20, 10_000);
    const publisher = await v1On(c);
    for (let i = 0; i < 20; i++) await publisher.command('publish', { channel: 'everywhere', event: 'n', data: i });
    const res = await fetch(`http://127.0.0.1:${b.port}/api/publish`, {
      method: 'POST',
      body: JSON.stringify({ key: TEST_APP.key, secret: TEST_APP.secret, channelId: 'everywhere', message: 'from-rest' }),
    });
    assert.equal(res.status, 200);

    const expected = [...Array.from({ length: 20 }, (_, i) => `raw-${i}`), ...Array.from({ length: 20 }, (_, i) => JSON.stringify({ event: 'n', data: i })), 'from-rest'];
    const atC = await rawC.messages(41, 10_000);
    assert.deepEqual(atC.map((m) => m.text), expected);
    const atA = await rawA.messages(21, 10_000); // not its own 20
    assert.deepEqual(atA.map((m) => m.text), expected.slice(20));
    const pubs = await v1B.untilPushes(41);
    assert.deepEqual(pubs.map((p) => p.offset), Array.from({ length: 41 }, (_, i) => i + 1), 'one stream, consecutive offsets');
  });

  it('presence is cluster-wide: rosters, joins and leaves across nodes', async () => {
    const [a, b, c] = nodes as [Node, Node, Node];
    const alice = await v1On(a, { token: await connectionToken('alice') });
    const bob = await v1On(b, { token: await connectionToken('bob') });
    await alice.command('subscribe', { channel: 'presence-hall' });
    await bob.command('subscribe', { channel: 'presence-hall' });
    const [join] = await alice.untilPushes(1, 'join');
    assert.equal((join?.['member'] as { user: string }).user, 'bob');

    const carol = await TestClient.open(raw(c, 'presence-hall', '&user=carol'));
    clients.push(carol);
    await carol.until(() => carol.events('system:member_list').length === 1, 'member_list');
    const users = (carol.events('system:member_list')[0]?.data as { members: Array<{ user: string }> }).members.map((m) => m.user);
    assert.deepEqual(users, ['alice', 'bob', 'carol']);
    await alice.untilPushes(2, 'join');

    await bob.command('unsubscribe', { channel: 'presence-hall' });
    await carol.until(() => carol.events('system:member_left').length === 1, 'member_left on another node');
    const left = carol.events('system:member_left')[0]?.data as { member: { user: string }; members: Array<{ user: string }> };
    assert.deepEqual([left.member.user, left.members.map((m) => m.user)], ['bob', ['alice', 'carol']]);
  });

  it('/health reports cluster-wide nodes, connections and channels', async () => {
    const deadline = Date.now() + 12_000;
    let body: { engine: string; cluster: { nodes: number; connections: number } } | undefined;
    while (Date.now() < deadline) {
      body = (await (await fetch(`http://127.0.0.1:${nodes[0]?.port}/health`)).json()) as typeof body;
      if (body?.cluster.nodes === 3) break;
      await settle(500);
    }
    assert.equal(body?.engine, 'redis');
    assert.equal(body?.cluster.nodes, 3);
    assert.ok((body?.cluster.connections ?? 0) >= 4);
  });

  it('a crashed node\'s presence members disappear within the presence TTL', async () => {
    const doomed = await Node.start(redis.url);
    const watcher = await v1On(nodes[0] as Node, { token: await connectionToken('watcher') });
    await watcher.command('subscribe', { channel: 'presence-crash' });
    const ghost = await V1Client.connected(server(doomed) as never, { token: await connectionToken('ghost') });
    await ghost.command('subscribe', { channel: 'presence-crash' });
    const before = (await watcher.command('presence', { channel: 'presence-crash' })).result?.['members'] as Array<{ user: string }>;
    assert.deepEqual(before.map((m) => m.user), ['watcher', 'ghost']);
    await doomed.stop('SIGKILL');
    const deadline = Date.now() + 8_000;
    let users: string[] = [];
    while (Date.now() < deadline) {
      users = ((await watcher.command('presence', { channel: 'presence-crash' })).result?.['members'] as Array<{ user: string }>).map((m) => m.user);
      if (users.length === 1) break;
      await settle(250);
    }
    assert.deepEqual(users, ['watcher']);
  });
});
