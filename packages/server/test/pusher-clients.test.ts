/**
 * The Pusher dialect as pusher-js (its Node build, unchanged) sees it, with the real `pusher` SDK
 * as the backend and a real HTTP auth endpoint: connection, public, private, presence, encrypted
 * and cache channels, client events, subscription_count, sign-in and user channels, and the
 * close codes pusher-js acts on (refused: no reconnect; shutdown: reconnect at once).
 */
import assert from 'node:assert/strict';
import { connect, createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { TestClient, settle, withTimeout } from './helpers.ts';
import {
  PUSHER_APP,
  PusherRig,
  QUIET_APP,
  collect,
  connectedOf,
  errorCodes,
  eventually,
  nextEvent,
  startPusherServer,
  stateLog,
  subscribed,
} from './pusher-helpers.ts';
import type { PusherClient } from './pusher-js.ts';

interface Members {
  count: number;
  members: Record<string, unknown>;
  me: { id: string } | null;
}

let rig: PusherRig;
before(async () => {
  rig = await PusherRig.start();
});
after(() => rig.close());

describe('pusher-js: connection and channels', () => {
  it('connects with a Pusher socket id and receives a public channel event triggered by the SDK', async () => {
    const pusher = await rig.connected();
    assert.match(pusher.connection.socket_id, /^\d+\.\d+$/);
    await subscribed(pusher, 'orders');
    const event = nextEvent(pusher, 'orders', 'OrderShipped');
    await rig.backend().trigger('orders', 'OrderShipped', { id: 7, items: ['a', 'b'] });
    assert.deepEqual((await event).data, { id: 7, items: ['a', 'b'] });
  });

  it('private channels: authorized by the auth endpoint; a refusal by the endpoint and a bad signature refused by the server reach the channel', async () => {
    const pusher = await rig.connected({ user: 'alice' });
    await subscribed(pusher, 'private-orders.1');
    const auth = rig.authRequests.find((r) => r.channel === 'private-orders.1');
    assert.equal(auth?.socketId, pusher.connection.socket_id, 'pusher-js asked the endpoint over HTTP with its socket id');
    const event = nextEvent(pusher, 'private-orders.1', 'paid');
    await rig.backend().trigger('private-orders.1', 'paid', { total: 3 });
    assert.deepEqual((await event).data, { total: 3 });

    const refusedByBackend = await rig.connected({ user: 'forbidden' });
    const endpointError = nextEvent(refusedByBackend, 'private-orders.2', 'pusher:subscription_error');
    refusedByBackend.subscribe('private-orders.2');
    assert.equal(((await endpointError).data as { status?: number }).status, 403);

    const forger = await rig.connected({ user: 'mallory', authParams: { sign: 'wrong' } });
    const got = collect(forger, 'private-orders.1', 'paid');
    const serverError = nextEvent(forger, 'private-orders.1', 'pusher:subscription_error');
    forger.subscribe('private-orders.1');
    const refusal = (await serverError).data as { type?: string; status?: number; error?: string };
    assert.equal(refusal.type, 'AuthError');
    assert.equal(refusal.status, 401, 'the server refused it (the endpoint answered 200)');
    assert.match(refusal.error ?? '', /Invalid signature/);
    await rig.backend().trigger('private-orders.1', 'paid', { total: 4 });
    await settle();
    assert.deepEqual(got, [], 'a refused subscriber receives nothing');
  });

  it('presence: members on subscribe, member_added and member_removed once per user (a second connection of a user changes nothing)', async () => {
    const alice = await rig.connected({ user: 'alice' });
    const first = (await subscribed(alice, 'presence-room')) as Members;
    assert.deepEqual(Object.keys(first.members), ['alice']);
    assert.equal(first.me?.id, 'alice');
    const added = collect(alice, 'presence-room', 'pusher:member_added');
    const removed = collect(alice, 'presence-room', 'pusher:member_removed');

    const bob = await rig.connected({ user: 'bob' });
    const atBob = (await subscribed(bob, 'presence-room')) as Members;
    assert.deepEqual(Object.keys(atBob.members).sort(), ['alice', 'bob']);
    assert.deepEqual(atBob.members['alice'], { name: 'alice' }, 'user_info from the backend');
    await eventually(() => added.length === 1, 'member_added bob');
    assert.deepEqual(added[0], { id: 'bob', info: { name: 'bob' } });

    const bobAgain = await rig.connected({ user: 'bob' });
    const atSecond = (await subscribed(bobAgain, 'presence-room')) as Members;
    assert.equal(atSecond.count, 2, 'two users, three connections');
    bobAgain.disconnect();
    await settle(250);
    assert.equal(added.length, 1, 'no member_added for a second connection of bob');
    assert.deepEqual(removed, [], 'no member_removed while bob still has a connection');
    assert.equal((alice.channel('presence-room') as unknown as { members: Members }).members.count, 2);

    bob.unsubscribe('presence-room');
    await eventually(() => removed.length === 1, 'member_removed bob');
    assert.deepEqual(removed[0], { id: 'bob', info: { name: 'bob' } });
  });

  it('private-encrypted channels: the SDK encrypts, pusher-js decrypts with the shared secret; the server passes ciphertext', async () => {
    const channel = 'private-encrypted-ledger';
    const pusher = await rig.connected({ user: 'alice' });
    await subscribed(pusher, channel);
    // A plain Pusher-protocol socket on the same channel shows what the server sends.
    const sniffer = new TestClient(`ws://127.0.0.1:${rig.port}/app/${PUSHER_APP.key}?protocol=7`);
    try {
      await sniffer.until(() => sniffer.events('pusher:connection_established').length === 1, 'connection_established');
      const established = sniffer.events('pusher:connection_established')[0]?.data as string;
      const socketId = (JSON.parse(established) as { socket_id: string }).socket_id;
      const { auth } = rig.backend().authorizeChannel(socketId, channel);
      sniffer.ws.send(JSON.stringify({ event: 'pusher:subscribe', data: { channel, auth } }));
      await sniffer.until(() => sniffer.events('pusher_internal:subscription_succeeded').length === 1, 'sniffer subscribed');

      const event = nextEvent(pusher, channel, 'balance');
      await rig.backend().trigger(channel, 'balance', { secret: 'plain-text-balance-42' });
      assert.deepEqual((await event).data, { secret: 'plain-text-balance-42' });
      await sniffer.until(() => sniffer.events('balance').length === 1, 'the encrypted frame');
      const wire = sniffer.received.find((r) => r.text.includes('"balance"'))?.text ?? '';
      assert.doesNotMatch(wire, /plain-text-balance/);
      const data = JSON.parse(sniffer.events('balance')[0]?.data as string) as { nonce?: string; ciphertext?: string };
      assert.equal(typeof data.nonce, 'string');
      assert.equal(typeof data.ciphertext, 'string');
    } finally {
      sniffer.close();
    }
  });

  it('cache channels: the last event on subscribe, pusher:cache_miss when there is none', async () => {
    await rig.backend().trigger('cache-prices', 'price', { eur: 1 });
    await rig.backend().trigger('cache-prices', 'price', { eur: 2 });
    const pusher = await rig.connected();
    const cached = nextEvent(pusher, 'cache-prices', 'price');
    const missOnPrices = collect(pusher, 'cache-prices', 'pusher:cache_miss');
    await subscribed(pusher, 'cache-prices');
    assert.deepEqual((await cached).data, { eur: 2 });

    const miss = nextEvent(pusher, 'cache-empty', 'pusher:cache_miss');
    await subscribed(pusher, 'cache-empty');
    await miss;
    assert.deepEqual(missOnPrices, []);
  });
});

describe('pusher-js: client events', () => {
  it('reach the others, never the sender, with user_id on presence channels', async () => {
    const alice = await rig.connected({ user: 'alice' });
    const bob = await rig.connected({ user: 'bob' });
    await Promise.all([subscribed(alice, 'presence-chat'), subscribed(bob, 'presence-chat')]);
    const echoed = collect(bob, 'presence-chat', 'client-typing');
    const atAlice = nextEvent(alice, 'presence-chat', 'client-typing');
    assert.equal(bob.channel('presence-chat').trigger('client-typing', { typing: true }), true);
    const { data, metadata } = await atAlice;
    assert.deepEqual(data, { typing: true });
    assert.deepEqual(metadata, { user_id: 'bob' });

    await Promise.all([subscribed(alice, 'private-chat'), subscribed(bob, 'private-chat')]);
    const onPrivate = nextEvent(alice, 'private-chat', 'client-seen');
    bob.channel('private-chat').trigger('client-seen', { n: 1 });
    assert.deepEqual((await onPrivate).data, { n: 1 });
    await settle();
    assert.deepEqual(echoed, [], 'the sender got nothing back');
  });

  it('are refused with pusher:error 4301: on an app without clientEvents, on public channels, and past 10 a second', async () => {
    const quiet = await rig.connected({ app: QUIET_APP, user: 'q' });
    const quietPeer = await rig.connected({ app: QUIET_APP, user: 'r' });
    await Promise.all([subscribed(quiet, 'private-room'), subscribed(quietPeer, 'private-room')]);
    const quietErrors = errorCodes(quiet);
    const quietGot = collect(quietPeer, 'private-room', 'client-hi');
    quiet.channel('private-room').trigger('client-hi', {});
    await eventually(() => quietErrors.length === 1, 'pusher:error on the quiet app');
    assert.deepEqual(quietErrors, [4301]);

    const sender = await rig.connected({ user: 's' });
    const receiver = await rig.connected({ user: 't' });
    await Promise.all([subscribed(sender, 'news'), subscribed(receiver, 'news')]);
    const errors = errorCodes(sender);
    const publicGot = collect(receiver, 'news', 'client-hi');
    sender.channel('news').trigger('client-hi', {});
    await eventually(() => errors.length === 1, 'pusher:error on a public channel');
    assert.deepEqual(errors, [4301]);

    await Promise.all([subscribed(sender, 'private-burst'), subscribed(receiver, 'private-burst')]);
    const burst = collect(receiver, 'private-burst', 'client-n');
    for (let n = 0; n < 13; n++) sender.channel('private-burst').trigger('client-n', { n });
    await eventually(() => burst.length + errors.length - 1 >= 13, 'every client event delivered or refused');
    await settle();
    const refused = errors.length - 1;
    assert.ok(refused >= 2, `at least 2 of 13 refused (got ${refused})`);
    assert.ok(burst.length >= 10 && burst.length <= 11, `10 a second pass (got ${burst.length})`);
    assert.deepEqual(errors.slice(1), Array(refused).fill(4301));
    assert.deepEqual(burst.slice(0, 10), Array.from({ length: 10 }, (_, n) => ({ n })), 'the first ten, in order');
    assert.deepEqual([quietGot, publicGot], [[], []], 'refused client events reach no one');
    assert.equal(sender.connection.state, 'connected', 'a refused client event does not close the connection');
  });
});

describe('pusher-js: subscription_count', () => {
  it('is sent as pusher:subscription_count on apps with subscriptionCount, and not otherwise', async () => {
    const a = await rig.connected();
    const counts = collect(a, 'counted', 'pusher:subscription_count');
    await subscribed(a, 'counted');
    await eventually(() => counts.length === 1, 'count 1');
    const b = await rig.connected();
    await subscribed(b, 'counted');
    await eventually(() => counts.length === 2, 'count 2');
    b.unsubscribe('counted');
    await eventually(() => counts.length === 3, 'count back to 1');
    assert.deepEqual(counts, [{ subscription_count: 1 }, { subscription_count: 2 }, { subscription_count: 1 }]);
    assert.equal(a.channel('counted').subscriptionCount, 1);

    const quiet = await rig.connected({ app: QUIET_APP });
    const quietCounts = collect(quiet, 'counted', 'pusher:subscription_count');
    await subscribed(quiet, 'counted');
    const other = await rig.connected({ app: QUIET_APP });
    await subscribed(other, 'counted');
    await settle();
    assert.deepEqual(quietCounts, []);
  });
});

describe('pusher-js: user authentication', () => {
  it('signin, sendToUser reaches the user, terminateUserConnections closes it with 4009 and pusher-js stays disconnected', async () => {
    const pusher = await rig.connected({ user: 'carol' });
    const other = await rig.connected({ user: 'dave' });
    pusher.signin();
    other.signin();
    await withTimeout(pusher.user.signinDonePromise, 5000, 'signin');
    await withTimeout(other.user.signinDonePromise, 5000, 'signin of dave');
    assert.equal((pusher.user.user_data as { id?: string }).id, 'carol');
    // pusher-js subscribes to #server-to-user-carol itself once signin succeeds.
    await eventually(() => pusher.user.serverToUserChannel?.subscribed === true, '#server-to-user-carol subscribed');
    await eventually(() => other.user.serverToUserChannel?.subscribed === true, '#server-to-user-dave subscribed');

    const note = withTimeout(new Promise((resolve) => pusher.user.bind('note', resolve)), 5000, 'user event');
    const notForDave: unknown[] = [];
    other.user.bind('note', (data: unknown) => notForDave.push(data));
    await rig.backend().sendToUser('carol', 'note', { text: 'hi carol' });
    assert.deepEqual(await note, { text: 'hi carol' });

    const codes = errorCodes(pusher);
    const states = stateLog(pusher);
    await rig.backend().terminateUserConnections('carol');
    await eventually(() => pusher.connection.state === 'disconnected', 'carol disconnected');
    await settle(300);
    assert.ok(codes.includes(4009), `pusher-js saw 4009 (saw ${JSON.stringify(codes)})`);
    assert.deepEqual(states, ['disconnected'], 'no reconnect after 4009');
    assert.equal(other.connection.state, 'connected', 'another user stays');
    assert.deepEqual(notForDave, []);
  });

  it('a pusher:signin with a bad signature closes with 4009', async () => {
    const pusher = rig.client({
      user: 'eve',
      extra: {
        userAuthentication: {
          endpoint: '',
          transport: 'ajax',
          customHandler: ({ socketId }, callback) => callback(null, rig.backend(QUIET_APP).authenticateUser(socketId, { id: 'eve' })),
        },
      },
    });
    const codes = errorCodes(pusher);
    await connectedOf(pusher);
    pusher.signin();
    await eventually(() => pusher.connection.state === 'disconnected', 'eve disconnected');
    assert.ok(codes.includes(4009), `pusher-js saw 4009 (saw ${JSON.stringify(codes)})`);
  });
});

describe('pusher-js: close codes', () => {
  it('an unknown key is refused with 4001 and pusher-js does not retry', async () => {
    const pusher = rig.client({ key: 'no-such-key' });
    const codes = errorCodes(pusher);
    const states = stateLog(pusher);
    await eventually(() => codes.includes(4001), 'error 4001');
    await eventually(() => pusher.connection.state === 'disconnected', 'disconnected');
    await settle(300);
    assert.deepEqual(states.filter((s) => s !== 'connecting'), ['disconnected'], 'no retry scheduled');
    assert.equal(pusher.connection.state, 'disconnected');
  });

  it('server shutdown closes with 4200 and pusher-js reconnects at once to the new server at the same address, resubscribed', async () => {
    const first = await startPusherServer();
    const address = await Forwarder.start(first.port);
    const pusher: PusherClient = rig.client({ port: address.port });
    await connectedOf(pusher);
    await subscribed(pusher, 'orders');
    const firstSocket = pusher.connection.socket_id;
    const codes = errorCodes(pusher);
    const resubscribed = nextEvent(pusher, 'orders', 'pusher:subscription_succeeded');
    // pusher-js retries within milliseconds and, if nothing answers then, waits ~10 s: the
    // forwarder holds that retry until the new server listens, as a balancer would.
    const next = address.hold();
    await first.close();
    const second = await startPusherServer();
    next(second.port);
    try {
      await resubscribed;
      assert.ok(codes.includes(4200), `pusher-js saw 4200 (saw ${JSON.stringify(codes)})`);
      assert.equal(pusher.connection.state, 'connected');
      assert.notEqual(pusher.connection.socket_id, firstSocket);
      const event = nextEvent(pusher, 'orders', 'after-restart');
      await rig.backend(PUSHER_APP, second.port).trigger('orders', 'after-restart', { ok: true });
      assert.deepEqual((await event).data, { ok: true });
    } finally {
      pusher.disconnect();
      await second.close();
      await address.close();
    }
  });
});

/** A TCP address whose target server can be swapped; connections made while held wait for the next one. */
class Forwarder {
  readonly #server: NetServer;
  #target: Promise<number>;
  readonly #sockets = new Set<Socket>();

  private constructor(server: NetServer, target: number) {
    this.#server = server;
    this.#target = Promise.resolve(target);
  }

  static async start(target: number): Promise<Forwarder> {
    const forwarder = new Forwarder(createNetServer((socket) => void forwarder.#pipe(socket)), target);
    await new Promise<void>((resolve) => forwarder.#server.listen(0, '127.0.0.1', resolve));
    return forwarder;
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  /** New connections wait until the returned function names the next target port. */
  hold(): (port: number) => void {
    let release: (port: number) => void = () => undefined;
    this.#target = new Promise((resolve) => (release = resolve));
    return (port) => release(port);
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  async #pipe(socket: Socket): Promise<void> {
    this.#sockets.add(socket);
    socket.on('close', () => this.#sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    const upstream = connect(await this.#target, '127.0.0.1');
    this.#sockets.add(upstream);
    upstream.on('close', () => this.#sockets.delete(upstream));
    upstream.on('error', () => socket.destroy());
    socket.on('close', () => upstream.destroy());
    upstream.on('close', () => socket.destroy());
    socket.pipe(upstream).pipe(socket);
  }
}
