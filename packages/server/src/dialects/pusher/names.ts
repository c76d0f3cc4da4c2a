/**
 * Pusher Channels names: which channel and event names are valid, and what a channel's prefix
 * makes it (private, presence, encrypted, cache, a signed-in user's own channel). Pure predicates;
 * the rules are the `pusher` server SDK's (v5.3), so every name that SDK sends is accepted here.
 * The character and length rule itself is the core's (@chorus/protocol names.ts), shared by every
 * dialect; this module adds what only Pusher has (kinds, `#server-to-user-`, client events).
 * Reference: /work/shared/reference/pusher-compat.md §1.13.
 */
import { CHANNEL_NAME, MAX_CHANNEL_NAME_LENGTH, MAX_EVENT_NAME_LENGTH, isValidChannelName as isCoreChannelName } from '@chorus/protocol';

/** pusher-js subscribes to this channel itself after `pusher:signin` succeeds (PJS src/core/user.ts). */
export const SERVER_TO_USER_PREFIX = '#server-to-user-';

/** Client events must carry this prefix (PD-events), and only private and presence channels take them. */
export const CLIENT_EVENT_PREFIX = 'client-';

export type ChannelKind =
  | 'public'
  | 'private'
  | 'presence'
  | 'private-encrypted'
  | 'cache'
  | 'private-cache'
  | 'presence-cache'
  | 'private-encrypted-cache'
  | 'server-to-user';

/** Longest prefix first: `private-encrypted-cache-` must not be read as `private-`. */
const PREFIXES: readonly (readonly [string, ChannelKind])[] = [
  ['private-encrypted-cache-', 'private-encrypted-cache'],
  ['private-encrypted-', 'private-encrypted'],
  ['private-cache-', 'private-cache'],
  ['private-', 'private'],
  ['presence-cache-', 'presence-cache'],
  ['presence-', 'presence'],
  ['cache-', 'cache'],
  [SERVER_TO_USER_PREFIX, 'server-to-user'],
];

/**
 * What a subscription to a kind needs and what the server keeps for it:
 * - `auth`: `none` (public), `channel` (`key:HMAC(socket_id:channel)`), `presence` (the same with
 *   `:channel_data`), `user` (only the signed-in user whose id the channel names; no auth field);
 * - `cache`: the server keeps the last event and sends it right after subscription_succeeded;
 * - `encrypted`: payloads are end-to-end encrypted, so the server cannot read them and the
 *   client refuses to send client events;
 * - `clientEvents`: `client-*` events may be sent on it (if the app enables them).
 */
export interface ChannelTraits {
  readonly kind: ChannelKind;
  readonly auth: 'none' | 'channel' | 'presence' | 'user';
  readonly cache: boolean;
  readonly encrypted: boolean;
  readonly clientEvents: boolean;
}

function traits(kind: ChannelKind, auth: ChannelTraits['auth'], cache: boolean, encrypted: boolean): ChannelTraits {
  const clientEvents = (auth === 'channel' || auth === 'presence') && !encrypted;
  return Object.freeze({ kind, auth, cache, encrypted, clientEvents });
}

const TRAITS: Readonly<Record<ChannelKind, ChannelTraits>> = Object.freeze({
  public: traits('public', 'none', false, false),
  private: traits('private', 'channel', false, false),
  presence: traits('presence', 'presence', false, false),
  'private-encrypted': traits('private-encrypted', 'channel', false, true),
  cache: traits('cache', 'none', true, false),
  'private-cache': traits('private-cache', 'channel', true, false),
  'presence-cache': traits('presence-cache', 'presence', true, false),
  'private-encrypted-cache': traits('private-encrypted-cache', 'channel', true, true),
  'server-to-user': traits('server-to-user', 'user', false, false),
});

/** The kind a channel name's prefix gives it; a name with no known prefix is public. */
export function channelKind(name: string): ChannelKind {
  for (const [prefix, kind] of PREFIXES) {
    if (name.startsWith(prefix)) return kind;
  }
  return 'public';
}

export function channelTraits(name: string): ChannelTraits {
  return TRAITS[channelKind(name)];
}

/**
 * `[A-Za-z0-9_\-=@,.;]`, 1 to 200 characters. `#` is allowed only as the start of
 * `#server-to-user-{user id}`, and the user id must then follow the same character rule; a user
 * id outside it can still sign in, but cannot have its own channel.
 */
export function isValidChannelName(name: string): boolean {
  if (!name.startsWith(SERVER_TO_USER_PREFIX)) return isCoreChannelName(name);
  return name.length <= MAX_CHANNEL_NAME_LENGTH && CHANNEL_NAME.test(name.slice(SERVER_TO_USER_PREFIX.length));
}

/** The user id a `#server-to-user-` channel belongs to, or undefined for any other channel. */
export function serverToUserId(name: string): string | undefined {
  if (!name.startsWith(SERVER_TO_USER_PREFIX) || name.length === SERVER_TO_USER_PREFIX.length) return undefined;
  return name.slice(SERVER_TO_USER_PREFIX.length);
}

/** Pusher limits only the length of event names (1 to 200 characters), not their characters. */
export function isValidEventName(name: string): boolean {
  return name.length > 0 && name.length <= MAX_EVENT_NAME_LENGTH;
}

/** A name a client may publish under: `client-` plus at least one character, at most 200 in all. */
export function isClientEventName(name: string): boolean {
  return name.length > CLIENT_EVENT_PREFIX.length && name.startsWith(CLIENT_EVENT_PREFIX) && isValidEventName(name);
}
