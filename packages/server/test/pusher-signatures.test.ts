/**
 * The Pusher dialect's signatures and names (src/dialects/pusher/): the reference test vectors
 * from Pusher's docs (pusher-compat.md §2 and §3.2), then cross-checks against the real `pusher`
 * server SDK (5.3.4): its channel and user auths must verify, and the HTTP API requests it really
 * sends (captured by a node:http server on port 0) must pass verifyApiRequest, and stop passing
 * when one byte of body, the timestamp, the key, the path or a parameter is changed.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import Pusher from 'pusher';
import {
  channelKind,
  channelTraits,
  isClientEventName,
  isValidChannelName,
  isValidEventName,
  serverToUserId,
} from '../src/dialects/pusher/names.ts';
import {
  apiStringToSign,
  channelAuthSignature,
  constantTimeEqual,
  generateSocketId,
  hmacSha256Hex,
  isSocketId,
  md5Hex,
  signApiQuery,
  userAuthSignature,
  verifyApiRequest,
  verifyPresenceChannelAuth,
  verifyPrivateChannelAuth,
  verifyUserAuth,
  webhookHeaders,
  type ApiVerdict,
  type PusherCredentials,
} from '../src/dialects/pusher/signatures.ts';

/** The credentials of Pusher's own worked examples. */
const DOCS_APP = { id: '3', key: '278d425bdf160c739803', secret: '7ad3773142a6692b25b8' } as const;
const DOCS_SOCKET = '1234.1234';

/** Changes one hex digit, so the value keeps its length and only its content is wrong. */
function flipLastHex(value: string): string {
  const last = value.at(-1);
  return value.slice(0, -1) + (last === '0' ? '1' : '0');
}

function refusal(verdict: ApiVerdict): { status: number; message: string } {
  assert.equal(verdict.ok, false, 'expected a refusal');
  if (verdict.ok) throw new Error('unreachable');
  return { status: verdict.status, message: verdict.message };
}

describe('reference vectors (Pusher docs)', () => {
  it('private channel: 1234.1234:private-foobar', () => {
    const auth = channelAuthSignature(DOCS_APP, DOCS_SOCKET, 'private-foobar');
    assert.equal(auth, `${DOCS_APP.key}:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4`);
    assert.deepEqual(verifyPrivateChannelAuth(DOCS_APP, DOCS_SOCKET, 'private-foobar', auth), { ok: true });
  });

  it('presence channel: the exact channel_data string is signed', () => {
    const channelData = '{"user_id":10,"user_info":{"name":"Mr. Pusher"}}';
    const auth = channelAuthSignature(DOCS_APP, DOCS_SOCKET, 'presence-foobar', channelData);
    assert.equal(auth, `${DOCS_APP.key}:afaed3695da2ffd16931f457e338e6c9f2921fa133ce7dac49f529792be6304c`);
    assert.deepEqual(verifyPresenceChannelAuth(DOCS_APP, DOCS_SOCKET, 'presence-foobar', channelData, auth), { ok: true });
    // The same data serialized differently is a different string, so it must not verify.
    const respaced = '{"user_id": 10, "user_info": {"name": "Mr. Pusher"}}';
    assert.equal(verifyPresenceChannelAuth(DOCS_APP, DOCS_SOCKET, 'presence-foobar', respaced, auth).ok, false);
  });

  it('user authentication: 1234.1234::user::{"id":"12345"}', () => {
    const userData = '{"id":"12345"}';
    const auth = userAuthSignature(DOCS_APP, DOCS_SOCKET, userData);
    assert.equal(auth, `${DOCS_APP.key}:4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba`);
    assert.deepEqual(verifyUserAuth(DOCS_APP, DOCS_SOCKET, userData, auth), { ok: true });
  });

  it('HTTP API worked example: body_md5, string to sign, signature, and verification at its time', () => {
    const body = '{"name":"foo","channels":["project-3"],"data":"{\\"some\\":\\"data\\"}"}';
    assert.equal(md5Hex(body), 'ec365a775a4cd0599faeb73354201b6f');
    const query =
      'auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f';
    const params = new Map(new URLSearchParams(query));
    assert.equal(apiStringToSign('post', '/apps/3/events', params), `POST\n/apps/3/events\n${query}`);
    const signature = 'da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c';
    assert.equal(hmacSha256Hex(DOCS_APP.secret, `POST\n/apps/3/events\n${query}`), signature);
    const verdict = verifyApiRequest('POST', '/apps/3/events', `?${query}&auth_signature=${signature}`, body, DOCS_APP, 1353088179_000);
    assert.deepEqual(verdict, { ok: true, params: new Map() });
    // The example's own signature, an hour later: the timestamp window is enforced (soketi does not).
    assert.equal(refusal(verifyApiRequest('POST', '/apps/3/events', `${query}&auth_signature=${signature}`, body, DOCS_APP, 1353091779_000)).status, 401);
  });

  it('keys are lower-cased, sorted and joined without escaping (the docs\' `Name: Something else`)', () => {
    const now = 1353088179_000;
    const signed = 'GET\n/apps/3/channels\nauth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0&name=Something else';
    const query = `Name=Something%20else&auth_version=1.0&auth_timestamp=1353088179&auth_key=${DOCS_APP.key}&auth_signature=${hmacSha256Hex(DOCS_APP.secret, signed)}`;
    const verdict = verifyApiRequest('GET', '/apps/3/channels', query, '', DOCS_APP, now);
    assert.deepEqual(verdict, { ok: true, params: new Map([['name', 'Something else']]) });
  });
});

describe('channel and user auth verification', () => {
  const app: PusherCredentials = { key: 'app-key', secret: 'app-secret' };
  const socketId = '123.456';
  const good = channelAuthSignature(app, socketId, 'private-a');

  it('refuses a signature for another socket, another channel, another app or with one digit changed', () => {
    assert.equal(verifyPrivateChannelAuth(app, '123.457', 'private-a', good).ok, false);
    assert.equal(verifyPrivateChannelAuth(app, socketId, 'private-b', good).ok, false);
    const tampered = verifyPrivateChannelAuth(app, socketId, 'private-a', flipLastHex(good));
    assert.equal(tampered.ok === false && tampered.reason, 'bad_signature');
    assert.match(tampered.ok ? '' : tampered.message, /Expected HMAC SHA256 hex digest of 123\.456:private-a/);
    const otherApp = verifyPrivateChannelAuth({ key: 'other-key', secret: 'app-secret' }, socketId, 'private-a', good);
    assert.equal(otherApp.ok === false && otherApp.reason, 'wrong_key');
    const otherSecret = verifyPrivateChannelAuth({ key: 'app-key', secret: 'other-secret' }, socketId, 'private-a', good);
    assert.equal(otherSecret.ok === false && otherSecret.reason, 'bad_signature');
  });

  it('calls anything that is not `key:signature` malformed, without throwing', () => {
    for (const auth of [undefined, null, 42, {}, '', 'no-colon', ':abc', 'app-key:', `app-key:${'é'.repeat(32)}`]) {
      const verdict = verifyPrivateChannelAuth(app, socketId, 'private-a', auth);
      assert.equal(verdict.ok, false, `accepted ${JSON.stringify(auth)}`);
    }
    assert.equal(verifyPrivateChannelAuth(app, socketId, 'private-a', 'no-colon').ok === false, true);
    const missing = verifyPresenceChannelAuth(app, socketId, 'presence-a', undefined, good);
    assert.equal(missing.ok === false && missing.reason, 'malformed');
    const noUser = verifyUserAuth(app, socketId, { id: '1' }, good);
    assert.equal(noUser.ok === false && noUser.reason, 'malformed');
  });

  it('constantTimeEqual compares different lengths and multi-byte text without throwing', () => {
    assert.equal(constantTimeEqual('abc', 'abc'), true);
    assert.equal(constantTimeEqual('abc', 'abcd'), false);
    // Same character count, different byte count: timingSafeEqual itself would throw here.
    assert.equal(constantTimeEqual('ab', 'é'), false);
  });

  it('a user sign-in signature is not a channel signature', () => {
    const userData = '{"id":"u1"}';
    const userAuth = userAuthSignature(app, socketId, userData);
    assert.deepEqual(verifyUserAuth(app, socketId, userData, userAuth), { ok: true });
    assert.equal(verifyUserAuth(app, socketId, '{"id":"u2"}', userAuth).ok, false);
    assert.equal(verifyPresenceChannelAuth(app, socketId, '', `:user::${userData}`, userAuth).ok, false);
  });
});

describe('socket ids', () => {
  it('are \\d+.\\d+, distinct, and accepted by the pusher SDK', () => {
    const sdk = new Pusher({ appId: '1', key: 'app-key', secret: 'app-secret', host: '127.0.0.1', useTLS: false });
    const ids = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const id = generateSocketId();
      assert.match(id, /^\d+\.\d+$/);
      for (const half of id.split('.')) assert.ok(Number(half) < 2 ** 48 && Number.isSafeInteger(Number(half)));
      ids.add(id);
    }
    assert.equal(ids.size, 1000);
    const [first] = ids;
    assert.ok(first !== undefined && isSocketId(first));
    // The SDK throws "Invalid socket id" for any other shape.
    assert.doesNotThrow(() => sdk.authorizeChannel(first, 'private-a'));
  });

  it('isSocketId refuses what the SDK refuses', () => {
    for (const bad of ['', '1', '1.', '.1', '1.2.3', 'a.b', ' 1.2', '1.2\n', '1,2', 12.5]) assert.equal(isSocketId(bad), false, String(bad));
    assert.equal(isSocketId('0.0'), true);
  });
});

describe('the pusher SDK\'s channel and user auths', () => {
  const app = { id: '42', key: 'sdk-key', secret: 'sdk-secret' };
  const sdk = new Pusher({
    appId: app.id,
    key: app.key,
    secret: app.secret,
    host: '127.0.0.1',
    useTLS: false,
    encryptionMasterKeyBase64: Buffer.alloc(32, 7).toString('base64'),
  });
  const socketId = generateSocketId();

  it('authorizeChannel (private): accepted; tampered: refused', () => {
    const { auth } = sdk.authorizeChannel(socketId, 'private-orders.7');
    assert.deepEqual(verifyPrivateChannelAuth(app, socketId, 'private-orders.7', auth), { ok: true });
    assert.equal(verifyPrivateChannelAuth(app, socketId, 'private-orders.7', flipLastHex(auth)).ok, false);
    assert.equal(verifyPrivateChannelAuth(app, socketId, 'private-orders.8', auth).ok, false);
  });

  it('authorizeChannel (private-encrypted): the shared_secret is not part of the signature', () => {
    const response = sdk.authorizeChannel(socketId, 'private-encrypted-vault');
    assert.ok(response.shared_secret, 'the SDK adds a shared_secret for encrypted channels');
    assert.deepEqual(verifyPrivateChannelAuth(app, socketId, 'private-encrypted-vault', response.auth), { ok: true });
  });

  it('authorizeChannel (presence): accepted with its channel_data; other channel_data: refused', () => {
    const response = sdk.authorizeChannel(socketId, 'presence-room', { user_id: 'u1', user_info: { name: 'Ann' } });
    assert.equal(typeof response.channel_data, 'string');
    assert.deepEqual(verifyPresenceChannelAuth(app, socketId, 'presence-room', response.channel_data, response.auth), { ok: true });
    const forged = JSON.stringify({ user_id: 'admin', user_info: { name: 'Ann' } });
    assert.equal(verifyPresenceChannelAuth(app, socketId, 'presence-room', forged, response.auth).ok, false);
    assert.equal(verifyPresenceChannelAuth(app, socketId, 'presence-room', response.channel_data, flipLastHex(response.auth)).ok, false);
  });

  it('authenticateUser: accepted with its user_data; other user_data: refused', () => {
    const response = sdk.authenticateUser(socketId, { id: 'u1', name: 'Ann' });
    assert.deepEqual(verifyUserAuth(app, socketId, response.user_data, response.auth), { ok: true });
    assert.equal(verifyUserAuth(app, socketId, JSON.stringify({ id: 'u2', name: 'Ann' }), response.auth).ok, false);
    assert.equal(verifyUserAuth(app, '1.1', response.user_data, response.auth).ok, false);
  });

  it('our auths are the SDK\'s, byte for byte', () => {
    const channelData = { user_id: 'u1', user_info: { name: 'Ann' } };
    const response = sdk.authorizeChannel(socketId, 'presence-room', channelData);
    assert.equal(channelAuthSignature(app, socketId, 'presence-room', JSON.stringify(channelData)), response.auth);
    assert.equal(userAuthSignature(app, socketId, '{"id":"u1"}'), sdk.authenticateUser(socketId, { id: 'u1' }).auth);
  });

  it('webhookHeaders pass the SDK\'s webhook check; a changed body does not', () => {
    const rawBody = JSON.stringify({ time_ms: 1700000000000, events: [{ name: 'channel_occupied', channel: 'news' }] });
    const headers = webhookHeaders(app, rawBody);
    assert.equal(sdk.webhook({ headers, rawBody }).isValid(), true);
    assert.equal(sdk.webhook({ headers, rawBody: rawBody.replace('news', 'newz') }).isValid(), false);
    assert.equal(sdk.webhook({ headers: webhookHeaders({ key: app.key, secret: 'other' }, rawBody), rawBody }).isValid(), false);
  });
});

describe('HTTP API requests the pusher SDK sends', () => {
  interface Captured {
    readonly method: string;
    readonly path: string;
    readonly query: string;
    readonly body: Buffer;
  }
  const app = { id: '7', key: 'api-key', secret: 'api-secret' };
  let server: Server;
  let sdk: Pusher;
  const captured: Captured[] = [];

  before(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const url = new URL(req.url ?? '/', 'http://127.0.0.1');
        captured.push({ method: req.method ?? '', path: url.pathname, query: url.search, body: Buffer.concat(chunks) });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    sdk = new Pusher({ appId: app.id, key: app.key, secret: app.secret, host: '127.0.0.1', port: String(port), useTLS: false });
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  async function capture(send: () => Promise<unknown>): Promise<Captured> {
    const before = captured.length;
    await send();
    assert.equal(captured.length, before + 1, 'the SDK sent exactly one request');
    const request = captured.at(-1);
    assert.ok(request);
    return request;
  }

  function timestampOf(request: Captured): number {
    return Number(new URLSearchParams(request.query).get('auth_timestamp'));
  }

  function verify(request: Captured, overrides: Partial<Captured> = {}, credentials: PusherCredentials = app, nowMs = Date.now()): ApiVerdict {
    const r = { ...request, ...overrides };
    return verifyApiRequest(r.method, r.path, r.query, r.body, credentials, nowMs);
  }

  /** Everything the brief asks of one captured request: accepted as sent, refused when altered. */
  function assertAcceptedOnlyAsSent(request: Captured): void {
    assert.equal(verify(request).ok, true, JSON.stringify(verify(request)));
    const ts = timestampOf(request);
    assert.equal(verify(request, {}, app, (ts + 600) * 1000 + 999).ok, true, '600 s late is inside the window');
    assert.equal(verify(request, {}, app, (ts - 600) * 1000).ok, true, '600 s early is inside the window');
    const late = refusal(verify(request, {}, app, (ts + 601) * 1000));
    assert.equal(late.status, 401);
    assert.match(late.message, /^Timestamp expired: .* not within 600s of server time/);
    assert.equal(refusal(verify(request, {}, app, (ts - 601) * 1000)).status, 401);
    assert.deepEqual(refusal(verify(request, {}, { key: 'other-key', secret: app.secret })), { status: 401, message: 'Unknown auth_key' });
    assert.match(refusal(verify(request, {}, { key: app.key, secret: 'other-secret' })).message, /^Invalid signature: you should have sent HmacSHA256Hex\(/);
    assert.equal(refusal(verify(request, { method: request.method === 'GET' ? 'POST' : 'GET' })).status, 401);
    assert.equal(refusal(verify(request, { path: request.path.replace('/apps/7/', '/apps/8/') })).status, 401);
    assert.equal(refusal(verify(request, { query: `${request.query}&extra=1` })).status, 401);
    if (request.body.length > 0) {
      const body = Buffer.from(request.body);
      body[body.length - 2] = (body[body.length - 2] ?? 0) ^ 1;
      assert.deepEqual(refusal(verify(request, { body })), { status: 401, message: 'body_md5 does not match the request body' });
    }
  }

  it('trigger (POST /events with a body, socket_id and info)', async () => {
    const request = await capture(() => sdk.trigger('orders', 'created', { id: 1, text: 'héllo' }, { socket_id: '1.2', info: 'subscription_count' }));
    assert.equal(request.method, 'POST');
    assert.equal(request.path, '/apps/7/events');
    assert.ok(request.query.includes('body_md5='));
    assertAcceptedOnlyAsSent(request);
  });

  it('triggerBatch (POST /batch_events)', async () => {
    const request = await capture(() => sdk.triggerBatch([{ channel: 'a', name: 'b', data: { z: 1 } }, { channel: 'c', name: 'd', data: 'x' }]));
    assert.equal(request.path, '/apps/7/batch_events');
    assertAcceptedOnlyAsSent(request);
  });

  it('get /channels with filter_by_prefix and info: accepted, and the route sees its own parameters', async () => {
    const request = await capture(() => sdk.get({ path: '/channels', params: { filter_by_prefix: 'presence-', info: 'user_count' } }));
    assert.equal(request.method, 'GET');
    assert.equal(request.body.length, 0);
    assert.ok(!request.query.includes('body_md5'), 'no body, no body_md5');
    const verdict = verify(request);
    assert.ok(verdict.ok);
    assert.deepEqual([...verdict.params], [['filter_by_prefix', 'presence-'], ['info', 'user_count']]);
    assertAcceptedOnlyAsSent(request);
    assert.equal(refusal(verify(request, { query: request.query.replace('presence-', 'private-') })).status, 401);
  });

  it('get /channels/{channel}/users and post /events', async () => {
    assertAcceptedOnlyAsSent(await capture(() => sdk.get({ path: '/channels/presence-room/users' })));
    // The SDK's typings say `body: string`, but post() JSON-encodes whatever it gets, as its own
    // terminateUserConnections does with `{}`; an object is how it is really used.
    const body = { name: 'e', channels: ['x'], data: '{}' } as unknown as string;
    assertAcceptedOnlyAsSent(await capture(() => sdk.post({ path: '/events', body })));
  });

  it('terminateUserConnections, also for a user id the SDK signs unencoded and sends percent-encoded', async () => {
    const plain = await capture(() => sdk.terminateUserConnections('user-1'));
    assert.equal(plain.path, '/apps/7/users/user-1/terminate_connections');
    assertAcceptedOnlyAsSent(plain);
    const spaced = await capture(() => sdk.terminateUserConnections('user 1'));
    assert.equal(spaced.path, '/apps/7/users/user%201/terminate_connections');
    assertAcceptedOnlyAsSent(spaced);
    assert.equal(refusal(verify(spaced, { path: '/apps/7/users/user%202/terminate_connections' })).status, 401);
  });

  it('400 for requests that cannot be checked as sent', async () => {
    const request = await capture(() => sdk.trigger('orders', 'created', { id: 2 }));
    const query = new URLSearchParams(request.query);
    const without = (name: string): string => {
      const copy = new URLSearchParams(query);
      copy.delete(name);
      return copy.toString();
    };
    for (const name of ['auth_key', 'auth_timestamp', 'auth_version', 'auth_signature', 'body_md5']) {
      assert.deepEqual(refusal(verify(request, { query: without(name) })).status, 400, `without ${name}`);
    }
    assert.match(refusal(verify(request, { query: without('body_md5') })).message, /body_md5 \(required when the request has a body\)/);
    assert.equal(refusal(verify(request, { query: `${request.query}&AUTH_KEY=${app.key}` })).status, 400, 'a repeated key, in any case');
    assert.equal(refusal(verify(request, { query: request.query.replace('auth_version=1.0', 'auth_version=2.0') })).status, 400);
    const ts = String(timestampOf(request));
    assert.equal(refusal(verify(request, { query: request.query.replace(`auth_timestamp=${ts}`, `auth_timestamp=${ts}.5`) })).status, 400);
  });

  it('signApiQuery signs like the SDK (the same query for the same inputs)', async () => {
    const request = await capture(() => sdk.get({ path: '/channels', params: { info: 'user_count' } }));
    const ts = timestampOf(request);
    assert.equal(`?${signApiQuery(app, 'GET', request.path, { info: 'user_count' }, '', ts * 1000)}`, request.query);
  });
});

describe('names', () => {
  it('channel names: Pusher\'s characters, 1 to 200 of them, # only for #server-to-user-', () => {
    for (const ok of ['a', 'private-a', 'presence-room.1', 'x=y@z,w;v_u-t', 'a'.repeat(200), '#server-to-user-u1']) {
      assert.equal(isValidChannelName(ok), true, ok);
    }
    for (const bad of ['', 'a'.repeat(201), 'a b', 'a/b', 'a#b', '#other', '#server-to-user-', '#server-to-user-a b', 'é']) {
      assert.equal(isValidChannelName(bad), false, bad);
    }
  });

  it('channel kinds by prefix, longest first', () => {
    const cases: [string, string][] = [
      ['news', 'public'],
      ['private-a', 'private'],
      ['presence-a', 'presence'],
      ['private-encrypted-a', 'private-encrypted'],
      ['cache-a', 'cache'],
      ['private-cache-a', 'private-cache'],
      ['presence-cache-a', 'presence-cache'],
      ['private-encrypted-cache-a', 'private-encrypted-cache'],
      ['#server-to-user-u1', 'server-to-user'],
      ['privatefoo', 'public'],
    ];
    for (const [name, kind] of cases) assert.equal(channelKind(name), kind, name);
    assert.deepEqual(channelTraits('private-encrypted-cache-x'), { kind: 'private-encrypted-cache', auth: 'channel', cache: true, encrypted: true, clientEvents: false });
    assert.deepEqual(channelTraits('presence-cache-x'), { kind: 'presence-cache', auth: 'presence', cache: true, encrypted: false, clientEvents: true });
    assert.equal(channelTraits('cache-x').clientEvents, false);
    assert.equal(channelTraits('#server-to-user-u1').auth, 'user');
    assert.equal(serverToUserId('#server-to-user-u1'), 'u1');
    assert.equal(serverToUserId('#server-to-user-'), undefined);
    assert.equal(serverToUserId('private-u1'), undefined);
  });

  it('event names: 1 to 200 characters; client events start with client-', () => {
    assert.equal(isValidEventName('a'.repeat(200)), true);
    assert.equal(isValidEventName('a'.repeat(201)), false);
    assert.equal(isValidEventName(''), false);
    assert.equal(isClientEventName('client-typing'), true);
    assert.equal(isClientEventName('client-'), false);
    assert.equal(isClientEventName('typing'), false);
    assert.equal(isClientEventName(`client-${'a'.repeat(194)}`), false);
  });
});
