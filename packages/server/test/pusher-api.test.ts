/**
 * The signed Pusher HTTP API driven by the real `pusher` SDK (5.x), every endpoint it calls:
 * events (one, many and too many channels, socket_id exclusion, info), batch_events, channels,
 * channel, users and terminate_connections, plus its refusals (bad secret 401, data over 10 KB
 * 413, too many channels or batch events 400). Receivers are real pusher-js clients.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type PusherServer from 'pusher';
import { settle } from './helpers.ts';
import { PUSHER_APP, PusherRig, collect, errorCodes, eventually, nextEvent, pusherBackend, subscribed } from './pusher-helpers.ts';

let rig: PusherRig;
let backend: PusherServer;
before(async () => {
  rig = await PusherRig.start();
  backend = rig.backend();
});
after(() => rig.close());

/** The SDK's RequestError for a refused call: its HTTP status and body. */
async function refusal(call: Promise<unknown>): Promise<{ status: number; body: string }> {
  try {
    await call;
  } catch (error) {
    const { status, body } = error as { status?: number; body?: string };
    if (status === undefined) throw error;
    return { status, body: body ?? '' };
  }
  throw new Error('the call was not refused');
}

async function json(response: Promise<{ json(): Promise<unknown> }>): Promise<unknown> {
  return (await response).json();
}

describe('pusher SDK: trigger', () => {
  it('one channel, up to 100 channels at once; 101 is refused with 400', async () => {
    const pusher = await rig.connected();
    await Promise.all([subscribed(pusher, 'feed-0'), subscribed(pusher, 'feed-99')]);
    const single = nextEvent(pusher, 'feed-0', 'one');
    assert.deepEqual(await json(backend.trigger('feed-0', 'one', { n: 1 })), {});
    assert.deepEqual((await single).data, { n: 1 });

    const names = Array.from({ length: 100 }, (_, i) => `feed-${i}`);
    const [first, last] = [nextEvent(pusher, 'feed-0', 'many'), nextEvent(pusher, 'feed-99', 'many')];
    await backend.trigger(names, 'many', { n: 100 });
    assert.deepEqual([(await first).data, (await last).data], [{ n: 100 }, { n: 100 }]);

    // The SDK refuses 101 channels itself, so its generic post() sends them; it JSON-encodes the
    // body it is given (its .d.ts says string).
    const tooMany = collect(pusher, 'feed-0', 'too-many');
    const body = { name: 'too-many', data: '{}', channels: [...names, 'feed-100'] } as unknown as string;
    const refused = await refusal(backend.post({ path: '/events', body }));
    assert.equal(refused.status, 400);
    assert.match(refused.body, /at most 100 channels/);
    await settle();
    assert.deepEqual(tooMany, [], 'nothing of a refused trigger is published');
  });

  it('socket_id excludes that connection only', async () => {
    const [a, b] = [await rig.connected(), await rig.connected()];
    await Promise.all([subscribed(a, 'orders'), subscribed(b, 'orders')]);
    const atA = collect(a, 'orders', 'shipped');
    const atB = nextEvent(b, 'orders', 'shipped');
    await backend.trigger('orders', 'shipped', { id: 1 }, { socket_id: a.connection.socket_id });
    assert.deepEqual((await atB).data, { id: 1 });
    await settle();
    assert.deepEqual(atA, [], 'the excluded socket got nothing');
  });

  it("info: 'subscription_count,user_count' answers per channel (a user with two connections counts once)", async () => {
    const [tab1, tab2, other] = [await rig.connected({ user: 'ann' }), await rig.connected({ user: 'ann' }), await rig.connected({ user: 'ben' })];
    await Promise.all([subscribed(tab1, 'presence-desk'), subscribed(tab2, 'presence-desk')]);
    await subscribed(other, 'presence-desk');
    await subscribed(other, 'desk-news');
    const answer = await json(backend.trigger(['presence-desk'], 'ping', {}, { info: 'subscription_count,user_count' }));
    assert.deepEqual(answer, { channels: { 'presence-desk': { subscription_count: 3, user_count: 2 } } });
    const publicAnswer = await json(backend.trigger('desk-news', 'ping', {}, { info: 'subscription_count' }));
    assert.deepEqual(publicAnswer, { channels: { 'desk-news': { subscription_count: 1 } } });
  });

  it('data over 10 KB is refused with 413 and not delivered', async () => {
    const pusher = await rig.connected();
    await subscribed(pusher, 'big');
    const got = collect(pusher, 'big', 'blob');
    const refused = await refusal(backend.trigger('big', 'blob', 'x'.repeat(10 * 1024 + 1)));
    assert.equal(refused.status, 413);
    assert.match(refused.body, /pusher\.maxEventBytes/);
    const fits = nextEvent(pusher, 'big', 'blob');
    await backend.trigger('big', 'blob', 'y'.repeat(10 * 1024 - 2)); // JSON-encoded: two quotes more
    assert.equal(((await fits).data as string).length, 10 * 1024 - 2);
    assert.equal(got.length, 1, 'only the one that fits');
  });

  it('a wrong secret is refused with 401 and publishes nothing', async () => {
    const pusher = await rig.connected();
    await subscribed(pusher, 'orders-401');
    const got = collect(pusher, 'orders-401', 'forged');
    const forger = pusherBackend({ ...PUSHER_APP, secret: 'not-the-secret-0123456789' }, rig.port);
    const refused = await refusal(forger.trigger('orders-401', 'forged', {}));
    assert.equal(refused.status, 401);
    assert.match(refused.body, /Invalid signature/);
    assert.equal((await refusal(forger.get({ path: '/channels' }))).status, 401);
    await settle();
    assert.deepEqual(got, []);
  });
});

describe('pusher SDK: triggerBatch', () => {
  it('up to 10 events in one request; 11 is refused with 400 and publishes none', async () => {
    const pusher = await rig.connected();
    const names = Array.from({ length: 11 }, (_, i) => `batch-${i}`);
    await Promise.all(names.map((name) => subscribed(pusher, name)));
    const got = names.map((name) => collect(pusher, name, 'item'));
    await backend.triggerBatch(names.slice(0, 10).map((channel, i) => ({ channel, name: 'item', data: { i } })));
    await eventually(() => got.slice(0, 10).every((g) => g.length === 1), 'ten batch events');
    assert.deepEqual(got.slice(0, 10).map((g) => g[0]), Array.from({ length: 10 }, (_, i) => ({ i })));

    const refused = await refusal(backend.triggerBatch(names.map((channel, i) => ({ channel, name: 'item', data: { i, again: true } }))));
    assert.equal(refused.status, 400);
    assert.match(refused.body, /at most 10 events/);
    await settle();
    assert.deepEqual(got.map((g) => g.length), [...Array<number>(10).fill(1), 0], 'the refused batch published nothing');
  });
});

describe('pusher SDK: queries', () => {
  it('GET /channels: every occupied channel, filter_by_prefix, info=user_count only with a presence- prefix', async () => {
    const [zed, zoe] = [await rig.connected({ user: 'zed' }), await rig.connected({ user: 'zoe' })];
    await Promise.all([subscribed(zed, 'q-public'), subscribed(zed, 'presence-q-room'), subscribed(zoe, 'presence-q-room'), subscribed(zoe, 'private-q-secret')]);
    const all = (await json(backend.get({ path: '/channels' }))) as { channels: Record<string, unknown> };
    for (const name of ['q-public', 'presence-q-room', 'private-q-secret']) assert.deepEqual(all.channels[name], {}, name);
    assert.ok(!Object.keys(all.channels).some((name) => name.startsWith('#')), 'no internal channels');

    assert.deepEqual(await json(backend.get({ path: '/channels', params: { filter_by_prefix: 'private-q-' } })), { channels: { 'private-q-secret': {} } });
    const presence = await json(backend.get({ path: '/channels', params: { filter_by_prefix: 'presence-q-', info: 'user_count' } }));
    assert.deepEqual(presence, { channels: { 'presence-q-room': { user_count: 2 } } });
    const refused = await refusal(backend.get({ path: '/channels', params: { filter_by_prefix: 'q-', info: 'user_count' } }));
    assert.equal(refused.status, 400);
    assert.match(refused.body, /presence-/);

    zoe.unsubscribe('private-q-secret');
    await settle(100);
    assert.deepEqual(await json(backend.get({ path: '/channels', params: { filter_by_prefix: 'private-q-' } })), { channels: {} }, 'a channel without subscribers is not listed');
  });

  it('GET /channels/{name}: occupied and subscription_count, user_count on presence channels, the cache on cache channels', async () => {
    assert.deepEqual(await json(backend.get({ path: '/channels/c-empty' })), { occupied: false, subscription_count: 0 });
    const [a, b] = [await rig.connected({ user: 'amy' }), await rig.connected({ user: 'amy' })];
    await Promise.all([subscribed(a, 'c-busy'), subscribed(b, 'c-busy'), subscribed(a, 'presence-c-room'), subscribed(b, 'presence-c-room')]);
    assert.deepEqual(await json(backend.get({ path: '/channels/c-busy', params: { info: 'subscription_count' } })), { occupied: true, subscription_count: 2 });
    assert.deepEqual(await json(backend.get({ path: '/channels/presence-c-room', params: { info: 'user_count,subscription_count' } })), {
      occupied: true,
      subscription_count: 2,
      user_count: 1,
    });
    assert.equal((await refusal(backend.get({ path: '/channels/c-busy', params: { info: 'user_count' } }))).status, 400);

    await backend.trigger('cache-c-price', 'price', { eur: 9 });
    const cached = (await json(backend.get({ path: '/channels/cache-c-price', params: { info: 'cache' } }))) as { cache?: { data: string; ttl: number } };
    assert.equal(cached.cache?.data, '{"eur":9}');
    assert.ok((cached.cache?.ttl ?? 0) > 0, 'a ttl in seconds');
  });

  it('GET /channels/{name}/users: each user once; refused for non-presence channels', async () => {
    const clients = [await rig.connected({ user: 'u1' }), await rig.connected({ user: 'u2' }), await rig.connected({ user: 'u2' })];
    await Promise.all(clients.map((c) => subscribed(c, 'presence-u-room')));
    const { users } = (await json(backend.get({ path: '/channels/presence-u-room/users' }))) as { users: Array<{ id: string }> };
    assert.deepEqual(users.map((u) => u.id).sort(), ['u1', 'u2']);
    assert.equal((await refusal(backend.get({ path: '/channels/u-room/users' }))).status, 400);
  });

  it('terminateUserConnections closes every connection of that signed-in user with 4009, no one else', async () => {
    const [tab1, tab2, other] = [await rig.connected({ user: 'tess' }), await rig.connected({ user: 'tess' }), await rig.connected({ user: 'tom' })];
    for (const c of [tab1, tab2, other]) c.signin();
    await Promise.all([tab1, tab2, other].map((c) => c.user.signinDonePromise));
    const codes = [errorCodes(tab1), errorCodes(tab2)];
    assert.deepEqual(await json(backend.terminateUserConnections('tess')), {});
    await eventually(() => tab1.connection.state === 'disconnected' && tab2.connection.state === 'disconnected', 'both tabs closed');
    assert.ok(codes.every((c) => c.includes(4009)), JSON.stringify(codes));
    await settle();
    assert.equal(other.connection.state, 'connected');
  });
});
