/**
 * Token verification with jose. Two kinds of token, never interchangeable (RFC 8725 §3.12):
 *
 * - channel tokens (PieSocket-compatible): `sub` = channel name, `exp` required, no `aud` or
 *   `aud: "chorus:channel"`;
 * - connection tokens (protocol v1): `sub` = user id, `exp` required, `aud: "chorus:connection"`.
 *
 * Keys: a token without `kid` is checked with HS256 and the app secret (what PieSocket's SDKs
 * and backends produce); a token with `kid` is checked with that key of the app's `tokenKeys`
 * and only with its algorithm, which is how keys are rotated. Algorithms are always pinned, so
 * `alg: none` and HS/RS confusion cannot pass.
 */
import { createSecretKey, type KeyObject } from 'node:crypto';
import { errors, importSPKI, jwtVerify, type JWTPayload, type JWTHeaderParameters } from 'jose';
import { CONNECTION_TOKEN_AUDIENCE } from '@chorus/protocol';

/** Small allowance for clock drift between the token issuer and this server. */
export const CLOCK_TOLERANCE_SECONDS = 5;
export const CHANNEL_TOKEN_AUDIENCE = 'chorus:channel';

export type TokenAlgorithm = 'HS256' | 'HS384' | 'HS512' | 'RS256' | 'RS384' | 'RS512' | 'ES256' | 'ES384' | 'ES512' | 'EdDSA';

export interface TokenKeyConfig {
  kid: string;
  alg: TokenAlgorithm;
  /** For HS* algorithms. */
  secret?: string;
  /** PEM (SPKI) public key, for RS*, ES* and EdDSA. */
  publicKey?: string;
}

export type VerifyResult = { ok: true; payload: JWTPayload } | { ok: false; reason: string };

/** What jose verifies with: a Node KeyObject (secrets) or what importSPKI returns (public keys). */
type VerificationKey = KeyObject | Awaited<ReturnType<typeof importSPKI>>;

interface ResolvedKey {
  readonly alg: TokenAlgorithm;
  readonly key: Promise<VerificationKey>;
}

export class TokenVerifier {
  readonly #default: ResolvedKey;
  readonly #byKid = new Map<string, ResolvedKey>();
  readonly #algorithms: TokenAlgorithm[];

  constructor(appSecret: string, keys: readonly TokenKeyConfig[]) {
    this.#default = { alg: 'HS256', key: Promise.resolve(createSecretKey(Buffer.from(appSecret))) };
    for (const key of keys) {
      const material: Promise<VerificationKey> = key.alg.startsWith('HS')
        ? Promise.resolve(createSecretKey(Buffer.from(key.secret ?? '')))
        : importSPKI(key.publicKey ?? '', key.alg);
      material.catch(() => undefined); // surfaced per token as a refusal, never as a crash
      this.#byKid.set(key.kid, { alg: key.alg, key: material });
    }
    this.#algorithms = [...new Set<TokenAlgorithm>(['HS256', ...keys.map((k) => k.alg)])];
  }

  /** A channel token for `channel`: sub must be the channel, and it must not be a connection token. */
  async verifyChannel(channel: string, token: string | undefined): Promise<VerifyResult> {
    const result = await this.#verify(token, { subject: channel });
    if (!result.ok) return result;
    const { aud } = result.payload;
    if (aud !== undefined && aud !== CHANNEL_TOKEN_AUDIENCE && !(Array.isArray(aud) && aud.length === 1 && aud[0] === CHANNEL_TOKEN_AUDIENCE)) {
      return { ok: false, reason: 'not a channel token (aud)' };
    }
    return result;
  }

  /** A v1 connection token: aud chorus:connection, sub = user id. */
  verifyConnection(token: string): Promise<VerifyResult> {
    return this.#verify(token, { audience: CONNECTION_TOKEN_AUDIENCE, requiredClaims: ['sub'] });
  }

  async #verify(token: string | undefined, options: { subject?: string; audience?: string; requiredClaims?: string[] }): Promise<VerifyResult> {
    if (!token) return { ok: false, reason: 'missing token' };
    try {
      const { payload } = await jwtVerify(token, (header: JWTHeaderParameters) => this.#keyFor(header), {
        algorithms: this.#algorithms,
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
        ...options,
        requiredClaims: ['exp', ...(options.requiredClaims ?? [])],
      });
      return { ok: true, payload };
    } catch (error) {
      // The reason goes to debug logs only, never the token itself.
      return { ok: false, reason: error instanceof errors.JOSEError ? error.code : 'malformed token' };
    }
  }

  #keyFor(header: JWTHeaderParameters): Promise<VerificationKey> {
    const resolved = header.kid === undefined ? this.#default : this.#byKid.get(header.kid);
    if (!resolved) throw new errors.JWKSNoMatchingKey('unknown kid');
    if (header.alg !== resolved.alg) throw new errors.JOSEAlgNotAllowed('algorithm not allowed for this key');
    return resolved.key;
  }
}

/** The `user` claim as a string (raw dialect identity), JSON text when it is not one. */
export function userClaim(payload: JWTPayload): string | undefined {
  const user = payload['user'];
  return typeof user === 'string' ? user : user === undefined ? undefined : JSON.stringify(user);
}
