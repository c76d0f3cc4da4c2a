/**
 * The real `piesocket-js` SDK from npm (5.1.0) against a Chorus server on 127.0.0.1, through its
 * `clusterDomain` option. This is the compatibility contract for SDK users: subscribe, publish /
 * listen (data and meta intact), notify_self, presence rosters, private channels with a JWT, the
 * `{"error": …}` frames that stop the SDK's reconnect loop, and REST publish.
 *
 * Two things have to be in place before the SDK is loaded (see the reference notes §6.4):
 *  - Node 20 has no global WebSocket, and `src/misc/WebSocket.js` captures the global once at
 *    module load (`try { socket = WebSocket } catch {}`), so the shim below is installed on
 *    globalThis first and the SDK is imported dynamically afterwards.
 *  - npm 5.1.0 hard-codes `wss://` (the `ssl` option only exists in the unpublished 5.2.0), so the
 *    shim rewrites `wss:` to `ws:`. It also records every socket the SDK opens (URL, frames,
 *    close), which is how the tests count reconnect attempts and see frames that may arrive before
 *    `subscribe()` has resolved and callbacks can be registered.
 *
 * Loading: piesocket-js 5.1.0 is `"type": "module"` with `"main": "src/index.js"`, plain ESM
 * source (the webpack UMD bundle is only the `unpkg`/`dist` entry), so Node imports it directly
 * and its `uuid` dependency resolves normally.
 *
 * Things the SDK cannot do in Node and these tests therefore avoid: the auth-endpoint flow
 * (`XMLHttpRequest` + `FormData`; a `private-` channel without the `jwt` option throws inside the
 * SDK's async promise executor, an unhandled rejection), and anything Portal/blockchain.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import type { ChorusServer } from '../src/index.ts';
import { TEST_APP, settle, startTestServer, withTimeout } from './helpers.ts';

// ---------------------------------------------------------------------------------------------
// Minimal types for the parts of piesocket-js 5.1.0 used here (the package ships no types).

interface PieMember {
  user: string;
  uuid: string;
}

interface PieSocketOptions {
  clusterDomain: string;
  apiKey: string;
  notifySelf?: 0 | 1 | boolean;
  presence?: 0 | 1 | boolean;
  userId?: string;
  jwt?: string;
  consoleLogs?: boolean;
}

interface PieCloseEvent {
  code: number;
  reason: string;
}

interface PieMessageEvent {
  data: unknown;
}

interface PieChannel {
  /** Set by the SDK when the socket opens; sent as `&uuid=`. */
  uuid: string | null;
  /** Replaced wholesale by every system:member_list / _joined / _left frame. */
  members: PieMember[];
  /** True after the first open; false after an `{"error": …}` frame or unsubscribe. */
  shouldReconnect: boolean;
  /** One callback per event name (a later call replaces the earlier one). */
  listen(event: '*', callback: (event: string, data: unknown, meta: unknown) => void): void;
  listen(event: string, callback: (data: unknown, meta: unknown) => void): void;
  on(event: 'message', callback: (event: PieMessageEvent) => void): void;
  on(event: 'close', callback: (event: PieCloseEvent) => void): void;
  on(event: 'error', callback: (event: unknown) => void): void;
  publish(event: string, data: unknown, meta?: unknown): Promise<void>;
  getCurrentMember(): PieMember | null;
}

interface PieSocketClient {
  subscribe(channelId: string): Promise<PieChannel>;
  unsubscribe(channelId: string): boolean;
}

type PieSocketConstructor = new (options: PieSocketOptions) => PieSocketClient;

// ---------------------------------------------------------------------------------------------
// The WebSocket shim, installed before the SDK is imported.

interface SdkSocket {
  readonly url: string;
  readonly ws: WebSocket;
  readonly frames: string[];
  closeCode: number | undefined;
  errors: number;
}

/** Every socket the SDK has constructed, in order. */
const sdkSockets: SdkSocket[] = [];

class SdkWebSocket extends WebSocket {
  constructor(address: string | URL, protocols?: string | string[]) {
    const url = String(address).replace(/^wss:/, 'ws:');
    super(url, protocols);
    const record: SdkSocket = { url, ws: this, frames: [], closeCode: undefined, errors: 0 };
    sdkSockets.push(record);
    // Registered before the SDK sets onmessage/onclose/onerror, so these run first.
    this.addEventListener('message', (event) => {
      record.frames.push(typeof event.data === 'string' ? event.data : '<binary>');
    });
    this.addEventListener('close', (event) => {
      record.closeCode = event.code;
    });
    this.addEventListener('error', () => {
      record.errors += 1;
    });
  }
}

Reflect.set(globalThis, 'WebSocket', SdkWebSocket);
// A non-literal specifier keeps TypeScript from looking for the package's (absent) types.
const sdkModule = 'piesocket-js';
const { default: PieSocket } = (await import(sdkModule)) as { default: PieSocketConstructor };

// ---------------------------------------------------------------------------------------------
// Helpers

const DEADLINE_MS = 5000;
/** How long to watch for reconnect attempts after an error frame. */
const RECONNECT_WATCH_MS = 1000;

async function waitFor(predicate: () => boolean, what: string, timeoutMs = DEADLINE_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await settle(10);
  }
}

/** Sockets the SDK opened for `channel` (every reconnect is a new one). */
function socketsFor(channel: string): SdkSocket[] {
  return sdkSockets.filter((s) => new URL(s.url).pathname === `/v3/${channel}`);
}

function onlySocketFor(channel: string): SdkSocket {
  const sockets = socketsFor(channel);
  assert.equal(sockets.length, 1, `expected exactly one socket for ${channel}, saw ${sockets.length}`);
  return sockets[0]!;
}

function byUser(members: readonly PieMember[]): PieMember[] {
  return [...members].sort((a, b) => a.user.localeCompare(b.user));
}

async function channelToken(channel: string, claims: Record<string, unknown>, options: { secret?: string; exp?: number | string } = {}): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(channel)
    .setIssuedAt()
    .setExpirationTime(options.exp ?? '1h')
    .sign(new TextEncoder().encode(options.secret ?? TEST_APP.secret));
}

/** Collects callback invocations. */
function recorder<T>(): { readonly calls: T[]; push: (value: T) => void } {
  const calls: T[] = [];
  return { calls, push: (value: T) => void calls.push(value) };
}

// ---------------------------------------------------------------------------------------------

void describe('piesocket-js 5.1.0 SDK against Chorus', () => {
  let server: ChorusServer;
  const subscriptions: Array<{ client: PieSocketClient; channel: string }> = [];

  before(async () => {
    server = await startTestServer();
  });

  after(async () => {
    // unsubscribe() turns the SDK's reconnect off before closing; without it the server's
    // shutdown close (1001, no error frame) would start an endless reconnect loop.
    for (const { client, channel } of subscriptions) client.unsubscribe(channel);
    await waitFor(() => sdkSockets.every((s) => s.ws.readyState === WebSocket.CLOSED), 'SDK sockets to close').catch(() => {
      for (const s of sdkSockets) s.ws.terminate();
    });
    await server.close();
  });

  function sdk(options: Partial<PieSocketOptions> = {}): PieSocketClient {
    return new PieSocket({ clusterDomain: `127.0.0.1:${server.port}`, apiKey: TEST_APP.key, ...options });
  }

  /** Subscribes with a deadline and registers the subscription for cleanup. */
  function subscribe(client: PieSocketClient, channel: string): Promise<PieChannel> {
    subscriptions.push({ client, channel });
    return withTimeout(client.subscribe(channel), DEADLINE_MS, `subscribe(${channel}) did not settle`);
  }

  void test('connects with the documented v3 URL (wss rewritten to ws) and subscribe() resolves', async () => {
    const channel = await subscribe(sdk(), 'sdk-url');
    const socket = onlySocketFor('sdk-url');
    assert.equal(socket.ws.readyState, WebSocket.OPEN);
    assert.match(
      socket.url,
      new RegExp(`^ws://127\\.0\\.0\\.1:${server.port}/v3/sdk-url\\?api_key=${TEST_APP.key}&notify_self=0&source=jssdk&v=5\\.0\\.8&presence=0&uuid=[0-9a-f-]{36}$`),
    );
    assert.equal(new URL(socket.url).searchParams.get('uuid'), channel.uuid);
    assert.equal(channel.shouldReconnect, true);
  });

  void test('publish from A reaches B’s listen(event) with data and meta; notifySelf on echoes to A', async () => {
    const a = await subscribe(sdk({ notifySelf: true }), 'sdk-chat');
    const b = await subscribe(sdk(), 'sdk-chat');
    assert.match(socketsFor('sdk-chat')[0]!.url, /[?&]notify_self=true(&|$)/);
    const atA = recorder<[unknown, unknown]>();
    const atB = recorder<[unknown, unknown]>();
    a.listen('new_message', (data, meta) => atA.push([data, meta]));
    b.listen('new_message', (data, meta) => atB.push([data, meta]));

    await a.publish('new_message', { text: 'hi' }, { from: 'a' });

    await waitFor(() => atB.calls.length >= 1, 'B to receive new_message');
    await waitFor(() => atA.calls.length >= 1, 'A to receive its own message (notify_self)');
    await settle();
    assert.deepEqual(atB.calls, [[{ text: 'hi' }, { from: 'a' }]]);
    assert.deepEqual(atA.calls, [[{ text: 'hi' }, { from: 'a' }]]);
  });

  void test('with notifySelf off (the SDK default, notify_self=0) the sender does not get its own message', async () => {
    const a = await subscribe(sdk(), 'sdk-quiet');
    const b = await subscribe(sdk(), 'sdk-quiet');
    assert.match(socketsFor('sdk-quiet')[0]!.url, /[?&]notify_self=0(&|$)/);
    const atA = recorder<unknown>();
    const atB = recorder<[unknown, unknown]>();
    a.listen('*', (event) => atA.push(event));
    b.listen('new_message', (data, meta) => atB.push([data, meta]));

    await a.publish('new_message', { text: 'hi' }, { from: 'a' });

    await waitFor(() => atB.calls.length >= 1, 'B to receive new_message');
    await settle(300);
    assert.deepEqual(atB.calls, [[{ text: 'hi' }, { from: 'a' }]]);
    assert.deepEqual(atA.calls, [], 'the sender received its own message');
  });

  void test('listen("*") gets (event, data, meta); a publish without meta arrives with meta undefined', async () => {
    const a = await subscribe(sdk(), 'sdk-wild');
    const b = await subscribe(sdk(), 'sdk-wild');
    const seen = recorder<[string, unknown, unknown]>();
    b.listen('*', (event, data, meta) => seen.push([event, data, meta]));

    await a.publish('typing', { who: 'a', n: [1, 2, 3] }, { at: 42, nested: { ok: true } });
    await a.publish('no_meta', 'plain string');

    await waitFor(() => seen.calls.length >= 2, 'two events at B');
    assert.deepEqual(seen.calls, [
      ['typing', { who: 'a', n: [1, 2, 3] }, { at: 42, nested: { ok: true } }],
      ['no_meta', 'plain string', undefined],
    ]);
  });

  void test('presence: members roster, getCurrentMember(), system:member_joined / member_left', async () => {
    const aliceClient = sdk({ presence: true, userId: 'alice' });
    const bobClient = sdk({ presence: true, userId: 'bob' });
    const alice = await subscribe(aliceClient, 'sdk-lobby');
    await waitFor(() => alice.members.length === 1, 'alice’s own member_list');
    assert.deepEqual(alice.members, [{ user: 'alice', uuid: alice.uuid }]);

    const joined = recorder<unknown>();
    const left = recorder<unknown>();
    alice.listen('system:member_joined', (data) => joined.push(data));
    alice.listen('system:member_left', (data) => left.push(data));

    const bob = await subscribe(bobClient, 'sdk-lobby');
    const expected = [
      { user: 'alice', uuid: alice.uuid },
      { user: 'bob', uuid: bob.uuid },
    ];
    await waitFor(() => bob.members.length === 2, 'bob’s member_list with both');
    await waitFor(() => joined.calls.length === 1, 'system:member_joined at alice');
    assert.deepEqual(byUser(alice.members), expected);
    assert.deepEqual(byUser(bob.members), expected);
    const joinedData = joined.calls[0] as { member: PieMember; members: PieMember[] };
    assert.deepEqual(joinedData.member, { user: 'bob', uuid: bob.uuid });
    assert.deepEqual(byUser(joinedData.members), expected);

    assert.deepEqual(alice.getCurrentMember(), { user: 'alice', uuid: alice.uuid });
    assert.deepEqual(bob.getCurrentMember(), { user: 'bob', uuid: bob.uuid });
    const [aliceSocket, bobSocket] = socketsFor('sdk-lobby');
    assert.equal(new URL(aliceSocket!.url).searchParams.get('user'), 'alice');
    assert.equal(new URL(aliceSocket!.url).searchParams.get('presence'), 'true');
    assert.equal(new URL(bobSocket!.url).searchParams.get('user'), 'bob');

    assert.equal(bobClient.unsubscribe('sdk-lobby'), true);
    await waitFor(() => left.calls.length === 1, 'system:member_left at alice');
    assert.deepEqual(left.calls[0], { member: { user: 'bob', uuid: bob.uuid }, members: [{ user: 'alice', uuid: alice.uuid }] });
    assert.deepEqual(alice.members, [{ user: 'alice', uuid: alice.uuid }]);
    assert.deepEqual(alice.getCurrentMember(), { user: 'alice', uuid: alice.uuid });
    await settle();
    assert.equal(joined.calls.length, 1, 'no further member_joined');
  });

  void test('private channel: a valid jwt option subscribes, its user claim beats userId, messages flow', async () => {
    const carolToken = await channelToken('private-room', { user: 'carol' });
    const daveToken = await channelToken('private-room', { user: 'dave' });
    const carol = await subscribe(sdk({ jwt: carolToken, presence: true, userId: 'not-carol' }), 'private-room');
    const dave = await subscribe(sdk({ jwt: daveToken, presence: true }), 'private-room');

    const carolSocket = socketsFor('private-room')[0]!;
    assert.equal(new URL(carolSocket.url).searchParams.get('jwt'), carolToken);
    assert.equal(carol.shouldReconnect, true);

    await waitFor(() => carol.members.length === 2 && dave.members.length === 2, 'both rosters to list carol and dave');
    assert.deepEqual(carol.getCurrentMember(), { user: 'carol', uuid: carol.uuid });
    assert.deepEqual(dave.getCurrentMember(), { user: 'dave', uuid: dave.uuid });
    assert.ok(!carolSocket.frames.some((f) => f.includes('"error"')), `unexpected error frame: ${carolSocket.frames.join(' ')}`);

    const atDave = recorder<[unknown, unknown]>();
    dave.listen('secret', (data, meta) => atDave.push([data, meta]));
    await carol.publish('secret', { text: 'psst' }, { from: 'carol' });
    await waitFor(() => atDave.calls.length === 1, 'dave to receive carol’s message');
    assert.deepEqual(atDave.calls[0], [{ text: 'psst' }, { from: 'carol' }]);
  });

  const expiredAt = (): number => Math.floor(Date.now() / 1000) - 120;
  const badTokens: Array<[string, (channel: string) => Promise<string>]> = [
    ['signed with the wrong secret', (channel) => channelToken(channel, { user: 'eve' }, { secret: 'not-the-secret-0123456789' })],
    ['expired', (channel) => channelToken(channel, { user: 'eve' }, { exp: expiredAt() })],
    ['for another channel', () => channelToken('private-other', { user: 'eve' })],
    ['that is not a JWT', () => Promise.resolve('garbage')],
  ];
  for (const [index, [label, makeToken]] of badTokens.entries()) {
    void test(`private channel with a jwt ${label}: the SDK gets the auth error and stops reconnecting`, async () => {
      // A channel per case, so the socket count is this case's alone.
      const name = `private-bad-${index}`;
      const channel = await subscribe(sdk({ jwt: await makeToken(name) }), name);
      const closes = recorder<PieCloseEvent>();
      const errors = recorder<unknown>();
      channel.on('close', (event) => closes.push(event));
      channel.on('error', (event) => errors.push(event));

      const socket = socketsFor(name)[0]!;
      await waitFor(() => socket.closeCode !== undefined, 'the server to close the socket');
      assert.deepEqual(socket.frames, ['{"error":"Authentication failed, provide valid jwt token."}']);
      assert.equal(socket.closeCode, 4003);
      await waitFor(() => closes.calls.length === 1, 'the SDK close callback');
      assert.equal(closes.calls[0]?.code, 4003);

      await settle(RECONNECT_WATCH_MS);
      assert.equal(socketsFor(name).length, 1, 'the SDK reconnected after the error frame');
      assert.equal(channel.shouldReconnect, false);
      assert.equal(closes.calls.length, 1);
      assert.equal(errors.calls.length, 0, 'a clean error-frame close is not a socket error');
    });
  }

  void test('unknown api key: the SDK gets {"error":"Unknown api key"}, its close callback fires, and it does not reconnect', async () => {
    const channel = await subscribe(sdk({ apiKey: 'no-such-key' }), 'sdk-badkey');
    const closes = recorder<PieCloseEvent>();
    const errors = recorder<unknown>();
    const messages = recorder<unknown>();
    channel.on('close', (event) => closes.push(event));
    channel.on('error', (event) => errors.push(event));
    channel.on('message', (event) => messages.push(event.data));

    const socket = socketsFor('sdk-badkey')[0]!;
    await waitFor(() => socket.closeCode !== undefined, 'the server to close the socket');
    assert.deepEqual(socket.frames, ['{"error":"Unknown api key"}']);
    assert.equal(socket.closeCode, 4001);
    await waitFor(() => closes.calls.length === 1, 'the SDK close callback');
    assert.equal(closes.calls[0]?.code, 4001);

    await settle(RECONNECT_WATCH_MS);
    assert.equal(socketsFor('sdk-badkey').length, 1, 'the SDK kept reconnecting');
    assert.equal(channel.shouldReconnect, false);
    assert.equal(closes.calls.length, 1);
    assert.equal(errors.calls.length, 0, 'a clean error-frame close is not a socket error');
  });

  void test('control: a close without an error frame (1009, message too big) makes the SDK reconnect with the same URL', async () => {
    const a = await subscribe(sdk(), 'sdk-toobig');
    const b = await subscribe(sdk(), 'sdk-toobig');
    const atB = recorder<unknown>();
    b.listen('after', (data) => atB.push(data));

    await a.publish('huge', 'x'.repeat(64 * 1024 + 1));
    await waitFor(() => socketsFor('sdk-toobig').length === 3, 'A’s reconnect');
    const [first, , second] = socketsFor('sdk-toobig');
    assert.equal(first!.closeCode, 1009);
    assert.equal(second!.url, first!.url, 'the reconnect reuses the URL (and uuid)');
    await waitFor(() => second!.ws.readyState === WebSocket.OPEN, 'the reconnected socket to open');

    // The channel object now talks through the new socket.
    await a.publish('after', { ok: true });
    await waitFor(() => atB.calls.length === 1, 'B to receive A’s message after the reconnect');
    assert.deepEqual(atB.calls, [{ ok: true }]);
    await settle(300);
    assert.equal(socketsFor('sdk-toobig').length, 3, 'one reconnect, not a loop');
  });

  void test('REST POST /api/publish {key, secret, channelId, message: {event, data, meta}} reaches listen()', async () => {
    const channel = await subscribe(sdk(), 'sdk-rest');
    const seen = recorder<[unknown, unknown]>();
    channel.listen('new_message', (data, meta) => seen.push([data, meta]));

    const response = await fetch(`http://127.0.0.1:${server.port}/api/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        key: TEST_APP.key,
        secret: TEST_APP.secret,
        channelId: 'sdk-rest',
        message: { event: 'new_message', data: { text: 'from the server' }, meta: { source: 'rest' } },
      }),
      signal: AbortSignal.timeout(DEADLINE_MS),
    });
    assert.equal(response.status, 200, await response.text());

    await waitFor(() => seen.calls.length === 1, 'the REST-published message at the SDK');
    assert.deepEqual(seen.calls, [[{ text: 'from the server' }, { source: 'rest' }]]);
  });
});
