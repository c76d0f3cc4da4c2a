/**
 * Fuzzed raw-dialect handshakes, the PieSocket-style `/v3|v4/{channel}?api_key=…&notify_self…`:
 * each URL is built from parts whose verdict is known (a key that is ours or not, a channel name
 * that is valid or not, a user that is too long, a JWT that verifies or not) plus junk
 * parameters, and the server must give exactly the coded close the first bad part calls for
 * (docs/codes.md), after its `{"error"}` frame, or accept the connection. The query parser
 * itself is fuzzed on arbitrary strings.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { SignJWT } from 'jose';
import { CloseCodes, MAX_IDENTITY_LENGTH, parseQuery } from '@chorus/protocol';
import { OTHER_APP, TEST_APP, wsBase } from '../helpers.ts';
import { CHORUS_CLOSE_CODES, FUZZ_APP, fuzz, fuzzParameters, startFuzzServer, wsCase, type FuzzServer } from './harness.ts';

const NAME_CHARS = 'ABCXYZabcxyz0189_-=@,.;';
/** Characters outside the channel-name rule that still stay inside the path segment. */
const BAD_CHARS = [' ', '!', '$', "'", '(', ')', '*', '~', ':', '+', '"', '<', '>', '{', '|', 'é', '€', '💥', '%zz', '%', '%C0%80', '%00'];

// `.` and `..` are valid names but dot segments of a URL: every URL parser resolves them away.
const validName = fc.string({ unit: fc.constantFrom(...NAME_CHARS), minLength: 1, maxLength: 60 }).filter((name) => name !== '.' && name !== '..');

type ChannelCase = { kind: 'valid' | 'invalid'; segment: string; name: string };

const channel: fc.Arbitrary<ChannelCase> = fc.oneof(
  validName.map((name) => ({ kind: 'valid' as const, segment: name, name })),
  validName.map((name) => ({ kind: 'valid' as const, segment: `private-${name}`, name: `private-${name}` })),
  validName.map((name) => ({ kind: 'valid' as const, segment: `presence-${name}`, name: `presence-${name}` })),
  // Percent-encoded valid characters decode to a valid name.
  validName.map((name) => ({ kind: 'valid' as const, segment: [...name].map((c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`).join(''), name })),
  fc.tuple(validName, fc.constantFrom(...BAD_CHARS), validName).map(([a, bad, b]) => ({ kind: 'invalid' as const, segment: `${a}${bad}${b}`, name: '' })),
  fc.string({ unit: fc.constantFrom(...NAME_CHARS), minLength: 201, maxLength: 260 }).map((name) => ({ kind: 'invalid' as const, segment: name, name })),
  fc.constant({ kind: 'invalid' as const, segment: '', name: '' }),
);

type KeyCase = 'ours' | 'other-app' | 'unknown' | 'missing';
type TokenCase = 'none' | 'empty' | 'valid' | 'expired' | 'other-channel' | 'other-secret' | 'garbage' | 'no-exp' | 'alg-none';

const junkText = fc.string({ unit: fc.constantFrom('a', 'Z', '0', '%', '+', '=', '&', '.', '~', '!', ' ', 'é', '%zz', '%2', '%26'), maxLength: 12 });

const rawCase = fc.record({
  key: fc.constantFrom<KeyCase>('ours', 'ours', 'ours', 'ours', 'ours', 'other-app', 'unknown', 'missing'),
  channel,
  user: fc.oneof(
    { arbitrary: fc.constant(undefined), weight: 4 },
    { arbitrary: fc.string({ unit: 'grapheme', maxLength: 40 }), weight: 4 },
    { arbitrary: fc.string({ minLength: MAX_IDENTITY_LENGTH + 1, maxLength: MAX_IDENTITY_LENGTH + 40 }), weight: 1 },
  ),
  uuid: fc.oneof(
    { arbitrary: fc.constant(undefined), weight: 4 },
    { arbitrary: fc.uuid(), weight: 4 },
    { arbitrary: fc.string({ minLength: MAX_IDENTITY_LENGTH + 1, maxLength: MAX_IDENTITY_LENGTH + 8 }), weight: 1 },
  ),
  token: fc.constantFrom<TokenCase>('none', 'none', 'none', 'none', 'none', 'empty', 'valid', 'valid', 'expired', 'other-channel', 'other-secret', 'garbage', 'no-exp', 'alg-none'),
  flags: fc.subarray(['notify_self', 'presence', 'be']).chain((names) => fc.tuple(...names.map((n) => fc.tuple(fc.constant(n), fc.constantFrom('', '1', '0', 'true', 'TRUE ', 'no', '%zz'))))),
  // Junk after the real parameters: the first occurrence of a name wins, so it must not matter.
  junk: fc.array(fc.tuple(fc.oneof(junkText, fc.constantFrom('api_key', 'user', 'jwt', 'uuid', 'presence')), fc.option(junkText)), { maxLength: 4 }),
});
type RawCase = typeof rawCase extends fc.Arbitrary<infer T> ? T : never;

const secretKey = (secret: string): Uint8Array => new TextEncoder().encode(secret);

async function token(kind: TokenCase, channelName: string, secret: string): Promise<string | undefined> {
  const now = Math.floor(Date.now() / 1000);
  const sign = (claims: { sub?: string; exp?: number }, key = secret): Promise<string> => {
    const jwt = new SignJWT({}).setProtectedHeader({ alg: 'HS256' });
    if (claims.sub !== undefined) jwt.setSubject(claims.sub);
    if (claims.exp !== undefined) jwt.setExpirationTime(claims.exp);
    return jwt.sign(secretKey(key));
  };
  switch (kind) {
    case 'none':
      return undefined;
    case 'empty':
      return '';
    case 'valid':
      return sign({ sub: channelName, exp: now + 3600 });
    case 'expired':
      return sign({ sub: channelName, exp: now - 3600 });
    case 'other-channel':
      return sign({ sub: `${channelName}x`, exp: now + 3600 });
    case 'other-secret':
      return sign({ sub: channelName, exp: now + 3600 }, 'some-other-secret-0123456789');
    case 'no-exp':
      return sign({ sub: channelName });
    case 'garbage':
      return 'eyJhbGciOiJIUzI1NiJ9.not-json.c2ln';
    case 'alg-none': {
      const part = (value: object): string => Buffer.from(JSON.stringify(value)).toString('base64url');
      return `${part({ alg: 'none' })}.${part({ sub: channelName, exp: now + 3600 })}.`;
    }
  }
}

/** The close the server must send for this case, or undefined when it must accept it. */
function expectedClose(c: RawCase): number | undefined {
  if (c.key === 'unknown' || c.key === 'missing') return CloseCodes.UNKNOWN_API_KEY.code;
  if (c.channel.kind === 'invalid') return CloseCodes.INVALID_CHANNEL.code;
  if ((c.user?.length ?? 0) > MAX_IDENTITY_LENGTH || (c.uuid?.length ?? 0) > MAX_IDENTITY_LENGTH) return CloseCodes.INVALID_PARAMETER.code;
  const needsToken = (c.token !== 'none' && c.token !== 'empty') || c.channel.name.startsWith('private-');
  if (needsToken && c.token !== 'valid') return CloseCodes.AUTHENTICATION_FAILED.code;
  return undefined;
}

async function urlOf(server: FuzzServer, c: RawCase): Promise<string> {
  const app = c.key === 'other-app' ? OTHER_APP : TEST_APP;
  const params: string[] = [];
  if (c.key === 'ours' || c.key === 'other-app') params.push(`api_key=${app.key}`);
  if (c.key === 'unknown') params.push(`api_key=${app.key}x`);
  if (c.user !== undefined) params.push(`user=${encodeURIComponent(c.user)}`);
  if (c.uuid !== undefined) params.push(`uuid=${encodeURIComponent(c.uuid)}`);
  const jwt = await token(c.token, c.channel.name, app.secret);
  if (jwt !== undefined) params.push(`jwt=${jwt}`);
  for (const [name, value] of c.flags) params.push(`${name}=${value}`);
  const present = new Set(params.map((p) => p.split('=')[0]));
  for (const [name, value] of c.junk) {
    // A parameter name of ours only as a repetition: a first occurrence would change the verdict.
    if (['api_key', 'user', 'jwt', 'uuid', 'presence'].includes(name) && !present.has(name)) continue;
    params.push(value === null ? name : `${name}=${value}`);
  }
  return `${wsBase(server.server)}/v4/${c.channel.segment}?${params.join('&')}`;
}

describe('fuzz: raw dialect URLs', () => {
  let fuzzed: FuzzServer;
  after(() => fuzzed?.stop());

  it('every handshake gets the coded close its first bad part calls for, or is accepted', async (t) => {
    fuzzed = await startFuzzServer();
    const outcomes = new Map<string, number>();
    await fuzz(0x5eed_0002, 1200, rawCase, async (c) => {
      const url = await urlOf(fuzzed, c);
      const outcome = await wsCase(url);
      const expected = expectedClose(c);
      const label = String(outcome.closeCode ?? outcome.httpStatus);
      outcomes.set(label, (outcomes.get(label) ?? 0) + 1);
      assert.ok(outcome.opened, `the upgrade was answered ${outcome.httpStatus}`);
      if (expected === undefined) {
        assert.equal(outcome.closeCode, 1000, `accepted, closed by the client; frames ${JSON.stringify(outcome.frames)}`);
        assert.ok(!outcome.frames.some((f) => f.startsWith('{"error"')), `no error frame: ${JSON.stringify(outcome.frames)}`);
      } else {
        assert.equal(outcome.closeCode, expected, `close ${outcome.closeCode} (${outcome.closeReason}); frames ${JSON.stringify(outcome.frames)}`);
        assert.ok(CHORUS_CLOSE_CODES.has(expected));
        const error = JSON.parse(outcome.frames.at(-1) ?? '{}') as { error?: unknown };
        assert.ok(typeof error.error === 'string' && error.error !== '', `an {"error"} frame before the close: ${JSON.stringify(outcome.frames)}`);
      }
      fuzzed.assertNoErrors();
    });
    t.diagnostic(`closes: ${JSON.stringify(Object.fromEntries(outcomes))} (fuzz app: ${FUZZ_APP.id})`);
    await fuzzed.finish((line) => t.diagnostic(line));
  });

  it('parseQuery takes any query string without throwing, and the first occurrence of a name wins', () => {
    const pair = fc.tuple(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 8 }), fc.string({ unit: 'grapheme', maxLength: 8 }));
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), fc.array(pair, { maxLength: 6 }), (junk, pairs) => {
        parseQuery(junk); // any text, lone surrogates and broken escapes included
        const encoded = pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
        const parsed = parseQuery(`?${encoded}&${junk}`);
        for (const [k] of pairs) assert.equal(parsed.get(k), pairs.find(([first]) => first === k)?.[1]);
      }),
      fuzzParameters(0x5eed_0003, 3000),
    );
  });
});
