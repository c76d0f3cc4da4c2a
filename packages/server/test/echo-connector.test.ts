/**
 * Laravel Echo, the real `laravel-echo` package, with `broadcaster: ChorusConnector` against a
 * real Chorus server, and a tiny "Laravel backend" on node:http whose `/broadcasting/auth`
 * answers with the real `pusher` server SDK's authorizeChannel, exactly what a Laravel app does.
 * The first part checks the v1 protocol side raw (socketId, Pusher-style auth, whispers); the
 * second drives Echo's API; the last cuts connections (a TCP proxy resets them) while a
 * publisher keeps publishing, and checks that nothing is lost or doubled, and that the same check
 * does see a gap when the server cannot recover (no history).
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { after, afterEach, before, describe, it } from 'node:test';
import Echo from 'laravel-echo';
import Pusher from 'pusher';
import WebSocket from 'ws';
import {
  ChorusConnector,
  createClient,
  type ChorusClient,
  type ChorusEchoChannel,
  type ChorusEchoPresenceChannel,
  type ChorusEchoPrivateChannel,
  type SubscriptionErrorStatus,
} from '../../client/src/index.ts';
import { TcpProxy } from '../../client/test/helpers.ts';
import type { ChorusServer } from '../src/index.ts';
import { TEST_APP, settle, startTestServer, withTimeout } from './helpers.ts';
import { V1Client } from './v1-helpers.ts';

/** An app whose channels keep no history: a reconnect cannot recover what it missed. */
const NO_HISTORY_APP = { id: 'nohistory', key: 'nohistory-key-123', secret: 'nohistory-secret-0123456789', history: { size: 0 } } as const;
const APPS = [TEST_APP, NO_HISTORY_APP] as const;
type TestApp = (typeof APPS)[number];
const WAIT_MS = 5_000;

// ---------------------------------------------------------------------------------------------
// The "Laravel backend": /{app}/broadcasting/auth, users by bearer token.

interface User {
  readonly id: number;
  readonly name: string;
}

const USERS: Record<string, User> = { alice: { id: 1, name: 'Alice' }, bob: { id: 2, name: 'Bob' } };

interface AuthRequestSeen {
  readonly contentType: string | undefined;
  readonly authorization: string | undefined;
  readonly csrf: string | undefined;
  readonly socketId: string | null;
  readonly channel: string | null;
}

class LaravelBackend {
  readonly requests: AuthRequestSeen[] = [];
  /** Channels routes/channels.php would refuse. */
  readonly forbidden = new Set<string>(['private-admin']);
  readonly #server: Server;
  readonly #sdks = new Map<string, Pusher>(APPS.map((app) => [app.id, new Pusher({ appId: app.id, key: app.key, secret: app.secret, cluster: 'unused' })]));

  constructor() {
    this.#server = createServer((req, res) => {
      void this.#handle(req).then(({ status, body }) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      });
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
  }

  endpoint(app: TestApp): string {
    const address = this.#server.address();
    if (address === null || typeof address === 'string') throw new Error('backend not listening');
    return `http://127.0.0.1:${address.port}/${app.id}/broadcasting/auth`;
  }

  close(): Promise<void> {
    this.#server.closeAllConnections();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }

  async #handle(req: IncomingMessage): Promise<{ status: number; body: unknown }> {
    let text = '';
    for await (const chunk of req) text += String(chunk);
    const form = new URLSearchParams(text);
    const seen: AuthRequestSeen = {
      contentType: req.headers['content-type'],
      authorization: req.headers.authorization,
      csrf: req.headers['x-csrf-token'] as string | undefined,
      socketId: form.get('socket_id'),
      channel: form.get('channel_name'),
    };
    this.requests.push(seen);
    const sdk = this.#sdks.get(req.url?.split('/')[1] ?? '');
    const user = USERS[(req.headers.authorization ?? '').replace(/^Bearer /, '')];
    if (req.method !== 'POST' || !sdk || !seen.socketId || !seen.channel) return { status: 400, body: { message: 'bad request' } };
    if (!user || this.forbidden.has(seen.channel)) return { status: 403, body: { message: 'This action is unauthorized.' } };
    // What Laravel's PusherBroadcaster does: validAuthenticationResponse → authorizeChannel.
    // Laravel's user_id is the user's (integer) auth identifier; the SDK's types say string.
    const presenceData = seen.channel.startsWith('presence-') ? ({ user_id: user.id, user_info: { id: user.id, name: user.name } } as unknown as Pusher.PresenceChannelData) : undefined;
    return { status: 200, body: sdk.authorizeChannel(seen.socketId, seen.channel, presenceData) };
  }
}

// ---------------------------------------------------------------------------------------------

let server: ChorusServer;
let backend: LaravelBackend;
const echoes: TestEcho[] = [];
const clients: ChorusClient[] = [];
const proxies: TcpProxy[] = [];
const opened: V1Client[] = [];

before(async () => {
  // No rate limit: the publisher sends hundreds of commands a second.
  // History holds every gap of the cut tests (the no-history app keeps its size 0).
  server = await startTestServer({ apps: APPS.map((app) => ({ ...app, limits: { messagesPerSecond: 0 }, history: { size: 10_000, ...('history' in app ? app.history : {}) } })) });
  backend = new LaravelBackend();
  await backend.start();
});
afterEach(async () => {
  for (const echo of echoes.splice(0)) echo.disconnect();
  for (const client of clients.splice(0)) client.close();
  for (const client of opened.splice(0)) client.raw.ws.terminate();
  for (const proxy of proxies.splice(0)) await proxy.close();
});
after(async () => {
  await backend.close();
  await server.close();
});

/** Echo with a connector class: its channel methods are typed `any`, the tests cast them to ours. */
type TestEcho = Echo<'function'>;

interface EchoSetup {
  readonly user?: string;
  readonly app?: TestApp;
  /** Connect through this port (a proxy) instead of the server's. */
  readonly port?: number;
  readonly [option: string]: unknown;
}

function echoFor({ user = 'alice', app = TEST_APP, port = server.port, ...options }: EchoSetup = {}): TestEcho {
  const echo = new Echo<'function'>({
    broadcaster: ChorusConnector,
    key: app.key,
    wsHost: '127.0.0.1',
    wsPort: port,
    forceTLS: false,
    authEndpoint: backend.endpoint(app),
    auth: { headers: { Authorization: `Bearer ${user}` } },
    WebSocket,
    chorus: { minDelayMs: 20, maxDelayMs: 100 },
    ...options,
  });
  echoes.push(echo);
  return echo;
}

function connectorOf(echo: TestEcho): ChorusConnector {
  return echo.connector as ChorusConnector;
}

/** A trusted backend publisher (the app secret), as a server-side process publishes. */
function publisher(app: TestApp = TEST_APP): ChorusClient {
  const client = createClient(`ws://127.0.0.1:${server.port}`, { key: app.key, secret: app.secret, WebSocket });
  clients.push(client);
  return client;
}

async function restPublish(channelId: string, message: unknown): Promise<void> {
  const response = await fetch(`http://127.0.0.1:${server.port}/api/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ key: TEST_APP.key, secret: TEST_APP.secret, channelId, message }),
  });
  assert.equal(response.status, 200, await response.text());
}

async function until(predicate: () => boolean, what: string, timeoutMs = WAIT_MS): Promise<void> {
  await withTimeout(
    (async () => {
      while (!predicate()) await new Promise((resolve) => setTimeout(resolve, 5));
    })(),
    timeoutMs,
    `timed out waiting for ${what}`,
  );
}

function subscribedOnce(channel: { subscribed(callback: CallableFunction): unknown }): Promise<void> {
  return withTimeout(new Promise<void>((resolve) => channel.subscribed(resolve)), WAIT_MS, 'no subscription_succeeded');
}

async function v1(fields: Record<string, unknown> = {}): Promise<{ client: V1Client; socketId: string; id: string }> {
  const client = await V1Client.open(server);
  opened.push(client);
  const reply = await client.command('connect', fields);
  assert.equal(reply.ok, true, JSON.stringify(reply));
  return { client, socketId: String(reply.result?.['socketId']), id: String(reply.result?.['client']) };
}

const sdk = new Pusher({ appId: TEST_APP.id, key: TEST_APP.key, secret: TEST_APP.secret, cluster: 'unused' });

// ---------------------------------------------------------------------------------------------

describe('protocol v1: Pusher-style channel auth and whispers', () => {
  it('connect returns a socketId of the form \\d+.\\d+, a different one per connection', async () => {
    const a = await v1();
    const b = await v1();
    assert.match(a.socketId, /^\d+\.\d+$/);
    assert.match(b.socketId, /^\d+\.\d+$/);
    assert.notEqual(a.socketId, b.socketId);
  });

  it('a private- channel takes the pusher SDK auth for this socketId, and refuses it on another connection or tampered', async () => {
    const a = await v1();
    const b = await v1();
    const { auth } = sdk.authorizeChannel(a.socketId, 'private-orders.1');
    assert.equal((await a.client.command('subscribe', { channel: 'private-orders.1', auth })).ok, true);
    const elsewhere = await b.client.command('subscribe', { channel: 'private-orders.1', auth });
    assert.equal(elsewhere.error?.code, 103);
    assert.match(elsewhere.error?.message ?? '', new RegExp(`Expected HMAC SHA256 hex digest of ${b.socketId.replace('.', '\\.')}:private-orders\\.1`));
    const tampered = auth.slice(0, -1) + (auth.endsWith('0') ? '1' : '0');
    assert.equal((await b.client.command('subscribe', { channel: 'private-orders.1', auth: tampered })).error?.code, 103);
    const otherChannel = sdk.authorizeChannel(b.socketId, 'private-orders.2').auth;
    assert.equal((await b.client.command('subscribe', { channel: 'private-orders.1', auth: otherChannel })).error?.code, 103);
    // Still refused without any auth, and auth means nothing on public channels.
    assert.equal((await b.client.command('subscribe', { channel: 'private-orders.1' })).error?.code, 103);
    assert.equal((await b.client.command('subscribe', { channel: 'orders', auth: sdk.authorizeChannel(b.socketId, 'orders').auth })).error?.code, 104);
    assert.equal((await b.client.command('subscribe', { channel: 'private-orders.1', auth, channelData: '{}' })).error?.code, 104);
    // Subscribed with auth, the connection may publish there (as with a channel token).
    assert.equal((await a.client.command('publish', { channel: 'private-orders.1', event: 'x', data: 1 })).ok, true);
  });

  it('a presence- channel takes auth with channelData; the member is {user: String(user_id), info: user_info}', async () => {
    const a = await v1();
    const b = await v1();
    const aAuth = sdk.authorizeChannel(a.socketId, 'presence-room.1', { user_id: 7, user_info: { name: 'Ann' } } as unknown as Pusher.PresenceChannelData);
    assert.equal((await a.client.command('subscribe', { channel: 'presence-room.1', auth: aAuth.auth, channelData: aAuth.channel_data })).ok, true);
    const forged = JSON.stringify({ user_id: 1, user_info: { name: 'Admin' } });
    assert.equal((await b.client.command('subscribe', { channel: 'presence-room.1', auth: aAuth.auth, channelData: forged })).error?.code, 103);
    const bAuth = sdk.authorizeChannel(b.socketId, 'presence-room.1', { user_id: 'u8', user_info: { name: 'Ben' } });
    assert.equal((await b.client.command('subscribe', { channel: 'presence-room.1', auth: bAuth.auth })).error?.code, 103, 'presence needs channelData');
    assert.equal((await b.client.command('subscribe', { channel: 'presence-room.1', auth: bAuth.auth, channelData: bAuth.channel_data })).ok, true);
    const joins = await a.client.untilPushes(1, 'join', 'presence-room.1');
    assert.deepEqual(joins[0]?.['member'], { user: 'u8', uuid: b.id, info: { name: 'Ben' } });
    const members = (await a.client.command('presence', { channel: 'presence-room.1' })).result?.['members'] as unknown[];
    assert.deepEqual(new Set(members.map((m) => JSON.stringify(m))), new Set([JSON.stringify({ user: '7', uuid: a.id, info: { name: 'Ann' } }), JSON.stringify({ user: 'u8', uuid: b.id, info: { name: 'Ben' } })]));
  });

  it('client-* on a private- or presence- channel reaches the others, never its sender; other events still come back', async () => {
    const a = await v1();
    const b = await v1();
    for (const { client, socketId } of [a, b]) {
      assert.equal((await client.command('subscribe', { channel: 'private-chat', auth: sdk.authorizeChannel(socketId, 'private-chat').auth })).ok, true);
      assert.equal((await client.command('subscribe', { channel: 'public-chat' })).ok, true);
    }
    assert.equal((await a.client.command('publish', { channel: 'private-chat', event: 'client-typing', data: { who: 'a' } })).ok, true);
    assert.equal((await a.client.command('publish', { channel: 'private-chat', event: 'said', data: 'hi' })).ok, true);
    assert.equal((await a.client.command('publish', { channel: 'public-chat', event: 'client-typing', data: 'public' })).ok, true);
    await b.client.untilPushes(2, 'pub', 'private-chat');
    await a.client.untilPushes(1, 'pub', 'public-chat');
    await settle();
    assert.deepEqual(b.client.pushes('pub', 'private-chat').map((p) => p.event), ['client-typing', 'said']);
    assert.deepEqual(a.client.pushes('pub', 'private-chat').map((p) => p.event), ['said'], 'the whisper came back to its sender');
    assert.deepEqual(a.client.pushes('pub', 'public-chat').map((p) => p.event), ['client-typing'], 'only private-/presence- channels have whispers');
  });
});

describe('Laravel Echo with broadcaster: ChorusConnector', () => {
  it('channel().listen("OrderShipped") gets App\\Events\\OrderShipped; ".name" is not namespaced; stopListening and listenToAll', async () => {
    const echo = echoFor();
    const shipped: unknown[] = [];
    const exact: unknown[] = [];
    const all: Array<[string, unknown]> = [];
    const channel = echo.channel('orders') as ChorusEchoChannel;
    const ignored = (data: unknown): number => shipped.push(['stopped', data]);
    channel
      .listen('OrderShipped', (event: unknown) => shipped.push(event))
      .listen('OrderShipped', ignored)
      .listen('.order.cancelled', (event: unknown) => exact.push(event))
      .listenToAll((name: string, data: unknown) => all.push([name, data]));
    channel.stopListening('OrderShipped', ignored);
    await subscribedOnce(channel);
    await restPublish('orders', { event: 'App\\Events\\OrderShipped', data: { order: { id: 7 } } });
    await restPublish('orders', { event: 'OrderShipped', data: 'not namespaced: not OrderShipped' });
    await restPublish('orders', { event: 'order.cancelled', data: { id: 8 } });
    await until(() => exact.length === 1, 'order.cancelled');
    assert.deepEqual(shipped, [{ order: { id: 7 } }]);
    assert.deepEqual(exact, [{ id: 8 }]);
    assert.deepEqual(all, [
      ['OrderShipped', { order: { id: 7 } }],
      ['.OrderShipped', 'not namespaced: not OrderShipped'],
      ['.order.cancelled', { id: 8 }],
    ]);
    assert.match(echo.socketId() ?? '', /^\d+\.\d+$/);
    assert.equal(echo.connectionStatus(), 'connected');
  });

  it("Laravel's toOthers(): a trigger through the Pusher HTTP API with the Echo socketId skips that Echo, not the others", async () => {
    const [sender, other] = [echoFor(), echoFor({ user: 'bob' })];
    const got: Record<string, unknown[]> = { sender: [], other: [] };
    const [a, b] = [sender.channel('chat.9') as ChorusEchoChannel, other.channel('chat.9') as ChorusEchoChannel];
    a.listen('MessageSent', (e: unknown) => got['sender']?.push(e));
    b.listen('MessageSent', (e: unknown) => got['other']?.push(e));
    await Promise.all([subscribedOnce(a), subscribedOnce(b)]);
    const api = new Pusher({ appId: TEST_APP.id, key: TEST_APP.key, secret: TEST_APP.secret, host: '127.0.0.1', port: String(server.port), useTLS: false });
    // What Laravel does for broadcast(...)->toOthers(): the X-Socket-Id header becomes socket_id.
    await api.trigger('chat.9', 'App\\Events\\MessageSent', { text: 'hi' }, { socket_id: sender.socketId() ?? '' });
    await until(() => (got['other']?.length ?? 0) === 1, 'the other Echo got it');
    await settle(150);
    assert.deepEqual(got, { sender: [], other: [{ text: 'hi' }] });
  });

  it('private() is authorized by POSTing socket_id and channel_name to the auth endpoint; a 403 reaches error()', async () => {
    const echo = echoFor({ user: 'bob', csrfToken: 'csrf-123' });
    const received: unknown[] = [];
    const orders = (echo.private('orders.2') as ChorusEchoPrivateChannel).listen('OrderShipped', (event: unknown) => received.push(event));
    await subscribedOnce(orders);
    const request = backend.requests.find((r) => r.channel === 'private-orders.2');
    assert.deepEqual(request, {
      contentType: 'application/x-www-form-urlencoded',
      authorization: 'Bearer bob',
      csrf: 'csrf-123',
      socketId: echo.socketId(),
      channel: 'private-orders.2',
    });
    await publisher().channel('private-orders.2').publish('App\\Events\\OrderShipped', { id: 2 });
    await until(() => received.length === 1, 'the private event');
    assert.deepEqual(received, [{ id: 2 }]);

    const errors: SubscriptionErrorStatus[] = [];
    const admin = (echo.private('admin') as ChorusEchoPrivateChannel).error((status: SubscriptionErrorStatus) => errors.push(status));
    admin.listen('Secret', () => assert.fail('a refused channel delivered an event'));
    await until(() => errors.length === 1, 'the error callback');
    assert.equal(errors[0]?.type, 'AuthError');
    assert.equal(errors[0]?.status, 403);
    assert.match(errors[0]?.error ?? '', /answered 403 for private-admin/);
    await publisher().channel('private-admin').publish('App\\Events\\Secret', {});
    await settle();
  });

  it('join(): here() lists the users, joining()/leaving() once per user (not per tab), with the user_info objects', async () => {
    const alice = echoFor({ user: 'alice' });
    const log: Array<[string, unknown]> = [];
    const room = (alice.join('room.1') as ChorusEchoPresenceChannel)
      .here((members: unknown) => log.push(['here', members]))
      .joining((member: unknown) => log.push(['joining', member]))
      .leaving((member: unknown) => log.push(['leaving', member]));
    await until(() => log.length === 1, 'alice here()');
    assert.deepEqual(log, [['here', [{ id: 1, name: 'Alice' }]]]);
    assert.ok(room);

    const bobHere: unknown[] = [];
    const bob = echoFor({ user: 'bob' });
    (bob.join('room.1') as ChorusEchoPresenceChannel).here((members: unknown[]) => bobHere.push(members));
    await until(() => bobHere.length === 1 && log.length === 2, 'bob here() and alice joining()');
    assert.deepEqual(new Set((bobHere[0] as Array<{ id: number }>).map((m) => m.id)), new Set([1, 2]));
    assert.deepEqual(log[1], ['joining', { id: 2, name: 'Bob' }]);

    // Bob's second tab: Alice sees no one new, and none leaving when one of the tabs goes.
    const bobTab = echoFor({ user: 'bob' });
    const tabHere: unknown[] = [];
    (bobTab.join('room.1') as ChorusEchoPresenceChannel).here((members: unknown[]) => tabHere.push(members));
    await until(() => tabHere.length === 1, 'the second tab here()');
    assert.equal((tabHere[0] as unknown[]).length, 2, 'here() lists each user once');
    bobTab.leave('room.1');
    await settle();
    assert.equal(log.length, 2, `a second tab changed what Alice sees: ${JSON.stringify(log)}`);
    bob.leave('room.1');
    await until(() => log.length === 3, 'alice leaving()');
    assert.deepEqual(log[2], ['leaving', { id: 2, name: 'Bob' }]);
  });

  it('whisper() reaches listenForWhisper() of the others, not the sender, also when its ack is lost in a cut', async () => {
    const proxy = await TcpProxy.start(server.port);
    proxies.push(proxy);
    const alice = echoFor({ user: 'alice', port: proxy.port });
    const bob = echoFor({ user: 'bob' });
    const aliceHeard: unknown[] = [];
    const bobHeard: unknown[] = [];
    const aliceChat = (alice.private('chat.1') as ChorusEchoPrivateChannel).listenForWhisper('typing', (data: unknown) => aliceHeard.push(data));
    const bobChat = (bob.private('chat.1') as ChorusEchoPrivateChannel).listenForWhisper('typing', (data: unknown) => bobHeard.push(data));
    await Promise.all([subscribedOnce(aliceChat), subscribedOnce(bobChat)]);
    aliceChat.whisper('typing', { n: 1 });
    bobChat.whisper('typing', { n: 'bob' });
    await until(() => bobHeard.length === 1 && aliceHeard.length === 1, 'both whispers');
    assert.deepEqual(bobHeard, [{ n: 1 }]);
    assert.deepEqual(aliceHeard, [{ n: 'bob' }]);

    // Alice's next whisper reaches the server, but its ack does not reach her before the cut: after
    // the reconnect her channel replays from before it, and the publish is sent again (same msgId).
    const before = connectorOf(alice).socketId();
    proxy.dropReplies = true;
    aliceChat.whisper('typing', { n: 2 });
    await until(() => bobHeard.length === 2, 'the second whisper at bob');
    proxy.cut();
    proxy.dropReplies = false;
    await until(() => connectorOf(alice).socketId() !== undefined && connectorOf(alice).socketId() !== before, 'alice reconnected');
    bobChat.whisper('typing', { n: 'bob again' });
    await until(() => aliceHeard.length >= 2, 'bob again at alice');
    await settle();
    assert.deepEqual(aliceHeard, [{ n: 'bob' }, { n: 'bob again' }], 'alice heard her own whisper');
    assert.deepEqual(bobHeard, [{ n: 1 }, { n: 2 }], 'bob got a whisper twice');
  });
});

// ---------------------------------------------------------------------------------------------

/**
 * A publisher publishes numbered events (App\Events\Tick {n}) every millisecond or so, without
 * waiting for acks, while the listener's connection is cut `cuts` times, each once it is back and
 * subscribed; the first time it is held down for a while (the proxy refuses reconnects). Then one
 * last number once the listener is back. Returns what the listener got, in arrival order.
 */
async function numbersThroughCuts(app: TestApp, cuts: number): Promise<{ numbers: number[]; published: number; socketIds: Set<string> }> {
  const proxy = await TcpProxy.start(server.port);
  proxies.push(proxy);
  const echo = echoFor({ app, port: proxy.port });
  const connector = connectorOf(echo);
  const numbers: number[] = [];
  const channel = (echo.private('ticks.1') as ChorusEchoPrivateChannel).listen('Tick', (event: { n: number }) => numbers.push(event.n));
  await subscribedOnce(channel);
  const socketIds = new Set<string>([connector.socketId() ?? '']);
  connector.client.on('connected', (result) => socketIds.add(result.socketId));
  const live = (): boolean => connector.connectionStatus() === 'connected' && channel.subscription.state === 'subscribed';

  const ticks = publisher(app).channel('private-ticks.1');
  const acks: Array<Promise<unknown>> = [];
  let n = 0;
  const publish = (): void => void acks.push(ticks.publish('App\\Events\\Tick', { n: ++n }));
  let publishing = true;
  const publishingDone = (async () => {
    while (publishing) {
      publish();
      await sleep(1);
    }
  })();
  try {
    for (let cut = 1; cut <= cuts; cut++) {
      await until(live, `the listener back before cut ${cut}`);
      await sleep(30);
      proxy.cut();
      if (cut === 1) proxy.refusing = true;
      // The reset reaches the client a moment later; until then it still looks live.
      await until(() => connector.connectionStatus() !== 'connected', `cut ${cut} noticed`);
      if (cut === 1) {
        await sleep(60);
        proxy.refusing = false;
      }
    }
    await until(live, 'the listener back after the last cut');
    await sleep(30);
    // A loaded machine publishes fewer numbers per cut; keep going until there are enough to
    // make the check meaningful (the tests assert more than 200).
    await until(() => n > 200, 'more than 200 numbers published');
  } finally {
    publishing = false;
    await publishingDone;
  }
  await Promise.all(acks);
  publish();
  await until(() => numbers.at(-1) === n, `the last number, ${n}`);
  await settle();
  return { numbers, published: n, socketIds };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

describe('loss-free through connection cuts', () => {
  it('the listener gets every number exactly once, in order, re-authorized after each reconnect', async () => {
    const cuts = 4;
    const { numbers, published, socketIds } = await numbersThroughCuts(TEST_APP, cuts);
    assert.ok(published > 200, `only ${published} published`);
    assert.deepEqual(numbers, Array.from({ length: published }, (_, i) => i + 1));
    assert.equal(socketIds.size, cuts + 1, `expected ${cuts} reconnects, saw socket ids ${[...socketIds].join(', ')}`);
    // Each connection asked the auth endpoint for its own socket id.
    const authorized = new Set(backend.requests.filter((r) => r.channel === 'private-ticks.1').map((r) => r.socketId));
    for (const socketId of socketIds) assert.ok(authorized.has(socketId), `no auth request for ${socketId}`);
  });

  it('the same check sees the gap when the server cannot recover (an app without history)', async () => {
    const { numbers, published } = await numbersThroughCuts(NO_HISTORY_APP, 4);
    const got = new Set(numbers);
    const missing = Array.from({ length: published }, (_, i) => i + 1).filter((n) => !got.has(n));
    assert.ok(missing.length > 0, 'nothing was missing without history: the check could not see a loss');
    assert.deepEqual(numbers, [...numbers].sort((a, b) => a - b), 'out of order');
    assert.equal(got.size, numbers.length, 'doubled');
  });
});
