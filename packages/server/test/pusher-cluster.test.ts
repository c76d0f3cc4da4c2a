/**
 * Two Chorus nodes on one real redis-server act as one Pusher server: real pusher-js clients on
 * different nodes share public, private and presence channels, client events and user channels,
 * and the real `pusher` SDK can talk to either node's HTTP API.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import PusherServer from 'pusher';
import WebSocket from 'ws';
import { TEST_APP, settle, withTimeout } from './helpers.ts';
import { Node } from './cluster.ts';
import { Pusher, type PusherClient } from './pusher-js.ts';
import { TestRedis } from './redis.ts';

const APP = { ...TEST_APP, clientEvents: true, limits: { messagesPerSecond: 0, maxConnectionsPerIp: 10_000 } };
/** An app with Pusher's subscription_count events on. */
const COUNTED = { id: 'counted', key: 'counted-key-123', secret: 'counted-secret-0123456789', subscriptionCount: true, limits: APP.limits };

let redis: TestRedis;
let nodes: Node[] = [];
const clients: PusherClient[] = [];

before(async () => {
  redis = await TestRedis.start();
  nodes = await Promise.all([Node.start(redis.url, { apps: [APP, COUNTED] }), Node.start(redis.url, { apps: [APP, COUNTED] })]);
});
after(async () => {
  for (const client of clients) client.disconnect();
  await Promise.all(nodes.map((n) => n.stop()));
  await redis.stop();
});

function backend(node: Node, app: { id: string; key: string; secret: string } = APP): PusherServer {
  return new PusherServer({ appId: app.id, key: app.key, secret: app.secret, host: '127.0.0.1', port: String(node.port), useTLS: false });
}

interface ClientOptions {
  readonly app?: { id: string; key: string; secret: string };
  /** Signed into user_data at pusher:signin (Pusher's watchlist). */
  readonly watchlist?: string[];
}

/** A pusher-js client on `node`, authorized by a backend as the given user. */
async function client(node: Node, user: string, options: ClientOptions = {}): Promise<PusherClient> {
  const app = options.app ?? APP;
  const signer = backend(node, app);
  const userData = options.watchlist ? { id: user, watchlist: options.watchlist } : { id: user };
  const pusher = new Pusher(app.key, {
    cluster: 'local',
    wsHost: '127.0.0.1',
    wsPort: node.port,
    forceTLS: false,
    enabledTransports: ['ws'],
    channelAuthorization: {
      endpoint: '',
      transport: 'ajax',
      customHandler: ({ socketId, channelName }, callback) =>
        callback(null, signer.authorizeChannel(socketId, channelName, channelName.startsWith('presence-') ? { user_id: user, user_info: { name: user } } : undefined)),
    },
    userAuthentication: {
      endpoint: '',
      transport: 'ajax',
      customHandler: ({ socketId }, callback) => callback(null, signer.authenticateUser(socketId, userData)),
    },
  });
  clients.push(pusher);
  await withTimeout(new Promise((resolve) => pusher.connection.bind('connected', resolve)), 5000, `${user} did not connect`);
  return pusher;
}

function subscribed(pusher: PusherClient, name: string): Promise<unknown> {
  const channel = pusher.subscribe(name);
  return withTimeout(new Promise((resolve) => channel.bind('pusher:subscription_succeeded', resolve)), 5000, `subscription to ${name}`);
}

function next(pusher: PusherClient, channel: string, event: string): Promise<unknown> {
  return withTimeout(new Promise((resolve) => pusher.channel(channel).bind(event, resolve)), 5000, `${event} on ${channel}`);
}

describe('Pusher on two nodes over Redis', () => {
  it('a trigger through node A reaches a pusher-js client on node B; socket_id exclusion works across nodes', async () => {
    const [a, b] = [await client(nodes[0] as Node, 'a1'), await client(nodes[1] as Node, 'b1')];
    await Promise.all([subscribed(a, 'orders'), subscribed(b, 'orders')]);
    const got: unknown[] = [];
    a.channel('orders').bind('OrderShipped', (d: unknown) => got.push(d));
    const atB = next(b, 'orders', 'OrderShipped');
    await backend(nodes[0] as Node).trigger('orders', 'OrderShipped', { id: 1 }, { socket_id: a.connection.socket_id });
    assert.deepEqual(await atB, { id: 1 });
    await settle(200);
    assert.deepEqual(got, [], 'the excluded socket, on node A, got nothing');
  });

  it('presence across nodes: one roster, member_added, and a raw presence client on the same channel sees the Pusher members', async () => {
    const a = await client(nodes[0] as Node, 'alice');
    const raw = new WebSocket(`ws://127.0.0.1:${(nodes[1] as Node).port}/v4/presence-lobby?api_key=${APP.key}&user=rawuser`);
    const rawFrames: Array<{ event?: string; data?: { member?: { user: string } } }> = [];
    raw.on('message', (data: Buffer) => rawFrames.push(JSON.parse(data.toString()) as (typeof rawFrames)[number]));
    await withTimeout(new Promise((resolve) => raw.once('open', resolve)), 5000, 'raw open');
    try {
      await subscribed(a, 'presence-lobby');
      const added = next(a, 'presence-lobby', 'pusher:member_added');
      const b = await client(nodes[1] as Node, 'bob');
      const members = (await subscribed(b, 'presence-lobby')) as { count: number; members: Record<string, unknown> };
      assert.deepEqual(Object.keys(members.members).sort(), ['alice', 'bob', 'rawuser']);
      assert.equal((await added) !== undefined, true);
      await settle(300);
      const joined = rawFrames.filter((f) => f.event === 'system:member_joined').map((f) => f.data?.member?.user);
      assert.deepEqual(joined.sort(), ['alice', 'bob'], 'the raw client on node B saw alice (node A) and bob (node B) join');
    } finally {
      raw.close();
    }
  });

  it('client events cross nodes, never echoed; sendToUser reaches a signed-in user on the other node', async () => {
    const a = await client(nodes[0] as Node, 'carol');
    const b = await client(nodes[1] as Node, 'dave');
    await Promise.all([subscribed(a, 'private-chat.1'), subscribed(b, 'private-chat.1')]);
    const echoed: unknown[] = [];
    b.channel('private-chat.1').bind('client-typing', (d: unknown) => echoed.push(d));
    const atA = next(a, 'private-chat.1', 'client-typing');
    b.channel('private-chat.1').trigger('client-typing', { who: 'dave' });
    assert.deepEqual(await atA, { who: 'dave' });

    a.signin();
    await withTimeout(a.user.signinDonePromise ?? Promise.reject(new Error('no signin promise')), 5000, 'signin');
    assert.equal((a.user.user_data as { id?: string } | null)?.id, 'carol', 'signed in');
    await settle(300); // pusher-js subscribes #server-to-user-carol after signin_success
    const note = withTimeout(new Promise((resolve) => a.user.bind('note', resolve)), 5000, 'user event');
    await backend(nodes[1] as Node).sendToUser('carol', 'note', { text: 'hi' });
    assert.deepEqual(await note, { text: 'hi' });
    assert.deepEqual(echoed, [], 'the sender did not get its own client event');
  });

  it('subscription counts are cluster-wide and every dialect\'s: subscription_count events on node A count node B\'s pusher-js and raw subscribers; the HTTP API of either node agrees', async () => {
    const [a0, b0] = nodes as [Node, Node];
    const watcher = await client(a0, 'count-a', { app: COUNTED });
    const counts: number[] = [];
    const room = watcher.subscribe('room');
    room.bind('pusher:subscription_count', (data: { subscription_count: number }) => counts.push(data.subscription_count));
    await withTimeout(new Promise((resolve) => room.bind('pusher:subscription_succeeded', resolve)), 5000, 'subscription to room');
    const [b1, b2] = [await client(b0, 'count-b1', { app: COUNTED }), await client(b0, 'count-b2', { app: COUNTED })];
    await Promise.all([subscribed(b1, 'room'), subscribed(b2, 'room'), subscribed(b2, 'only-on-b')]);
    const raw = new WebSocket(`ws://127.0.0.1:${b0.port}/v4/room?api_key=${COUNTED.key}`);
    await withTimeout(new Promise((resolve) => raw.once('open', resolve)), 5000, 'raw client open');
    const until = async (expected: number): Promise<void> => {
      const deadline = Date.now() + 5000;
      while (counts.at(-1) !== expected && Date.now() < deadline) await settle(50);
      assert.equal(counts.at(-1), expected, `subscription_count events seen on node A: ${counts.join(', ')}`);
    };
    try {
      await until(4);
      for (const node of nodes) {
        const api = backend(node, COUNTED);
        const info = (await (await api.get({ path: '/channels/room', params: { info: 'subscription_count' } })).json()) as { occupied: boolean; subscription_count: number };
        assert.deepEqual(info, { occupied: true, subscription_count: 4 });
        const list = (await (await api.get({ path: '/channels' })).json()) as { channels: Record<string, unknown> };
        assert.deepEqual(Object.keys(list.channels).sort(), ['only-on-b', 'room'], 'channels with subscribers on either node');
      }
      b2.disconnect();
      await until(3);
    } finally {
      raw.close();
    }
    await until(2);
    const gone = (await (await backend(a0, COUNTED).get({ path: '/channels/only-on-b' })).json()) as { occupied: boolean };
    assert.equal(gone.occupied, false, 'vacated with its last subscriber on node B');
  });

  it('watchlists: online when a watched user signs in on either node (and at signin for those already online), offline when their last connection anywhere closes', async () => {
    const [a0, b0] = nodes as [Node, Node];
    const early = await client(b0, 'wl-early');
    early.signin();
    await withTimeout(early.user.signinDonePromise ?? Promise.reject(new Error('no signin promise')), 5000, 'signin of wl-early');
    await settle(300);
    const watcher = await client(a0, 'wl-watcher', { watchlist: ['wl-early', 'wl-bob'] });
    const events: string[] = [];
    for (const name of ['online', 'offline'] as const) {
      watcher.user.watchlist.bind(name, (event: { user_ids: string[] }) => events.push(`${name}:${event.user_ids.join(',')}`));
    }
    watcher.signin();
    await withTimeout(watcher.user.signinDonePromise ?? Promise.reject(new Error('no signin promise')), 5000, 'signin of the watcher');
    const seen = async (expected: string[]): Promise<void> => {
      const deadline = Date.now() + 5000;
      while (events.length < expected.length && Date.now() < deadline) await settle(50);
      await settle(300); // nothing more than expected
      assert.deepEqual(events, expected);
    };
    await seen(['online:wl-early']);
    const bob = await client(b0, 'wl-bob');
    bob.signin();
    await seen(['online:wl-early', 'online:wl-bob']);
    const bobAgain = await client(a0, 'wl-bob');
    bobAgain.signin();
    await withTimeout(bobAgain.user.signinDonePromise ?? Promise.reject(new Error('no signin promise')), 5000, 'second signin of wl-bob');
    await seen(['online:wl-early', 'online:wl-bob']);
    bob.disconnect();
    await seen(['online:wl-early', 'online:wl-bob']);
    bobAgain.disconnect();
    await seen(['online:wl-early', 'online:wl-bob', 'offline:wl-bob']);
  });

  it('terminateUserConnections through node B ends the user\'s connection on node A with 4009', async () => {
    const a = await client(nodes[0] as Node, 'erin');
    a.signin();
    await withTimeout(a.user.signinDonePromise ?? Promise.reject(new Error('no signin promise')), 5000, 'signin');
    const closed = withTimeout(
      new Promise<number | undefined>((resolve) => a.connection.bind('error', (e: { data?: { code?: number } }) => resolve(e.data?.code))),
      5000,
      'pusher:error before the close',
    );
    await backend(nodes[1] as Node).terminateUserConnections('erin');
    assert.equal(await closed, 4009);
    // 4009 is final for pusher-js: it does not come back.
    await settle(1500);
    assert.notEqual(a.connection.state, 'connected');
  });
});
