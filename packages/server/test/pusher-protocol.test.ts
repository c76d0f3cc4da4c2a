/**
 * Pusher protocol 7 conformance, frame by frame: a plain `ws` client (no pusher-js) speaks the
 * wire protocol to a real server, so what is checked is the bytes every Pusher client library
 * sees, not what pusher-js makes of them. Covers the handshake, ping/pong, every refusal and
 * close code (PusherCloseCodes), subscriptions of each kind with their refusals, malformed
 * frames, and the signed HTTP API, with and without a path prefix. Reference: docs/codes.md,
 * /work/shared/reference/pusher-compat.md.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import PusherServer from 'pusher';
import WebSocket from 'ws';
import { PusherCloseCodes } from '@chorus/protocol';
import type { ChorusServer } from '../src/index.ts';
import { channelAuthSignature, signApiQuery, userAuthSignature } from '../src/dialects/pusher/signatures.ts';
import { TestClient, closeAfterwards, settle, startTestServer, withTimeout } from './helpers.ts';

const APP = { id: 'proto', key: 'proto-key-123', secret: 'proto-secret-0123456789', clientEvents: true };
const NO_CLIENT_EVENTS = { id: 'quiet', key: 'quiet-key-123', secret: 'quiet-secret-0123456789' };
const DISABLED = { id: 'off', key: 'off-key-123', secret: 'off-secret-0123456789', enabled: false };

interface Frame {
  readonly event: string;
  readonly channel?: string;
  readonly data?: unknown;
  readonly user_id?: string;
}

const { serverWith, track } = closeAfterwards();

let server: ChorusServer;
before(async () => {
  // 101 presence members and 50 concurrent handshakes come from one IP.
  server = await startTestServer({ limits: { maxConnectionsPerIp: 300 }, apps: [APP, NO_CLIENT_EVENTS, DISABLED] });
});
after(() => server.close());

/** A Pusher connection seen as frames: sends `{event, channel?, data}` and waits for frames by shape. */
class Peer {
  readonly client: TestClient;

  constructor(client: TestClient) {
    this.client = client;
  }

  frames(): Frame[] {
    const out: Frame[] = [];
    for (const r of this.client.received) {
      if (r.binary) continue;
      try {
        out.push(JSON.parse(r.text) as Frame);
      } catch {
        out.push({ event: `<not JSON: ${r.text}>` });
      }
    }
    return out;
  }

  all(event: string, channel?: string): Frame[] {
    return this.frames().filter((f) => f.event === event && (channel === undefined || f.channel === channel));
  }

  /** The `nth` (1-based) frame with this event (and channel), once it has arrived. */
  async next(event: string, channel?: string, nth = 1, timeoutMs = 5000): Promise<Frame> {
    const what = `${event}${channel === undefined ? '' : ` on ${channel}`} #${nth}`;
    await this.client.until(() => this.all(event, channel).length >= nth, what, timeoutMs);
    return this.all(event, channel)[nth - 1] as Frame;
  }

  send(event: string, data: unknown, channel?: string): void {
    this.client.ws.send(JSON.stringify(channel === undefined ? { event, data } : { event, channel, data }));
  }

  async socketId(): Promise<string> {
    const established = await this.next('pusher:connection_established');
    return (JSON.parse(established.data as string) as { socket_id: string }).socket_id;
  }

  /** Sends pusher:ping and waits for the pong: everything sent before it has been handled. */
  async roundTrip(): Promise<void> {
    const pongs = this.all('pusher:pong').length;
    this.send('pusher:ping', {});
    await this.next('pusher:pong', undefined, pongs + 1);
  }

  close(): void {
    this.client.ws.terminate();
  }
}

function pusherUrl(s: ChorusServer, key = APP.key, query = '?protocol=7', prefix = ''): string {
  return `ws://127.0.0.1:${s.port}${prefix}/app/${key}${query}`;
}

/** A connection as far as connection_established. */
async function connect(s: ChorusServer = server, key = APP.key, prefix = ''): Promise<Peer> {
  const peer = new Peer(track(new TestClient(pusherUrl(s, key, '?protocol=7', prefix))));
  await peer.socketId();
  return peer;
}

/** A connection refused after the upgrade: its frames and its close. */
async function refused(url: string): Promise<{ frames: Frame[]; code: number; reason: string }> {
  const peer = new Peer(track(new TestClient(url)));
  const { code, reason } = await peer.client.closed();
  return { frames: peer.frames(), code, reason };
}

function assertErrorThenClose(result: { frames: Frame[]; code: number; reason: string }, expected: { code: number; reason: string }): void {
  const errors = result.frames.filter((f) => f.event === 'pusher:error');
  assert.equal(errors.length, 1, `one pusher:error before the close, got ${JSON.stringify(result.frames)}`);
  assert.equal((errors[0]?.data as { code: unknown }).code, expected.code);
  assert.equal(typeof (errors[0]?.data as { message: unknown }).message, 'string');
  assert.equal(result.code, expected.code);
  assert.equal(result.reason, expected.reason);
}

/** The HTTP status an upgrade request is answered with (101 when it is accepted). */
function upgradeStatus(url: string): Promise<number> {
  const ws = new WebSocket(url);
  return withTimeout(
    new Promise((resolve) => {
      ws.on('unexpected-response', (_req, res) => {
        resolve(res.statusCode ?? 0);
        ws.terminate();
      });
      ws.on('open', () => {
        resolve(101);
        ws.terminate();
      });
      ws.on('error', () => undefined);
    }),
    5000,
    `answer to the upgrade of ${url}`,
  );
}

interface ApiCall {
  readonly method?: string;
  /** The path under the prefix, e.g. `/events`. */
  readonly path: string;
  readonly body?: unknown;
  readonly app?: { id: string; key: string; secret: string };
  readonly prefix?: string;
  readonly nowMs?: number;
  /** Replaces the signed query (for unsigned requests). */
  readonly query?: string;
  /** The body sent when it differs from the body signed. */
  readonly sentBody?: string;
}

/** A hand-signed Pusher HTTP API request, as the `pusher` SDKs sign one. */
async function api(s: ChorusServer, call: ApiCall): Promise<{ status: number; body: unknown }> {
  const app = call.app ?? APP;
  const method = call.method ?? (call.body === undefined ? 'GET' : 'POST');
  const path = `${call.prefix ?? ''}/apps/${app.id}${call.path}`;
  const body = call.body === undefined ? '' : JSON.stringify(call.body);
  const query = call.query ?? signApiQuery(app, method, path, {}, body, call.nowMs ?? Date.now());
  const sent = call.sentBody ?? body;
  const res = await fetch(`http://127.0.0.1:${s.port}${path}?${query}`, {
    method,
    ...(sent === '' ? {} : { body: sent, headers: { 'content-type': 'application/json' } }),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: kept as text
  }
  return { status: res.status, body: parsed };
}

function trigger(s: ChorusServer, channel: string, name: string, data: string, extra: Partial<ApiCall> = {}): Promise<{ status: number; body: unknown }> {
  return api(s, { path: '/events', body: { name, channels: [channel], data }, ...extra });
}

function subscriptionError(frame: Frame): { type: string; error: string; status: number } {
  return frame.data as { type: string; error: string; status: number };
}

// ─── The handshake and liveness ──────────────────────────────────────────────────────────────

describe('connection_established and ping/pong', () => {
  it('connection_established carries data as a JSON string: a socket_id \\d+.\\d+, distinct for 50 connections, and activity_timeout 120', async () => {
    const peers = await Promise.all(Array.from({ length: 50 }, () => connect()));
    const ids = new Set<string>();
    for (const peer of peers) {
      const [established, ...rest] = peer.frames();
      assert.equal(established?.event, 'pusher:connection_established');
      assert.equal(established?.channel, undefined);
      assert.equal(rest.length, 0, 'nothing before or with connection_established');
      assert.equal(typeof established?.data, 'string', 'data is a JSON string, as pusher-js parses it twice');
      const data = JSON.parse(established?.data as string) as { socket_id: unknown; activity_timeout: unknown };
      assert.match(String(data.socket_id), /^\d+\.\d+$/);
      assert.equal(typeof data.socket_id, 'string');
      assert.equal(data.activity_timeout, 120);
      ids.add(data.socket_id as string);
      peer.close();
    }
    assert.equal(ids.size, 50);
  });

  it('activity_timeout is the server\'s pusher.activityTimeoutSeconds', async () => {
    const s = await serverWith({ pusher: { activityTimeoutSeconds: 30 }, apps: [APP] });
    const peer = await connect(s);
    const established = await peer.next('pusher:connection_established');
    assert.equal((JSON.parse(established.data as string) as { activity_timeout: number }).activity_timeout, 30);
  });

  it('pusher:ping is answered with pusher:pong, as often as asked', async () => {
    const peer = await connect();
    peer.send('pusher:ping', {});
    const pong = await peer.next('pusher:pong');
    assert.deepEqual(pong, { event: 'pusher:pong', data: {} });
    peer.send('pusher:ping', {});
    await peer.next('pusher:pong', undefined, 2);
    peer.close();
  });

  it('a WebSocket-level ping is answered with a pong carrying its payload', async () => {
    const peer = await connect();
    const pong = withTimeout(new Promise<Buffer>((resolve) => peer.client.ws.once('pong', resolve)), 3000, 'protocol pong');
    peer.client.ws.ping('are-you-there');
    assert.equal((await pong).toString(), 'are-you-there');
    peer.close();
  });
});

// ─── Refusals and close codes ────────────────────────────────────────────────────────────────

describe('refusals at admission: pusher:error with the code, then the close with that code', () => {
  const cases = [
    { what: 'an unknown key', url: () => pusherUrl(server, 'no-such-key'), close: PusherCloseCodes.UNKNOWN_APP },
    { what: 'a disabled app', url: () => pusherUrl(server, DISABLED.key), close: PusherCloseCodes.APP_DISABLED },
    { what: 'no protocol parameter', url: () => pusherUrl(server, APP.key, ''), close: PusherCloseCodes.NO_PROTOCOL },
    { what: 'protocol=6', url: () => pusherUrl(server, APP.key, '?protocol=6'), close: PusherCloseCodes.UNSUPPORTED_PROTOCOL },
  ];
  for (const c of cases) {
    it(`${c.what}: ${c.close.code} ${c.close.reason}`, async () => {
      assertErrorThenClose(await refused(c.url()), c.close);
    });
  }

  it('over the app\'s limits.maxConnections: 4004 (pusher-js does not retry)', async () => {
    const s = await serverWith({ apps: [{ ...APP, limits: { maxConnections: 2 } }] });
    await connect(s);
    await connect(s);
    assertErrorThenClose(await refused(pusherUrl(s)), PusherCloseCodes.OVER_QUOTA);
  });

  it('over the app\'s limits.maxConnectionsPerIp: 4100 (pusher-js retries after a back-off)', async () => {
    const s = await serverWith({ apps: [{ ...APP, limits: { maxConnectionsPerIp: 2 } }] });
    const first = await connect(s);
    await connect(s);
    assertErrorThenClose(await refused(pusherUrl(s)), PusherCloseCodes.OVER_CAPACITY);
    // A freed slot is reusable: the count follows closes.
    first.close();
    await withTimeout(
      (async () => {
        while ((await upgradeStatus(pusherUrl(s))) !== 101) await settle(20);
      })(),
      3000,
      'a free slot after a close',
    );
  });
});

describe('closes of open connections', () => {
  it('pusher:signin with a bad signature: pusher:error 4009, then close 4009; a good one is signin_success', async () => {
    const good = await connect();
    const userData = JSON.stringify({ id: 'u1', name: 'Ada' });
    good.send('pusher:signin', { user_data: userData, auth: userAuthSignature(APP, await good.socketId(), userData) });
    const success = await good.next('pusher:signin_success');
    assert.deepEqual(success.data, { user_data: userData });
    good.close();

    const bad = await connect();
    bad.send('pusher:signin', { user_data: userData, auth: userAuthSignature(APP, '1.2', userData) });
    const { code, reason } = await bad.client.closed();
    assertErrorThenClose({ frames: bad.frames(), code, reason }, { code: 4009, reason });
    assert.match(reason, /Invalid signature/);
  });

  it('pusher:signin with a watchlist of 101 user ids: signin_success, then pusher:error 4302 (no watchlist); 100 are fine', async () => {
    for (const [size, refused] of [[101, true], [100, false]] as const) {
      const peer = await connect();
      const userData = JSON.stringify({ id: `w${size}`, watchlist: Array.from({ length: size }, (_, i) => `user-${i}`) });
      peer.send('pusher:signin', { user_data: userData, auth: userAuthSignature(APP, await peer.socketId(), userData) });
      await peer.next('pusher:signin_success');
      await peer.roundTrip();
      const errors = peer.all('pusher:error').map((f) => f.data as { code: number; message: string });
      if (refused) {
        assert.equal(errors[0]?.code, 4302);
        assert.match(errors[0]?.message ?? '', /watchlist has 101 user ids; at most 100/);
      } else {
        assert.deepEqual(errors, []);
      }
      assert.equal(peer.client.closeCode, undefined, 'the connection stays');
      peer.close();
    }
  });

  it('server.close(): pusher:error 4200, then close 4200 "Server shutting down" (pusher-js reconnects at once)', async () => {
    const s = await serverWith({ apps: [APP] });
    const peer = await connect(s);
    const closing = s.close();
    const { code, reason } = await peer.client.closed();
    await closing;
    assertErrorThenClose({ frames: peer.frames(), code, reason }, PusherCloseCodes.RECONNECT);
  });

  it('a client that stops answering WebSocket pings: pusher:error 4201, then close 4201 "Pong reply not received"; one that answers stays', async () => {
    const s = await serverWith({ apps: [APP], heartbeatIntervalMs: 200 });
    const silent = new Peer(track(await TestClient.open(pusherUrl(s), { autoPong: false })));
    const answering = await connect(s);
    const { code, reason } = await silent.client.closed(3000);
    assertErrorThenClose({ frames: silent.frames(), code, reason }, PusherCloseCodes.PONG_TIMEOUT);
    await settle(500);
    assert.equal(answering.client.closeCode, undefined, 'a client answering pings is not closed');
    await answering.roundTrip();
  });

  it('more frames than limits.messagesPerSecond allows: pusher:error 4301, then close 4301', async () => {
    const s = await serverWith({ apps: [{ ...APP, limits: { messagesPerSecond: 5, messageBurst: 5 } }] });
    const peer = await connect(s);
    for (let i = 0; i < 8; i++) peer.send('pusher:ping', {});
    const { code, reason } = await peer.client.closed();
    assert.equal(peer.all('pusher:pong').length, 5, 'the burst is answered, the rest is not');
    assertErrorThenClose({ frames: peer.frames(), code, reason }, { code: 4301, reason });
    assert.match(reason, /limits\.messagesPerSecond/);
  });

  it('a slow consumer (not reading while HTTP API triggers flood it past maxPendingBytes) is cut with 4100; a reader on the same channel is not', async () => {
    const EVENT_BYTES = 100 * 1024;
    const s = await serverWith({
      apps: [{ ...APP, limits: { maxPendingBytes: 256 * 1024, maxMessageSize: 256 * 1024 }, pusher: { maxEventBytes: EVENT_BYTES } }],
      // The cut comes early in the flood, and a loaded machine may take longer than the default
      // 5 s to send the rest: the slow consumer's socket must still be there when it reads again.
      closeTimeoutMs: 60_000,
    });
    const slow = await connect(s);
    const reader = await connect(s);
    for (const peer of [slow, reader]) {
      peer.send('pusher:subscribe', { channel: 'flood' });
      await peer.next('pusher_internal:subscription_succeeded', 'flood');
    }
    slow.client.ws.pause();
    // Far more than the loopback socket buffers hold, so the server's own queue must grow. One
    // event per request: a reader that keeps up never has more than one frame pending.
    const EVENTS = 200;
    const data = 'x'.repeat(EVENT_BYTES);
    for (let i = 0; i < EVENTS; i++) assert.equal((await trigger(s, 'flood', 'bulk', data)).status, 200);
    await reader.next('bulk', 'flood', EVENTS, 10_000);
    assert.equal(reader.client.closeCode, undefined, 'the reader keeps its connection');

    // The close frame sits behind what the paused reader has not read; reading again reaches it
    // (the server resets the socket closeTimeoutMs after its close frame, 60 s here).
    slow.client.ws.resume();
    const { code, reason } = await slow.client.closed(4000);
    assert.deepEqual({ code, reason }, { code: PusherCloseCodes.OVER_CAPACITY.code, reason: PusherCloseCodes.OVER_CAPACITY.reason });
    assert.ok(slow.all('bulk', 'flood').length < EVENTS, 'not everything was delivered to the slow consumer');
  });
});

describe('client events refused with pusher:error 4301, the connection staying open', () => {
  async function subscribedPrivate(s: ChorusServer, key: string, secret: string, channel: string): Promise<Peer> {
    const peer = await connect(s, key);
    peer.send('pusher:subscribe', { channel, auth: channelAuthSignature({ key, secret }, await peer.socketId(), channel) });
    await peer.next('pusher_internal:subscription_succeeded', channel);
    return peer;
  }

  async function refusedClientEvent(peer: Peer, frame: { event: string; channel?: string; data: unknown }, nth: number): Promise<string> {
    peer.client.ws.send(JSON.stringify(frame));
    const error = await peer.next('pusher:error', undefined, nth);
    const data = error.data as { code: number; message: string };
    assert.equal(data.code, 4301);
    await peer.roundTrip();
    assert.equal(peer.client.closeCode, undefined);
    return data.message;
  }

  it('when the app has clientEvents off', async () => {
    const peer = await subscribedPrivate(server, NO_CLIENT_EVENTS.key, NO_CLIENT_EVENTS.secret, 'private-q');
    assert.match(await refusedClientEvent(peer, { event: 'client-x', channel: 'private-q', data: {} }, 1), /"clientEvents": true/);
    peer.close();
  });

  it('on a public channel, on a channel not subscribed to, and without a channel', async () => {
    const peer = await subscribedPrivate(server, APP.key, APP.secret, 'private-ce');
    peer.send('pusher:subscribe', { channel: 'public-ce' });
    await peer.next('pusher_internal:subscription_succeeded', 'public-ce');
    assert.match(await refusedClientEvent(peer, { event: 'client-x', channel: 'public-ce', data: {} }, 1), /private- and presence-/);
    assert.match(await refusedClientEvent(peer, { event: 'client-x', channel: 'private-other', data: {} }, 2), /not subscribed/);
    assert.match(await refusedClientEvent(peer, { event: 'client-x', data: {} }, 3), /need a channel/);
    peer.close();
  });

  it('past pusher.clientEventsPerSecond (10): the 11th in a second is refused, the first 10 are delivered', async () => {
    const sender = await subscribedPrivate(server, APP.key, APP.secret, 'private-rate');
    const receiver = await subscribedPrivate(server, APP.key, APP.secret, 'private-rate');
    for (let i = 0; i < 11; i++) sender.send('client-tick', { i }, 'private-rate');
    const error = await sender.next('pusher:error');
    assert.equal((error.data as { code: number }).code, 4301);
    assert.match((error.data as { message: string }).message, /pusher\.clientEventsPerSecond/);
    await receiver.next('client-tick', 'private-rate', 10);
    await sender.roundTrip();
    await settle(100);
    assert.equal(receiver.all('client-tick').length, 10);
    assert.equal(sender.all('client-tick').length, 0, 'a client event is not echoed to its sender');
    assert.equal(sender.client.closeCode, undefined);
    sender.close();
    receiver.close();
  });
});

// ─── Subscriptions ───────────────────────────────────────────────────────────────────────────

describe('subscriptions', () => {
  it('a public channel: pusher_internal:subscription_succeeded with data "{}", then its events', async () => {
    const peer = await connect();
    peer.send('pusher:subscribe', { channel: 'news' });
    const succeeded = await peer.next('pusher_internal:subscription_succeeded', 'news');
    assert.deepEqual(succeeded, { event: 'pusher_internal:subscription_succeeded', channel: 'news', data: '{}' });
    assert.equal((await trigger(server, 'news', 'headline', '{"title":"hi"}')).status, 200);
    const event = await peer.next('headline', 'news');
    assert.deepEqual(event, { event: 'headline', channel: 'news', data: '{"title":"hi"}' });
    peer.close();
  });

  it('a private channel: a good auth succeeds; a bad or missing auth is a subscription_error AuthError 401 on the channel', async () => {
    const peer = await connect();
    const socketId = await peer.socketId();
    peer.send('pusher:subscribe', { channel: 'private-ok', auth: channelAuthSignature(APP, socketId, 'private-ok') });
    assert.equal((await peer.next('pusher_internal:subscription_succeeded', 'private-ok')).data, '{}');

    const badAuth = channelAuthSignature(APP, socketId, 'private-other');
    peer.send('pusher:subscribe', { channel: 'private-bad', auth: badAuth });
    const bad = await peer.next('pusher:subscription_error', 'private-bad');
    assert.deepEqual(Object.keys(bad).sort(), ['channel', 'data', 'event']);
    assert.deepEqual({ ...subscriptionError(bad), error: '' }, { type: 'AuthError', error: '', status: 401 });
    assert.match(subscriptionError(bad).error, /Invalid signature/);

    peer.send('pusher:subscribe', { channel: 'private-none' });
    const missing = await peer.next('pusher:subscription_error', 'private-none');
    assert.equal(subscriptionError(missing).type, 'AuthError');
    assert.equal(subscriptionError(missing).status, 401);
    assert.match(subscriptionError(missing).error, /key:signature/);

    // A refused subscription receives nothing; the accepted one does.
    await trigger(server, 'private-bad', 'secret', '"no"');
    await trigger(server, 'private-ok', 'open', '"yes"');
    await peer.next('open', 'private-ok');
    await settle(50);
    assert.equal(peer.all('secret').length, 0);
    assert.equal(peer.all('pusher_internal:subscription_succeeded').length, 1);
    peer.close();
  });

  function presenceAuth(socketId: string, channel: string, member: unknown): { channel: string; auth: string; channel_data: string } {
    const channelData = JSON.stringify(member);
    return { channel, auth: channelAuthSignature(APP, socketId, channel, channelData), channel_data: channelData };
  }

  it('a presence channel: subscription_succeeded data is {"presence": {ids, hash, count}}; others see member_added and member_removed', async () => {
    const alice = await connect();
    alice.send('pusher:subscribe', presenceAuth(await alice.socketId(), 'presence-room', { user_id: 'alice', user_info: { name: 'Alice' } }));
    const first = await alice.next('pusher_internal:subscription_succeeded', 'presence-room');
    assert.equal(typeof first.data, 'string');
    assert.deepEqual(JSON.parse(first.data as string), { presence: { ids: ['alice'], hash: { alice: { name: 'Alice' } }, count: 1 } });

    const bob = await connect();
    bob.send('pusher:subscribe', presenceAuth(await bob.socketId(), 'presence-room', { user_id: 'bob', user_info: { name: 'Bob' } }));
    const second = JSON.parse((await bob.next('pusher_internal:subscription_succeeded', 'presence-room')).data as string) as {
      presence: { ids: string[]; hash: Record<string, unknown>; count: number };
    };
    assert.deepEqual([...second.presence.ids].sort(), ['alice', 'bob']);
    assert.equal(second.presence.count, 2);
    assert.deepEqual(second.presence.hash['alice'], { name: 'Alice' });
    const added = await alice.next('pusher_internal:member_added', 'presence-room');
    assert.deepEqual(JSON.parse(added.data as string), { user_id: 'bob', user_info: { name: 'Bob' } });

    bob.close();
    const removed = await alice.next('pusher_internal:member_removed', 'presence-room');
    assert.deepEqual(JSON.parse(removed.data as string), { user_id: 'bob' });
    alice.close();
  });

  it('presence limits: 100 users fit, the 101st is refused (LimitReached); user_info over 1 KB and user_id over 128 characters are refused', async () => {
    const channel = 'presence-full';
    const members = await Promise.all(
      Array.from({ length: 101 }, async (_, i) => {
        const peer = await connect();
        return { peer, socketId: await peer.socketId(), i };
      }),
    );
    // One at a time, so which one is the 101st is known.
    for (const { peer, socketId, i } of members) {
      peer.send('pusher:subscribe', presenceAuth(socketId, channel, { user_id: `user-${i}` }));
      if (i < 100) await peer.next('pusher_internal:subscription_succeeded', channel);
    }
    const last = members[100]?.peer as Peer;
    const full = await last.next('pusher:subscription_error', channel);
    assert.equal(subscriptionError(full).type, 'LimitReached');
    assert.match(subscriptionError(full).error, /pusher\.maxPresenceMembers/);
    assert.equal(last.all('pusher_internal:subscription_succeeded').length, 0);
    for (const { peer } of members) peer.close();

    const peer = await connect();
    const socketId = await peer.socketId();
    const atLimit = { user_id: 'u'.repeat(128), user_info: { bio: 'b'.repeat(1024 - '{"bio":""}'.length) } };
    assert.equal(Buffer.byteLength(JSON.stringify(atLimit.user_info)), 1024);
    peer.send('pusher:subscribe', presenceAuth(socketId, 'presence-at-limit', atLimit));
    await peer.next('pusher_internal:subscription_succeeded', 'presence-at-limit');

    peer.send('pusher:subscribe', presenceAuth(socketId, 'presence-big-info', { user_id: 'u', user_info: { bio: 'b'.repeat(1024) } }));
    const bigInfo = await peer.next('pusher:subscription_error', 'presence-big-info');
    assert.equal(subscriptionError(bigInfo).type, 'LimitReached');
    assert.match(subscriptionError(bigInfo).error, /pusher\.maxUserInfoBytes/);

    peer.send('pusher:subscribe', presenceAuth(socketId, 'presence-long-id', { user_id: 'u'.repeat(129) }));
    const longId = await peer.next('pusher:subscription_error', 'presence-long-id');
    assert.equal(subscriptionError(longId).type, 'LimitReached');
    assert.match(subscriptionError(longId).error, /pusher\.maxUserIdLength/);
    peer.close();
  });

  it('invalid channel names ("a b", 201 characters) are a pusher:error; 200 characters are fine', async () => {
    const peer = await connect();
    for (const [i, channel] of ['a b', 'c'.repeat(201)].entries()) {
      peer.send('pusher:subscribe', { channel });
      const error = await peer.next('pusher:error', undefined, i + 1);
      assert.match((error.data as { message: string }).message, /Invalid channel name/);
    }
    peer.send('pusher:subscribe', { channel: 'c'.repeat(200) });
    await peer.next('pusher_internal:subscription_succeeded', 'c'.repeat(200));
    assert.equal(peer.all('pusher:subscription_succeeded').length, 0);
    peer.close();
  });

  it('pusher:unsubscribe: no more events on the channel, the subscription count drops, subscribing again works', async () => {
    const peer = await connect();
    const witness = await connect();
    for (const p of [peer, witness]) {
      p.send('pusher:subscribe', { channel: 'leaving' });
      await p.next('pusher_internal:subscription_succeeded', 'leaving');
    }
    await trigger(server, 'leaving', 'one', '1');
    await peer.next('one', 'leaving');
    peer.send('pusher:unsubscribe', { channel: 'leaving' });
    await peer.roundTrip();
    const info = await api(server, { path: '/channels/leaving' });
    assert.equal((info.body as { subscription_count: number }).subscription_count, 1);

    await trigger(server, 'leaving', 'two', '2');
    await witness.next('two', 'leaving');
    await settle(50);
    assert.equal(peer.all('two').length, 0, 'an unsubscribed connection gets nothing');

    peer.send('pusher:subscribe', { channel: 'leaving' });
    await peer.next('pusher_internal:subscription_succeeded', 'leaving', 2);
    await trigger(server, 'leaving', 'three', '3');
    await peer.next('three', 'leaving');
    peer.close();
    witness.close();
  });
});

describe('malformed frames are a pusher:error; the connection stays', () => {
  it('an unknown event, a frame that is not JSON, JSON without an event, and a binary frame', async () => {
    const peer = await connect();
    const sends: Array<[() => void, RegExp]> = [
      [() => peer.send('pusher:nonsense', {}), /Unknown event "pusher:nonsense"/],
      [() => peer.send('hello', {}), /Unknown event "hello"/],
      [() => peer.client.ws.send('this is not json'), /JSON objects/],
      [() => peer.client.ws.send('{"data":{}}'), /string "event"/],
      [() => peer.client.ws.send(Buffer.from('{"event":"pusher:ping","data":{}}'), { binary: true }), /Binary frames/],
    ];
    for (const [i, [send, says]] of sends.entries()) {
      send();
      const error = await peer.next('pusher:error', undefined, i + 1);
      assert.equal(peer.client.received.at(-1)?.binary, false, 'the error is a text frame');
      assert.deepEqual(Object.keys(error.data as object).sort(), ['code', 'message']);
      assert.equal((error.data as { code: unknown }).code, null);
      assert.match((error.data as { message: string }).message, says);
    }
    await peer.roundTrip();
    assert.equal(peer.all('pusher:pong').length, 1, 'the binary ping was not taken as a ping');
    assert.equal(peer.client.closeCode, undefined);
    peer.close();
  });
});

// ─── The HTTP API ────────────────────────────────────────────────────────────────────────────

describe('HTTP API signatures', () => {
  const event = { name: 'e', channels: ['api-sig'], data: '{}' };

  it('a hand-signed trigger is accepted and delivered', async () => {
    const peer = await connect();
    peer.send('pusher:subscribe', { channel: 'api-sig' });
    await peer.next('pusher_internal:subscription_succeeded', 'api-sig');
    const { status, body } = await api(server, { path: '/events', body: event });
    assert.equal(status, 200);
    assert.deepEqual(body, {});
    await peer.next('e', 'api-sig');
    peer.close();
  });

  it('no auth parameters: 400; a wrong auth_key: 401', async () => {
    const unsigned = await api(server, { path: '/events', body: event, query: '' });
    assert.equal(unsigned.status, 400);
    assert.match((unsigned.body as { error: string }).error, /auth_key/);
    const other = await api(server, { path: '/events', body: event, app: { ...APP, key: 'someone-else', secret: APP.secret } });
    assert.equal(other.status, 401);
  });

  it('a timestamp 601 s off either way: 401; 599 s off: accepted', async () => {
    for (const off of [601_000, -601_000]) {
      const { status, body } = await api(server, { path: '/events', body: event, nowMs: Date.now() + off });
      assert.equal(status, 401, `off by ${off} ms`);
      assert.match((body as { error: string }).error, /Timestamp expired/);
    }
    assert.equal((await api(server, { path: '/events', body: event, nowMs: Date.now() - 599_000 })).status, 200);
  });

  it('a body other than the one body_md5 was computed on: 401; a wrong secret: 401', async () => {
    const swapped = await api(server, { path: '/events', body: event, sentBody: JSON.stringify({ ...event, data: '"swapped"' }) });
    assert.equal(swapped.status, 401);
    assert.match((swapped.body as { error: string }).error, /body_md5/);
    const wrongSecret = await api(server, { path: '/events', body: event, app: { ...APP, secret: 'not-the-secret-0123456789' } });
    assert.equal(wrongSecret.status, 401);
    assert.match((wrongSecret.body as { error: string }).error, /Invalid signature/);
  });

  it('an unknown app id: 404', async () => {
    const { status } = await api(server, { path: '/events', body: event, app: { ...APP, id: 'nope' } });
    assert.equal(status, 404);
  });
});

describe('pusher.pathPrefix', () => {
  const PREFIX = '/pusher';
  let prefixed: ChorusServer;
  before(async () => {
    prefixed = await serverWith({ pusher: { pathPrefix: PREFIX }, apps: [APP] });
  });

  it('/pusher/app/{key} connects; /app/{key} is 404', async () => {
    const peer = await connect(prefixed, APP.key, PREFIX);
    assert.match(await peer.socketId(), /^\d+\.\d+$/);
    assert.equal(await upgradeStatus(pusherUrl(prefixed)), 404);
    peer.close();
  });

  it('the HTTP API is under /pusher/apps/{id}, signed over the prefixed path (as SDKs with a path option sign it); /apps/{id} is 404', async () => {
    const peer = await connect(prefixed, APP.key, PREFIX);
    peer.send('pusher:subscribe', { channel: 'pre' });
    await peer.next('pusher_internal:subscription_succeeded', 'pre');
    const { status } = await trigger(prefixed, 'pre', 'via-prefix', '"ok"', { prefix: PREFIX });
    assert.equal(status, 200);
    assert.equal((await peer.next('via-prefix', 'pre')).data, 'ok');
    assert.equal((await trigger(prefixed, 'pre', 'no-prefix', '"x"')).status, 404);
    peer.close();
  });

  it('the pusher SDK 5.3.4, which has no path option, works given host "127.0.0.1:port/pusher" (it signs the path without the prefix)', async () => {
    const peer = await connect(prefixed, APP.key, PREFIX);
    peer.send('pusher:subscribe', { channel: 'sdk' });
    await peer.next('pusher_internal:subscription_succeeded', 'sdk');
    const backend = new PusherServer({ appId: APP.id, key: APP.key, secret: APP.secret, host: `127.0.0.1:${prefixed.port}${PREFIX}`, useTLS: false });
    assert.equal((await backend.trigger('sdk', 'from-sdk', { n: 1 })).status, 200);
    assert.equal((await peer.next('from-sdk', 'sdk')).data, '{"n":1}');
    const info = await backend.get({ path: '/channels/sdk', params: { info: 'subscription_count' } });
    assert.equal(((await info.json()) as { subscription_count: number }).subscription_count, 1);
    // Without the prefix the signature must still be the app's own.
    const forged = new PusherServer({ appId: APP.id, key: APP.key, secret: 'not-the-secret-0123456789', host: `127.0.0.1:${prefixed.port}${PREFIX}`, useTLS: false });
    await assert.rejects(forged.trigger('sdk', 'forged', {}), (error: { status?: number }) => error.status === 401);
    peer.close();
  });
});
