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

let redis: TestRedis;
let nodes: Node[] = [];
const clients: PusherClient[] = [];

before(async () => {
  redis = await TestRedis.start();
  nodes = await Promise.all([Node.start(redis.url, { apps: [APP] }), Node.start(redis.url, { apps: [APP] })]);
});
after(async () => {
  for (const client of clients) client.disconnect();
  await Promise.all(nodes.map((n) => n.stop()));
  await redis.stop();
});

function backend(node: Node): PusherServer {
  return new PusherServer({ appId: APP.id, key: APP.key, secret: APP.secret, host: '127.0.0.1', port: String(node.port), useTLS: false });
}

/** A pusher-js client on `node`, authorized by a backend as the given user. */
async function client(node: Node, user: string): Promise<PusherClient> {
  const signer = backend(node);
  const pusher = new Pusher(APP.key, {
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
      customHandler: ({ socketId }, callback) => callback(null, signer.authenticateUser(socketId, { id: user })),
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
