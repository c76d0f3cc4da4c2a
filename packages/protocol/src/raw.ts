/**
 * The raw channel dialect (PieSocket-compatible): URL shape, query flags and the few frames the
 * server itself sends. Everything else on a raw channel is relayed verbatim.
 */

/** Paths `/v3/{channel}` and `/v4/{channel}` carry one raw channel per socket. */
export const RAW_PATH = /^\/v[34]\/([^/?#]*)$/;


/** Longest accepted `user` or `uuid` query value. */
export const MAX_IDENTITY_LENGTH = 1024;

/** Error texts the PieSocket SDKs recognise: a JSON frame with a non-empty `error` stops their reconnect loop. */
export const RawErrorText = Object.freeze({
  UNKNOWN_API_KEY: 'Unknown api key',
  AUTHENTICATION_FAILED: 'Authentication failed, provide valid jwt token.',
  INVALID_CHANNEL: 'Invalid channel name',
  INVALID_PARAMETER: 'Invalid user or uuid parameter',
  PRESENCE_FULL: 'Presence is full on this channel',
  /** Followed by ": <failing path and reason>". The connection stays open. */
  INVALID_MESSAGE: 'Invalid message',
  /** Followed by ": <the limit and how to raise it>"; the close 4502 follows. */
  RATE_LIMITED: 'Rate limit exceeded',
  TOKEN_EXPIRED: 'Token expired: reconnect with a fresh jwt',
  /** The frame was not published (the connection stays open); sending it again may work. */
  NOT_DELIVERED: 'Message not delivered: the server failed to publish it; send it again',
  NOT_DELIVERED_ENGINE: 'Message not delivered: the server cannot reach its engine (Redis); send it again later',
});

export const PresenceEvents = Object.freeze({
  MEMBER_LIST: 'system:member_list',
  MEMBER_JOINED: 'system:member_joined',
  MEMBER_LEFT: 'system:member_left',
});

/** A presence member: who (`user`) and which connection (`uuid`), plus optional token info. */
export interface Member {
  readonly user: string;
  readonly uuid: string;
  readonly info?: unknown;
}

export interface MemberListFrame {
  readonly event: typeof PresenceEvents.MEMBER_LIST;
  readonly data: { readonly members: readonly Member[] };
}

export interface MemberChangeFrame {
  readonly event: typeof PresenceEvents.MEMBER_JOINED | typeof PresenceEvents.MEMBER_LEFT;
  readonly data: { readonly member: Member; readonly members: readonly Member[] };
}

/**
 * Query flags are parsed the way tutorials write them: absent → false, bare (`&notify_self`) or
 * `1`/`true`/`yes`/`on` → true, anything else (`0`, `false`) → false.
 */
export function parseFlag(value: string | undefined): boolean {
  if (value === undefined) return false;
  const v = value.trim().toLowerCase();
  return v === '' || v === '1' || v === 'true' || v === 'yes' || v === 'on';
}

/**
 * Parses a query string the way the PieSocket SDKs write it: values are often not URL-encoded
 * (a JSON `user`, a `%` in a name), so each value is percent-decoded when it can be and kept as
 * is when it cannot, and `+` stays a plus. The first occurrence of a name wins.
 */
export function parseQuery(search: string): Map<string, string> {
  const params = new Map<string, string>();
  for (const part of search.replace(/^\?/, '').split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const name = decodeLeniently(eq === -1 ? part : part.slice(0, eq));
    if (!params.has(name)) params.set(name, eq === -1 ? '' : decodeLeniently(part.slice(eq + 1)));
  }
  return params;
}

function decodeLeniently(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}
