/**
 * Fuzzed Pusher HTTP API requests (`/apps/{app_id}/…`, signed as the `pusher` SDKs sign:
 * auth_key, auth_timestamp, auth_version, body_md5, auth_signature; reference
 * /work/shared/reference/pusher-compat.md §3.2): each request is signed right or spoiled in one
 * known way, so its status is known (400 for what cannot be checked, 401 for what fails the
 * check, docs/codes.md); a request signed right to any path with any body gets a Pusher answer
 * (200, 400, 404 or 413 with `{"error"}`), never a 500, and a trigger's event reaches a subscriber.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { signApiQuery } from '../../src/dialects/pusher/signatures.ts';
import { TEST_APP, TestClient, rawUrl } from '../helpers.ts';
import { fuzz, httpRequest, startFuzzServer, type FuzzServer } from './harness.ts';

type Spoil = 'none' | 'no-auth-key' | 'wrong-key' | 'version' | 'timestamp-text' | 'timestamp-old' | 'no-signature' | 'wrong-signature' | 'no-body-md5' | 'wrong-body-md5' | 'duplicate' | 'wrong-secret';

/** What each spoiled request must be answered, whatever its path and body. */
const SPOIL_STATUS: Record<Exclude<Spoil, 'none'>, number> = {
  'no-auth-key': 400,
  'wrong-key': 401,
  version: 400,
  'timestamp-text': 400,
  'timestamp-old': 401,
  'no-signature': 400,
  'wrong-signature': 401,
  'no-body-md5': 400,
  'wrong-body-md5': 401,
  duplicate: 400,
  'wrong-secret': 401,
};

const segmentChars = fc.constantFrom(...'abcXYZ019_-=@,.;', '%zz', '%', '%41', '%2F', '%E2%82', '__proto__', 'constructor', 'presence-', 'private-', 'cache-');
const segment = fc.array(segmentChars, { minLength: 1, maxLength: 5 }).map((parts) => parts.join(''));
const channelName = fc.oneof(fc.constantFrom('fuzz', 'presence-fuzz', 'cache-fuzz', '__proto__', 'constructor', '#server-to-user-1', '', 'a b', 'x'.repeat(201)), segment);
const anything = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.string({ maxLength: 20 }));

const event = fc.record(
  {
    name: fc.oneof(fc.constant('fuzz-event'), fc.string({ maxLength: 12 }), fc.constant('e'.repeat(201)), anything),
    data: fc.oneof(fc.json({ maxDepth: 2 }), fc.string({ maxLength: 30 }), fc.constant('d'.repeat(10_241)), anything),
    channel: fc.oneof(channelName, anything),
    channels: fc.oneof(fc.array(channelName, { maxLength: 4 }), fc.array(channelName, { minLength: 101, maxLength: 102 }), anything),
    socket_id: fc.oneof(fc.constant('123.456'), fc.string({ maxLength: 10 }), anything),
    info: fc.oneof(fc.constantFrom('subscription_count', 'user_count', 'subscription_count,user_count', ''), anything),
  },
  { requiredKeys: [] },
);

/** An event the API accepts, on the channel the test's subscriber listens to. */
const goodEvent = fc.record({ name: fc.string({ minLength: 1, maxLength: 20 }), data: fc.oneof(fc.json({ maxDepth: 2 }), fc.string({ maxLength: 30 })), channels: fc.constantFrom(['fuzz'], ['fuzz', 'fuzz-2'], ['cache-fuzz']) });

const goodBody = fc.oneof(goodEvent.map((e) => JSON.stringify(e)), goodEvent.map((e) => JSON.stringify({ batch: [{ ...e, channels: undefined, channel: e.channels[0] }] })));

const body = fc.oneof(
  goodBody,
  event.map((e) => JSON.stringify(e)),
  fc.array(event, { maxLength: 12 }).map((batch) => JSON.stringify({ batch })),
  fc.json({ maxDepth: 2 }),
  fc.string({ maxLength: 30 }),
  fc.constant(''),
);

const spoil = fc.oneof({ arbitrary: fc.constant<Spoil>('none'), weight: 6 }, { arbitrary: fc.constantFrom<Spoil>(...(Object.keys(SPOIL_STATUS) as Spoil[])), weight: 4 });
const anyCase = fc.record({
  method: fc.constantFrom('GET', 'GET', 'POST', 'POST', 'POST', 'PUT'),
  appId: fc.oneof({ arbitrary: fc.constant(TEST_APP.id), weight: 8 }, { arbitrary: segment, weight: 1 }),
  rest: fc.oneof(
    fc.constantFrom('/events', '/events', '/events', '/batch_events', '/batch_events', '/channels', '/events/', '/nope'),
    channelName.map((c) => `/channels/${c}`),
    channelName.map((c) => `/channels/${c}/users`),
    segment.map((u) => `/users/${u}/terminate_connections`),
  ),
  query: fc.dictionary(fc.constantFrom('info', 'filter_by_prefix', 'x', 'INFO'), fc.constantFrom('user_count', 'subscription_count', 'presence-', 'cache', ''), { maxKeys: 3 }),
  body,
  spoil,
});
const triggerCase = fc.record({ method: fc.constant('POST'), appId: fc.constant(TEST_APP.id), rest: fc.constantFrom('/events', '/batch_events'), query: fc.constant({}), body: goodBody, spoil });
const apiCase = fc.oneof(anyCase, triggerCase);
type ApiCase = typeof apiCase extends fc.Arbitrary<infer T> ? T : never;

/** The query string for a case: signed as the SDK signs, then spoiled as the case says. */
function queryOf(c: ApiCase, path: string, body: string): string {
  const now = c.spoil === 'timestamp-old' ? Date.now() - 3_600_000 : Date.now();
  const secret = c.spoil === 'wrong-secret' ? `${TEST_APP.secret}x` : TEST_APP.secret;
  const signed = new URLSearchParams(signApiQuery({ key: TEST_APP.key, secret }, c.method, path, c.query, c.spoil === 'no-body-md5' ? '' : body, now));
  switch (c.spoil) {
    case 'no-auth-key':
      signed.delete('auth_key');
      break;
    case 'wrong-key':
      signed.set('auth_key', `${TEST_APP.key}x`);
      break;
    case 'version':
      signed.set('auth_version', '2.0');
      break;
    case 'timestamp-text':
      signed.set('auth_timestamp', 'yesterday');
      break;
    case 'no-signature':
      signed.delete('auth_signature');
      break;
    case 'wrong-signature':
      signed.set('auth_signature', '0'.repeat(64));
      break;
    case 'wrong-body-md5':
      signed.set('body_md5', '0'.repeat(32));
      break;
    case 'duplicate':
      signed.append('auth_key', TEST_APP.key);
      break;
    default:
  }
  return signed.toString();
}

/** Spoils the oracle can judge: some only exist when the request has a body. */
function expectedStatus(c: ApiCase, sentBody: string): number | undefined {
  if (c.appId !== TEST_APP.id) return undefined; // an unknown or odd app id: 404 or 400, checked below
  if (c.spoil === 'none') return undefined;
  if ((c.spoil === 'no-body-md5' || c.spoil === 'wrong-body-md5') && sentBody === '') return c.spoil === 'wrong-body-md5' ? 401 : undefined;
  return SPOIL_STATUS[c.spoil];
}

/** How many events an accepted trigger published on the channel "fuzz". */
function deliveriesToFuzz(rest: string, body: string): number {
  const onFuzz = (e: { channel?: unknown; channels?: unknown }): number => (Array.isArray(e.channels) ? e.channels : [e.channel]).filter((c) => c === 'fuzz').length;
  if (rest === '/events') return onFuzz(JSON.parse(body) as object);
  if (rest === '/batch_events') return (JSON.parse(body) as { batch: object[] }).batch.map(onFuzz).reduce((a, b) => a + b, 0);
  return 0;
}

describe('fuzz: Pusher HTTP API', () => {
  let fuzzed: FuzzServer;
  after(() => fuzzed?.stop());

  it('every request gets the status its signature calls for, and signed ones a Pusher answer, never a 500', async (t) => {
    fuzzed = await startFuzzServer();
    const statuses = new Map<number, number>();
    const subscriber = await TestClient.open(rawUrl(fuzzed.server, 'fuzz'));
    let triggered = 0;
    await fuzz(
      0x5eed_0007,
      1000,
      apiCase,
      async (c) => {
        // Sent as is; a # would start the fragment and a space is not allowed in a request line.
        const path = `/apps/${c.appId}${c.rest.replaceAll('#', '%23').replaceAll(' ', '%20')}`;
        const sentBody = c.method === 'POST' ? c.body : ''; // the API reads POST bodies only
        const { status, text } = await httpRequest(fuzzed.server.port, c.method, `${path}?${queryOf(c, path, sentBody)}`, sentBody);
        const response = { status };
        statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
        assert.notEqual(response.status, 500, `500: ${text}`);
        const expected = expectedStatus(c, sentBody);
        if (expected !== undefined) assert.equal(response.status, expected, `${c.spoil}: ${text}`);
        if (c.spoil === 'none' && c.appId === TEST_APP.id) assert.ok([200, 400, 404, 413].includes(response.status), `a Pusher answer: ${response.status} ${text}`);
        if (c.appId !== TEST_APP.id) assert.ok([400, 404].includes(response.status), `unknown app: ${response.status} ${text}`);
        if (response.status === 200 && c.method === 'POST') triggered += deliveriesToFuzz(c.rest, sentBody);
        if (response.status !== 200) assert.equal(typeof (JSON.parse(text) as { error?: unknown }).error, 'string', `{"error"}: ${text}`);
        fuzzed.assertNoErrors();
      },
      [
        // Found by this fuzz: a malformed escape in a path segment was a 500 (decodeURIComponent threw).
        { method: 'GET', appId: '%zz', rest: '/channels', query: {}, body: '', spoil: 'none' },
        { method: 'POST', appId: TEST_APP.id, rest: '/users/%E2%82/terminate_connections', query: {}, body: '', spoil: 'none' },
        { method: 'GET', appId: TEST_APP.id, rest: '/channels/%zz', query: {}, body: '', spoil: 'none' },
        // Found by this fuzz: the signature was checked over the normalized path, not the one sent.
        { method: 'GET', appId: TEST_APP.id, rest: '/channels/.', query: {}, body: '', spoil: 'none' },
      ],
    );
    t.diagnostic(`statuses: ${JSON.stringify(Object.fromEntries(statuses))}; events triggered on "fuzz": ${triggered}`);
    await subscriber.until(() => subscriber.received.length >= triggered, `${triggered} triggered events`);
    assert.equal(subscriber.received.length, triggered, 'every accepted trigger was delivered once');
    subscriber.close();
    await fuzzed.finish((line) => t.diagnostic(line));
  });
});
