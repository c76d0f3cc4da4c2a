/**
 * Fuzzed JWTs (auth.ts, jose): tokens assembled from headers and payloads of any shape (alg
 * none/HS/RS, kid known or not, crit, exp/nbf/aud/sub of every type), signatures right, wrong,
 * or from another key, broken base64url and segment counts. TokenVerifier never throws, accepts
 * only what is signed with the key the header names under its pinned algorithm, for the right
 * sub, unexpired; and a v1 connect with any such token is answered ok or refused with
 * unauthorized (101) and the close 4003.
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { CONNECTION_TOKEN_AUDIENCE, CloseCodes, ErrorCodes } from '@chorus/protocol';
import { TokenVerifier } from '../../src/auth.ts';
import { TEST_APP, wsBase } from '../helpers.ts';
import { FUZZ_APP, fuzz, fuzzParameters, startFuzzServer, wsCase, type FuzzServer } from './harness.ts';

const CHANNEL = 'private-fuzz';
const KID_KEY = { kid: 'k1', alg: 'HS384' as const, secret: 'kid-secret-0123456789abcdef' };

const b64 = (value: string | Buffer): string => Buffer.from(value).toString('base64url');
const json = fc.jsonValue({ maxDepth: 2 });
const now = (): number => Math.floor(Date.now() / 1000);

const header = fc.record(
  {
    alg: fc.oneof(fc.constantFrom('HS256', 'HS256', 'HS384', 'HS512', 'none', 'RS256', 'ES256', 'hs256', 'HS256 '), json),
    typ: fc.constantFrom('JWT', 'jwt', 'x'),
    kid: fc.oneof(fc.constantFrom(KID_KEY.kid, 'unknown', ''), json),
    crit: fc.oneof(fc.constant(['exp']), json),
    b64: fc.boolean(),
  },
  { requiredKeys: [] },
);

/** exp and nbf relative to now (so the case means the same on every run), or values of any type. */
const time = fc.oneof({ arbitrary: fc.integer({ min: -7200, max: 7200 }).map((offset) => ({ offset })), weight: 4 }, { arbitrary: json.map((value) => ({ value })), weight: 1 });

const payload = fc.record(
  {
    sub: fc.oneof(fc.constantFrom(CHANNEL, CHANNEL, `${CHANNEL}x`, 'user-1'), json),
    exp: time,
    nbf: time,
    aud: fc.oneof(fc.constantFrom('chorus:channel', CONNECTION_TOKEN_AUDIENCE, 'other'), fc.constant(['chorus:channel']), json),
    iat: time,
    extra: json,
  },
  { requiredKeys: [] },
);

const signature = fc.constantFrom('app-secret', 'kid-secret', 'other-secret', 'empty', 'garbage');

/** Tokens close to right: the default key or the kid key, the channel, an exp around now. */
const nearlyRight = fc.record({
  header: fc.constantFrom<Record<string, unknown>>({ alg: 'HS256' }, { alg: 'HS256', typ: 'JWT' }, { alg: KID_KEY.alg, kid: KID_KEY.kid }, { alg: 'HS256', kid: KID_KEY.kid }),
  payload: fc.record({ sub: fc.constantFrom(CHANNEL, CHANNEL, 'other'), exp: fc.integer({ min: -60, max: 7200 }).map((offset) => ({ offset })), aud: fc.constantFrom('chorus:channel', CONNECTION_TOKEN_AUDIENCE, 'other') }, { requiredKeys: ['sub', 'exp'] }),
  signature: fc.constantFrom('app-secret', 'kid-secret', 'app-secret', 'kid-secret', 'other-secret'),
  mangle: fc.constant('none'),
});

const tokenCase = fc.oneof(
  { arbitrary: nearlyRight, weight: 4 },
  { arbitrary: fc.record({ header, payload, signature, mangle: fc.constantFrom('none', 'none', 'none', 'drop-segment', 'extra-segment', 'bad-base64', 'spaces') }), weight: 9 },
  { arbitrary: fc.string({ maxLength: 120 }).map((text) => ({ text })), weight: 1 },
);
type TokenCase = typeof tokenCase extends fc.Arbitrary<infer T> ? T : never;

type Time = { offset: number } | { value: unknown };

function resolveTime(t: Time | undefined, base: number): unknown {
  if (t === undefined) return undefined;
  return 'offset' in t ? base + t.offset : t.value;
}

function assemble(c: TokenCase): { token: string; claims: Record<string, unknown> | undefined; head: Record<string, unknown> | undefined; key: string } {
  if ('text' in c) return { token: c.text, claims: undefined, head: undefined, key: '' };
  const base = now();
  const times = c.payload as { exp?: Time; nbf?: Time; iat?: Time };
  const claims: Record<string, unknown> = { ...c.payload, exp: resolveTime(times.exp, base), nbf: resolveTime(times.nbf, base), iat: resolveTime(times.iat, base) };
  const head = { ...c.header };
  const input = `${b64(JSON.stringify(head))}.${b64(JSON.stringify(claims))}`;
  const alg = typeof head.alg === 'string' ? head.alg : 'HS256';
  const hash = alg === 'HS384' ? 'sha384' : alg === 'HS512' ? 'sha512' : 'sha256';
  const key = c.signature === 'app-secret' ? TEST_APP.secret : c.signature === 'kid-secret' ? KID_KEY.secret : 'other-secret-0123456789';
  const sig = c.signature === 'empty' ? '' : c.signature === 'garbage' ? 'not+base64/url==' : b64(createHmac(hash, key).update(input).digest());
  let token = `${input}.${sig}`;
  if (c.mangle === 'drop-segment') token = token.slice(0, token.lastIndexOf('.'));
  if (c.mangle === 'extra-segment') token = `${token}.${sig}`;
  if (c.mangle === 'bad-base64') token = `${token.slice(0, 5)}*${token.slice(6)}`;
  if (c.mangle === 'spaces') token = ` ${token} `;
  return { token, claims: c.mangle === 'none' ? claims : undefined, head, key: c.mangle === 'none' ? c.signature : '' };
}

/** What must hold of a token the verifier accepted as a channel token for CHANNEL. */
function assertAcceptable(claims: Record<string, unknown> | undefined, head: Record<string, unknown> | undefined, key: string): void {
  assert.ok(claims && head, 'only a well-formed token is accepted');
  const byKid = head.kid !== undefined;
  assert.ok(byKid ? head.kid === KID_KEY.kid && head.alg === KID_KEY.alg && key === 'kid-secret' : head.alg === 'HS256' && key === 'app-secret', `signed with the key its header names, under its pinned alg: ${JSON.stringify(head)} / ${key}`);
  assert.equal(claims['sub'], CHANNEL);
  assert.equal(typeof claims['exp'], 'number');
  assert.ok((claims['exp'] as number) > now() - 10, 'unexpired');
  const aud = claims['aud'];
  assert.ok(aud === undefined || aud === 'chorus:channel' || (Array.isArray(aud) && aud.length === 1 && aud[0] === 'chorus:channel'), `aud ${JSON.stringify(aud)}`);
}

describe('fuzz: JWTs', () => {
  let fuzzed: FuzzServer;
  after(() => fuzzed?.stop());

  it('TokenVerifier never throws and accepts only tokens signed right, for the channel, unexpired', async (t) => {
    const verifier = new TokenVerifier(TEST_APP.secret, [KID_KEY]);
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(tokenCase, async (c) => {
        const { token, claims, head, key } = assemble(c);
        const result = await verifier.verifyChannel(CHANNEL, token);
        if (result.ok) {
          accepted++;
          assertAcceptable(claims, head, key);
        }
        const connection = await verifier.verifyConnection(token);
        if (connection.ok) assert.equal(claims?.['aud'] === CONNECTION_TOKEN_AUDIENCE || (Array.isArray(claims?.['aud']) && (claims['aud'] as unknown[]).includes(CONNECTION_TOKEN_AUDIENCE)), true);
      }),
      fuzzParameters(0x5eed_000a, 3000),
    );
    t.diagnostic(`accepted channel tokens: ${accepted}`);
  });

  it('a v1 connect with any token is answered ok, or unauthorized with the close 4003', async (t) => {
    fuzzed = await startFuzzServer({ apps: [{ ...FUZZ_APP, tokenKeys: [KID_KEY] }] });
    const outcomes = new Map<string, number>();
    await fuzz(0x5eed_000b, 300, tokenCase, async (c) => {
      const { token } = assemble(c);
      const outcome = await wsCase(`${wsBase(fuzzed.server)}/v1/connect?key=${TEST_APP.key}`, async (ws, received) => {
        ws.send(JSON.stringify({ id: 1, type: 'connect', token }));
        await new Promise<void>((resolve) => {
          ws.on('message', () => received.length > 0 && resolve());
          ws.on('close', () => resolve());
        });
      });
      const reply = JSON.parse(outcome.frames[0] ?? '{}') as { ok?: boolean; error?: { code: number } };
      const label = reply.ok ? 'ok' : String(reply.error?.code ?? outcome.closeCode);
      outcomes.set(label, (outcomes.get(label) ?? 0) + 1);
      if (reply.ok) assert.equal(outcome.closeCode, 1000);
      else if (reply.error) {
        // An empty or oversized token is a bad command (104); any other is unauthorized and closed.
        assert.ok([ErrorCodes.UNAUTHORIZED.code, ErrorCodes.BAD_REQUEST.code].includes(reply.error.code), JSON.stringify(reply));
        if (reply.error.code === ErrorCodes.UNAUTHORIZED.code) assert.equal(outcome.closeCode, CloseCodes.AUTHENTICATION_FAILED.code);
      }
      fuzzed.assertNoErrors();
    });
    t.diagnostic(`connect outcomes: ${JSON.stringify(Object.fromEntries(outcomes))}`);
    await fuzzed.finish((line) => t.diagnostic(line));
  });
});
