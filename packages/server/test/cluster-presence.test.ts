/**
 * Presence when a node dies: its members must leave every roster with exactly one leave event,
 * in every dialect, on every surviving node, within presenceTtlMs plus one sweep — not linger
 * as ghosts in open member lists (the bug soketi, Reverb and sockudo users report).
 *
 * Real processes on a real redis-server; a node is SIGKILLed so it cannot say goodbye. A third
 * node also sweeps, so "exactly once" is tested across two nodes racing to announce.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import PusherServer from 'pusher';
import type { Member } from '@chorus/protocol';
import { channelAuthSignature } from '../src/dialects/pusher/signatures.ts';
import { createRedisEngine } from '../src/engine/redis/index.ts';
import type { Engine, PresencePublication, Publication } from '../src/engine/types.ts';
import { TEST_APP, TestClient, settle } from './helpers.ts';
import { V1Client, connectionToken, type PushFrame } from './v1-helpers.ts';
import { Node } from './cluster.ts';
import { TestRedis } from './redis.ts';

const TTL_MS = 1500;
/** The sweep runs at most every presenceTtlMs/2; the rest is slack for process scheduling. */
const ANNOUNCE_WITHIN_MS = TTL_MS + TTL_MS / 2 + 2000;
const CHANNEL = 'presence-room';
const APP = { ...TEST_APP, limits: { messagesPerSecond: 0, maxConnectionsPerIp: 10_000 } };

let redis: TestRedis;
const clients: TestClient[] = [];
const engines: Engine[] = [];
const nodes: Node[] = [];

before(async () => {
  redis = await TestRedis.start();
});
after(async () => {
  for (const client of clients) client.ws.terminate();
  await Promise.all(engines.map((e) => e.close()));
  await Promise.all(nodes.map((n) => n.stop('SIGKILL')));
  await redis.stop();
});

function startNode(): Promise<Node> {
  return Node.start(redis.url, { apps: [APP], engine: { type: 'redis', url: redis.url, probeIntervalMs: 300, presenceTtlMs: TTL_MS, nodeTtlMs: TTL_MS } }).then((node) => {
    nodes.push(node);
    return node;
  });
}

async function open(url: string): Promise<TestClient> {
  const client = await TestClient.open(url);
  clients.push(client);
  return client;
}

const rawUrl = (node: Node, user: string): string => `ws://127.0.0.1:${node.port}/v4/${CHANNEL}?api_key=${APP.key}&presence=1&user=${user}`;

async function rawMember(node: Node, user: string): Promise<TestClient> {
  const client = await open(rawUrl(node, user));
  await client.until(() => client.events('system:member_list').length === 1, 'the member list');
  return client;
}

async function v1Member(node: Node, user: string): Promise<V1Client> {
  const client = new V1Client(await open(`ws://127.0.0.1:${node.port}/v1/connect?key=${APP.key}`));
  assert.equal((await client.command('connect', { token: await connectionToken(user) })).ok, true);
  assert.equal((await client.command('subscribe', { channel: CHANNEL })).ok, true);
  return client;
}

/** A Pusher protocol 7 client on plain `ws`, subscribed to the presence channel with a signed auth. */
async function pusherMember(node: Node, user: string): Promise<TestClient> {
  const client = await open(`ws://127.0.0.1:${node.port}/app/${APP.key}?protocol=7`);
  await client.until(() => client.events('pusher:connection_established').length === 1, 'pusher:connection_established');
  const established = client.events('pusher:connection_established')[0]?.data as string;
  const socketId = (JSON.parse(established) as { socket_id: string }).socket_id;
  const channelData = JSON.stringify({ user_id: user, user_info: { name: user } });
  const auth = channelAuthSignature(APP, socketId, CHANNEL, channelData);
  client.ws.send(JSON.stringify({ event: 'pusher:subscribe', data: { channel: CHANNEL, auth, channel_data: channelData } }));
  await client.until(() => client.events('pusher_internal:subscription_succeeded').length === 1, 'pusher_internal:subscription_succeeded');
  return client;
}

/** Users in the raw presence events of this name, in arrival order. */
const rawUsers = (client: TestClient, event: 'system:member_left' | 'system:member_joined'): string[] =>
  client.events(event).map((e) => (e.data as { member: Member }).member.user);
const v1LeftUsers = (client: V1Client): string[] => client.pushes('leave', CHANNEL).map((p: PushFrame) => (p['member'] as Member).user);
const pusherRemovedUsers = (client: TestClient): string[] =>
  client.events('pusher_internal:member_removed').map((e) => (JSON.parse(e.data as string) as { user_id: string }).user_id);
const sorted = (users: string[]): string[] => [...users].sort();

/** A Redis engine in this process, as a node would run it; close() is a crash to Redis (no leaves). */
function engine(delivered: Publication[]): Engine {
  const created = createRedisEngine({
    url: redis.url,
    nodeId: `n${Math.random().toString(36).slice(2, 8)}`,
    log: pino({ level: 'silent' }),
    handlers: { onPublication: (p) => delivered.push(p), onGap: () => undefined, onControl: () => undefined, onCountChange: () => undefined },
    policy: () => ({ size: 10, ttlMs: 60_000 }),
    localStats: () => ({ connections: 0, channels: 0 }),
    presenceTtlMs: 1000,
  });
  engines.push(created);
  return created;
}

const lefts = (delivered: Publication[]): PresencePublication[] => delivered.filter((p): p is PresencePublication => p.kind === 'presence' && p.action === 'left');

async function waitFor(predicate: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate() && Date.now() < deadline) await settle(50);
}

describe('presence when a node dies', { timeout: 60_000 }, () => {
  it('a SIGKILLed node\'s members leave: one leave event each, in raw, v1 and Pusher, on every node; fresh lists show no ghost', async (t) => {
    const [a, b, c] = await Promise.all([startNode(), startNode(), startNode()]);
    const ghosts = ['raw-ghost', 'v1-ghost', 'pusher-ghost'];
    await rawMember(a, 'raw-ghost');
    await v1Member(a, 'v1-ghost');
    await pusherMember(a, 'pusher-ghost');
    const rawB = await rawMember(b, 'raw-b');
    const v1B = await v1Member(b, 'v1-b');
    const pusherB = await pusherMember(b, 'pusher-b');
    const rawC = await rawMember(c, 'raw-c');
    const survivors = ['raw-b', 'v1-b', 'pusher-b', 'raw-c'];
    const roster = (await v1B.command('presence', { channel: CHANNEL })).result?.['members'] as Member[];
    assert.deepEqual(sorted(roster.map((m) => m.user)), sorted([...ghosts, ...survivors]));
    assert.deepEqual(sorted(rawB.events('system:member_list').flatMap((e) => (e.data as { members: Member[] }).members.map((m) => m.user))), sorted([...ghosts, 'raw-b']));

    const killedAt = Date.now();
    await a.stop('SIGKILL');
    const allLeft = (users: string[]): boolean => ghosts.every((g) => users.includes(g));
    await rawB.until(() => allLeft(rawUsers(rawB, 'system:member_left')), 'member_left for every member of the dead node', ANNOUNCE_WITHIN_MS);
    const announcedAfterMs = Date.now() - killedAt;
    t.diagnostic(`every ghost announced ${announcedAfterMs} ms after the kill (presenceTtlMs ${TTL_MS})`);
    await rawC.until(() => allLeft(rawUsers(rawC, 'system:member_left')), 'member_left on the third node', 1000);
    await v1B.raw.until(() => allLeft(v1LeftUsers(v1B)), 'v1 leave pushes', 1000);
    await pusherB.until(() => allLeft(pusherRemovedUsers(pusherB)), 'pusher_internal:member_removed', 1000);
    // Long enough for any second announcement (another sweep, a lazy cleanup) to show up.
    await settle(TTL_MS);

    assert.deepEqual(sorted(rawUsers(rawB, 'system:member_left')), sorted(ghosts), 'node B raw: exactly one member_left per ghost, none for a live member');
    assert.deepEqual(sorted(rawUsers(rawC, 'system:member_left')), sorted(ghosts), 'node C raw: the same, once');
    assert.deepEqual(sorted(v1LeftUsers(v1B)), sorted(ghosts), 'node B v1: one leave push per ghost');
    assert.deepEqual(sorted(pusherRemovedUsers(pusherB)), sorted(ghosts), 'node B Pusher: one member_removed per ghost');
    for (const event of rawB.events('system:member_left')) {
      const { members } = event.data as { members: Member[] };
      assert.ok(members.every((m) => survivors.includes(m.user) || ghosts.includes(m.user)), 'the roster after each leave holds only real members');
    }
    const lastLeft = rawB.events('system:member_left').at(-1)?.data as { members: Member[] };
    assert.deepEqual(sorted(lastLeft.members.map((m) => m.user)), sorted(survivors), 'the roster after the last leave is the survivors');

    // Fresh lists, in every dialect, on the surviving node.
    const fresh = await rawMember(b, 'late');
    const list = fresh.events('system:member_list')[0]?.data as { members: Member[] };
    assert.deepEqual(sorted(list.members.map((m) => m.user)), sorted([...survivors, 'late']));
    const v1List = (await v1B.command('presence', { channel: CHANNEL })).result?.['members'] as Member[];
    assert.deepEqual(sorted(v1List.map((m) => m.user)), sorted([...survivors, 'late']));
    const api = new PusherServer({ appId: APP.id, key: APP.key, secret: APP.secret, host: '127.0.0.1', port: String(b.port), useTLS: false });
    const users = (await (await api.get({ path: `/channels/${CHANNEL}/users` })).json()) as { users: Array<{ id: string }> };
    assert.deepEqual(sorted(users.users.map((u) => u.id)), sorted([...survivors, 'late']));
    // No leave event for anyone alive, in the time it took.
    assert.deepEqual(rawUsers(rawB, 'system:member_left').filter((u) => !ghosts.includes(u)), []);
    assert.ok(announcedAfterMs <= ANNOUNCE_WITHIN_MS, `announced ${announcedAfterMs} ms after the kill`);
    // The dead node's connections no longer count as subscriptions (its share of the cluster-wide
    // count is swept within about 1.3 × nodeTtlMs, here TTL_MS): the 5 live connections remain.
    const subscriptions = async (): Promise<number> => ((await (await api.get({ path: `/channels/${CHANNEL}`, params: { info: 'subscription_count' } })).json()) as { subscription_count: number }).subscription_count;
    const countDeadline = Date.now() + 2 * TTL_MS + 1000;
    while ((await subscriptions()) !== survivors.length + 1 && Date.now() < countDeadline) await settle(100);
    assert.equal(await subscriptions(), survivors.length + 1, 'subscription_count on the surviving node: its live connections only');
  });

  it('engine: members of a node that stopped refreshing are announced once per cluster, one user\'s two tabs as one Pusher leave', async () => {
    const channel = `presence-engine-${Date.now().toString(36)}`;
    const atY: Publication[] = [];
    const atZ: Publication[] = [];
    const doomed = engine([]);
    const [y, z] = [engine(atY), engine(atZ)];
    await settle(200);
    await Promise.all([y.broker.attach('app', channel), z.broker.attach('app', channel)]);
    const member = (user: string, uuid: string): Member => ({ user, uuid });
    await doomed.presence.join('app', channel, 'd1', member('ann', 'd1'), 100);
    await doomed.presence.join('app', channel, 'd2', member('ann', 'd2'), 100);
    await doomed.presence.join('app', channel, 'd3', member('bob', 'd3'), 100);
    await y.presence.join('app', channel, 'y1', member('yve', 'y1'), 100);
    await doomed.close(); // stops refreshing, says nothing: a crash, as far as Redis can tell

    await waitFor(() => lefts(atY).length >= 3 && lefts(atZ).length >= 3, 4000);
    await settle(1500);
    for (const delivered of [atY, atZ]) {
      const left = lefts(delivered);
      assert.deepEqual(left.map((p) => p.originId).sort(), ['d1', 'd2', 'd3'], 'each dead member once, on each attached node');
      // What the Pusher encoder shows: a leave whose roster still has another tab of the user is no leave.
      const pusherLeaves = left.filter((p) => !p.members.some((m) => m.user === p.member.user && m.uuid !== p.member.uuid)).map((p) => p.member.user);
      assert.deepEqual(pusherLeaves.sort(), ['ann', 'bob']);
      assert.deepEqual(left.at(-1)?.members, [member('yve', 'y1')]);
    }
    assert.deepEqual(await z.presence.members('app', channel), [member('yve', 'y1')], 'the live member is kept (its node refreshes it)');
    // A node that was only cut off, coming back and closing the connection, must not announce a
    // second leave: the member is gone from Redis, and leave says so.
    assert.equal(await z.presence.leave('app', channel, 'd1'), undefined, 'a swept member leaves no roster to announce');
  });

  it('engine: a full roster of 1000 dead members all leave — none lost to Redis\'s pub/sub output limit', async () => {
    const channel = `presence-full-${Date.now().toString(36)}`;
    const delivered: Publication[] = [];
    const doomed = engine([]);
    const watcher = engine(delivered);
    await settle(200);
    await watcher.broker.attach('app', channel);
    const count = 1000; // the default maxPresenceMembers
    for (let i = 0; i < count; i++) await doomed.presence.join('app', channel, `c${i}`, { user: `user-${i}`, uuid: `c${i}`, info: { name: `User number ${i}` } }, count);
    await doomed.close();
    // Every leave carries the roster: one script announcing all would queue ~40 MB to the
    // subscriber at once, and Redis would cut it off (32 MB) and drop every one of them.
    await waitFor(() => lefts(delivered).length >= count, 40_000);
    await settle(600);
    const left = lefts(delivered);
    assert.equal(left.length, count, `${left.length} of ${count} leaves arrived`);
    assert.equal(new Set(left.map((p) => p.originId)).size, count, 'each once');
    assert.deepEqual(left.at(-1)?.members, []);
    assert.deepEqual(await watcher.presence.members('app', channel), []);
  });
});
