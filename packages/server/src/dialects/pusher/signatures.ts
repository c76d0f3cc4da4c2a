/**
 * Pusher Channels signatures, pure and without I/O: channel and user auth strings
 * (`key:HMAC-SHA256(secret, …)`), socket ids, the HTTP API's signed query string, and webhook
 * signatures. Every comparison of a secret-derived value is constant-time. Where soketi deviates
 * from Pusher (no timestamp window, no lower-casing, `===` compares, Math.random socket ids) this
 * follows Pusher. Reference: /work/shared/reference/pusher-compat.md §2, §3.2, §4.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** What signing needs from an app; Chorus's App has the key, the secret is in its config. */
export interface PusherCredentials {
  readonly key: string;
  readonly secret: string;
}

export function hmacSha256Hex(secret: string, data: string | Uint8Array): string {
  return createHmac('sha256', secret).update(data).digest('hex');
}

/**
 * timingSafeEqual needs equal lengths, so a length mismatch answers early; that reveals only the
 * length of the expected value, which is public (an HMAC-SHA256 hex digest is always 64).
 */
export function constantTimeEqual(expected: string, given: string): boolean {
  const a = Buffer.from(expected, 'utf8');
  const b = Buffer.from(given, 'utf8');
  return a.length === b.length && timingSafeEqual(a, b);
}

// ─── Socket ids ──────────────────────────────────────────────────────────────────────────────

const SOCKET_ID = /^\d+\.\d+$/;

/**
 * `\d+.\d+`, the only shape the `pusher` SDKs accept ("Invalid socket id"). Two 48-bit random
 * halves: the id is what a backend signs, so it must not be guessable (soketi's Math.random ids
 * are), and each half stays below 2^53 for any client that reads it as a number.
 */
export function generateSocketId(): string {
  const bytes = randomBytes(12);
  return `${bytes.readUIntBE(0, 6)}.${bytes.readUIntBE(6, 6)}`;
}

export function isSocketId(value: unknown): value is string {
  return typeof value === 'string' && SOCKET_ID.test(value);
}

// ─── Channel and user authorization ──────────────────────────────────────────────────────────

/**
 * The string a backend signs for a channel: `socket_id:channel` (private, encrypted), with
 * `:channel_data` appended for presence, where channel_data is the exact JSON text sent.
 */
export function channelAuthString(socketId: string, channel: string, channelData?: string): string {
  return channelData === undefined ? `${socketId}:${channel}` : `${socketId}:${channel}:${channelData}`;
}

/** `socket_id::user::user_data`, what `pusher:signin` is signed over. */
export function userAuthString(socketId: string, userData: string): string {
  return `${socketId}::user::${userData}`;
}

/** The `auth` value a backend returns for a channel: `key:hex signature`. */
export function channelAuthSignature(app: PusherCredentials, socketId: string, channel: string, channelData?: string): string {
  return `${app.key}:${hmacSha256Hex(app.secret, channelAuthString(socketId, channel, channelData))}`;
}

export function userAuthSignature(app: PusherCredentials, socketId: string, userData: string): string {
  return `${app.key}:${hmacSha256Hex(app.secret, userAuthString(socketId, userData))}`;
}

/**
 * Why an auth was refused: `malformed` (not a `key:signature` string, or channel_data/user_data
 * missing or not a string), `wrong_key` (signed for another app), `bad_signature`. The message is
 * for the client (pusher:subscription_error / pusher:error): it names the signed string, which
 * the client already knows, so a developer can see what their backend should have signed.
 */
export type AuthVerdict =
  | { readonly ok: true }
  | { readonly ok: false; readonly reason: 'malformed' | 'wrong_key' | 'bad_signature'; readonly message: string };

const AUTH_OK: AuthVerdict = Object.freeze({ ok: true });

function refuse(reason: 'malformed' | 'wrong_key' | 'bad_signature', message: string): AuthVerdict {
  return { ok: false, reason, message };
}

/** Checks `key:signature` against the string that should have been signed. */
function verifyAuth(app: PusherCredentials, signed: string, auth: unknown, what: string): AuthVerdict {
  // The signature is hex, so the last colon separates it even if a key contains colons.
  const colon = typeof auth === 'string' ? auth.lastIndexOf(':') : -1;
  if (typeof auth !== 'string' || colon <= 0 || colon === auth.length - 1) {
    return refuse('malformed', `Auth value for ${what} is invalid: should be of format 'key:signature'`);
  }
  const key = auth.slice(0, colon);
  if (!constantTimeEqual(app.key, key)) return refuse('wrong_key', `Invalid key in auth data for ${what}: '${key}'`);
  if (!constantTimeEqual(hmacSha256Hex(app.secret, signed), auth.slice(colon + 1))) {
    return refuse('bad_signature', `Invalid signature: Expected HMAC SHA256 hex digest of ${signed}, but got ${auth}`);
  }
  return AUTH_OK;
}

/** private- and private-encrypted- channels (their shared_secret is not part of the signature). */
export function verifyPrivateChannelAuth(app: PusherCredentials, socketId: string, channel: string, auth: unknown): AuthVerdict {
  return verifyAuth(app, channelAuthString(socketId, channel), auth, `subscription to ${channel}`);
}

/** presence- channels: channelData must be the exact string the client sent, not a re-serialization. */
export function verifyPresenceChannelAuth(
  app: PusherCredentials,
  socketId: string,
  channel: string,
  channelData: unknown,
  auth: unknown,
): AuthVerdict {
  if (typeof channelData !== 'string') {
    return refuse('malformed', `channel_data for subscription to ${channel} is missing: presence channels need it as a JSON string`);
  }
  return verifyAuth(app, channelAuthString(socketId, channel, channelData), auth, `subscription to ${channel}`);
}

/** `pusher:signin`: userData must be the exact string the client sent. */
export function verifyUserAuth(app: PusherCredentials, socketId: string, userData: unknown, auth: unknown): AuthVerdict {
  if (typeof userData !== 'string') return refuse('malformed', 'user_data for signin is missing: it must be a JSON string');
  return verifyAuth(app, userAuthString(socketId, userData), auth, 'signin');
}

// ─── HTTP API ────────────────────────────────────────────────────────────────────────────────

/** Pusher's window for auth_timestamp, either side of the server's clock (PD-rest). */
export const API_TIMESTAMP_TOLERANCE_SECONDS = 600;

const AUTH_PARAMS = new Set(['auth_key', 'auth_timestamp', 'auth_version', 'auth_signature', 'body_md5']);
const UNSIGNED_SECONDS = /^\d{1,15}$/;

/**
 * `params` are the request's own query parameters (keys lower-cased, the auth ones removed), for
 * the route to read (`info`, `filter_by_prefix`). Refusals carry Pusher's status: 400 when the
 * request cannot be checked as sent (a missing or repeated parameter, an unsupported version, a
 * non-numeric timestamp), 401 when it is checked and fails (key, timestamp window, body_md5,
 * signature). Messages follow Pusher's own wording where it is known.
 */
export type ApiVerdict =
  | { readonly ok: true; readonly params: ReadonlyMap<string, string> }
  | { readonly ok: false; readonly status: 400 | 401; readonly message: string };

function apiRefuse(status: 400 | 401, message: string): ApiVerdict {
  return { ok: false, status, message };
}

/** Query text as received (a leading `?` is fine) or already parsed; values are percent-decoded. */
export type ApiQuery = string | URLSearchParams;

/**
 * The string an HTTP API request is signed over: `METHOD\nPATH\nquery`, the query being every
 * parameter but auth_signature, keys lower-cased, sorted by key, joined `k=v&…` without escaping.
 */
export function apiStringToSign(method: string, path: string, params: ReadonlyMap<string, string>): string {
  return `${method.toUpperCase()}\n${path}\n${sortedQuery(params)}`;
}

function sortedQuery(params: ReadonlyMap<string, string>): string {
  return [...params]
    .filter(([key]) => key !== 'auth_signature')
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, value]) => `${key}=${value}`)
    .join('&');
}

/** Signs a request the way the `pusher` SDK does; for tests and for Chorus's own tools. */
export function signApiQuery(
  app: PusherCredentials,
  method: string,
  path: string,
  params: Readonly<Record<string, string>>,
  rawBody: string | Uint8Array,
  nowMs: number,
): string {
  const all = new Map<string, string>(Object.entries(params).map(([k, v]) => [k.toLowerCase(), v]));
  all.set('auth_key', app.key);
  all.set('auth_timestamp', String(Math.floor(nowMs / 1000)));
  all.set('auth_version', '1.0');
  if (rawBody.length > 0) all.set('body_md5', md5Hex(rawBody));
  const signature = hmacSha256Hex(app.secret, apiStringToSign(method, path, all));
  return `${sortedQuery(all)}&auth_signature=${signature}`;
}

export function md5Hex(data: string | Uint8Array): string {
  return createHash('md5').update(data).digest('hex');
}

/**
 * Authenticates one HTTP API request. `path` is the request path without the query, exactly as
 * received; `rawBody` is the exact bytes received (empty when there is none); `nowMs` is the
 * server clock (Date.now()).
 */
export function verifyApiRequest(
  method: string,
  path: string,
  query: ApiQuery,
  rawBody: string | Uint8Array,
  app: PusherCredentials,
  nowMs: number,
): ApiVerdict {
  const params = new Map<string, string>();
  for (const [rawKey, value] of typeof query === 'string' ? new URLSearchParams(query) : query) {
    const key = rawKey.toLowerCase();
    // Two values for one key would leave it open which one was signed and which one is acted on.
    if (params.has(key)) return apiRefuse(400, `Duplicate query parameter: ${key}`);
    params.set(key, value);
  }

  const authKey = params.get('auth_key');
  if (authKey === undefined) return apiRefuse(400, 'Missing parameter: auth_key');
  if (!constantTimeEqual(app.key, authKey)) return apiRefuse(401, 'Unknown auth_key');

  const version = params.get('auth_version');
  if (version === undefined) return apiRefuse(400, 'Missing parameter: auth_version');
  if (version !== '1.0') return apiRefuse(400, `Version not supported: auth_version must be 1.0, got ${version}`);

  const timestamp = params.get('auth_timestamp');
  if (timestamp === undefined) return apiRefuse(400, 'Missing parameter: auth_timestamp');
  if (!UNSIGNED_SECONDS.test(timestamp)) return apiRefuse(400, `auth_timestamp must be Unix time in whole seconds, got ${timestamp}`);
  const givenSeconds = Number(timestamp);
  const nowSeconds = Math.floor(nowMs / 1000);
  if (Math.abs(givenSeconds - nowSeconds) > API_TIMESTAMP_TOLERANCE_SECONDS) {
    return apiRefuse(
      401,
      `Timestamp expired: Given timestamp (${isoSeconds(givenSeconds)}) not within ${API_TIMESTAMP_TOLERANCE_SECONDS}s of server time (${isoSeconds(nowSeconds)})`,
    );
  }

  const signature = params.get('auth_signature');
  if (signature === undefined) return apiRefuse(400, 'Missing parameter: auth_signature');

  // The signature covers body_md5, not the body, so without it the body could be swapped.
  const bodyMd5 = params.get('body_md5');
  if (bodyMd5 === undefined) {
    if (rawBody.length > 0) return apiRefuse(400, 'Missing parameter: body_md5 (required when the request has a body)');
  } else if (!constantTimeEqual(md5Hex(rawBody), bodyMd5)) {
    return apiRefuse(401, 'body_md5 does not match the request body');
  }

  if (!signatureMatches(app.secret, method, path, params, signature)) {
    const expected = apiStringToSign(method, path, params);
    return apiRefuse(401, `Invalid signature: you should have sent HmacSHA256Hex(${JSON.stringify(expected)}, your_secret_key), but you sent ${JSON.stringify(signature)}`);
  }

  const own = new Map<string, string>();
  for (const [key, value] of params) if (!AUTH_PARAMS.has(key)) own.set(key, value);
  return { ok: true, params: own };
}

/**
 * The `pusher` SDK signs the path before URL encoding (`/users/a b/…`), while the request line
 * carries it encoded (`/users/a%20b/…`), so the decoded path is tried too. Both are spellings of
 * the same resource and either one still has to be signed with the secret.
 */
function signatureMatches(secret: string, method: string, path: string, params: ReadonlyMap<string, string>, signature: string): boolean {
  if (constantTimeEqual(hmacSha256Hex(secret, apiStringToSign(method, path, params)), signature)) return true;
  if (!path.includes('%')) return false;
  let decoded: string;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    return false;
  }
  return constantTimeEqual(hmacSha256Hex(secret, apiStringToSign(method, decoded, params)), signature);
}

function isoSeconds(seconds: number): string {
  const date = new Date(seconds * 1000);
  return Number.isNaN(date.getTime()) ? String(seconds) : date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

// ─── Webhooks ────────────────────────────────────────────────────────────────────────────────

/** `X-Pusher-Signature`: hex HMAC-SHA256 of the exact body bytes sent. */
export function webhookSignature(secret: string, rawBody: string | Uint8Array): string {
  return hmacSha256Hex(secret, rawBody);
}

/** The headers a webhook POST carries; the `pusher` SDK's webhook() check requires all three. */
export function webhookHeaders(app: PusherCredentials, rawBody: string | Uint8Array): Record<string, string> {
  return {
    'content-type': 'application/json',
    'x-pusher-key': app.key,
    'x-pusher-signature': webhookSignature(app.secret, rawBody),
  };
}
