/** Public types of the SDK that are not classes. */
import type { ConnectResult, Member, StreamPosition, SubscribeResult } from '@chorus/protocol';
import type { ChorusError } from './errors.js';

export type ClientState = 'disconnected' | 'connecting' | 'connected' | 'closed';

export type ChannelState = 'unsubscribed' | 'subscribing' | 'subscribed';

/** The subset of the WHATWG WebSocket the SDK uses; the browser's, Node 22's and `ws`'s all fit. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: 'open' | 'error', listener: () => void): void;
  addEventListener(type: 'message', listener: (event: { readonly data: unknown }) => void): void;
  addEventListener(type: 'close', listener: (event: { readonly code: number; readonly reason: string }) => void): void;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface ClientOptions {
  /** The app's public key. Required. */
  key: string;
  /** A connection JWT (aud `chorus:connection`), minted by your backend. */
  token?: string;
  /** Called before every connect and reconnect for a fresh connection JWT. Exclusive with `token`. */
  getToken?: () => Promise<string>;
  /**
   * The app secret instead of a token: only for trusted backends (Node), never in browser code.
   * The connection is then authenticated as the app itself.
   */
  secret?: string;
  /** WebSocket constructor; default `globalThis.WebSocket` (browsers, Node ≥ 22). Pass `ws` on Node 20. */
  WebSocket?: WebSocketConstructor;
  /** Connect as soon as the client is created (in a microtask, so listeners can be added first). Default true. */
  autoConnect?: boolean;
  /** Smallest reconnect delay. Default 500. */
  minDelayMs?: number;
  /** Largest reconnect delay. Default 20000. */
  maxDelayMs?: number;
  /** How long a command may wait for its reply once sent. Default 10000. */
  commandTimeoutMs?: number;
  /** How long opening the socket plus the connect command may take before the attempt is dropped. Default 10000. */
  connectTimeoutMs?: number;
  /** Publishes waiting for a connection (or a subscription) beyond this are refused with 201 queue_full. Default 1000. */
  maxQueuedPublishes?: number;
  /** Override the server's pingIntervalMs (from the connect result); 0 disables the dead-connection check. */
  pingIntervalMs?: number;
  /** Silence tolerated beyond pingIntervalMs before the SDK sends a `ping`. Default 5000. */
  pingMarginMs?: number;
  /** How long a `ping` may go unanswered before the socket is dropped and reconnected. Default 5000. */
  pingTimeoutMs?: number;
  /** Random source for backoff jitter, in [0, 1). For tests; default Math.random. */
  random?: () => number;
}

export interface ChannelOptions {
  /** Join the channel's presence roster and receive `join`/`leave` events (always on for `presence-` channels). */
  presence?: boolean;
  /** Channel JWT for `private-` channels. */
  token?: string;
  /** Called on every (re)subscribe for a fresh channel JWT. Exclusive with `token`. */
  getToken?: () => Promise<string>;
  /**
   * Pusher-style authorization instead of a JWT, called on every (re)subscribe: what an auth
   * endpoint such as Laravel's `/broadcasting/auth` returns for the connection's current
   * `session.socketId`. Exclusive with `token` and `getToken`. The Echo connector uses it.
   */
  getAuth?: () => Promise<ChannelAuth>;
}

/** A Pusher-style channel authorization (`{auth, channel_data}` from an auth endpoint). */
export interface ChannelAuth {
  /** `key:signature`. */
  readonly auth: string;
  /** presence- channels: the exact `channel_data` string the endpoint signed. */
  readonly channelData?: string;
}

export interface PublishOptions {
  /**
   * Idempotency key (≤ 64 characters). Generated when absent. Pass your own to retry a publish
   * that failed with 202 timeout or 203 client_closed without risking a duplicate.
   */
  msgId?: string;
}

export interface HistoryOptions {
  /** At most this many publications (server default and maximum: 100). */
  limit?: number;
  /** Only publications after this position. */
  since?: StreamPosition;
}

/** A publication as the SDK delivers it. */
export interface Publication {
  readonly channel: string;
  readonly event: string;
  /** The JSON value published, or a `Uint8Array` for binary publications (`binary: true`). */
  readonly data: unknown;
  readonly binary: boolean;
  readonly offset: number;
  readonly epoch: string;
  /** Server accept time, ms since the Unix epoch. */
  readonly ts: number;
  /** The PieSocket envelope's `meta`, for publications from raw-dialect clients that sent one. */
  readonly meta?: unknown;
}

export interface HistoryPage extends StreamPosition {
  readonly publications: readonly Publication[];
  /** Present when `since` was given: false means it could not be honoured and the whole retained window is returned. */
  readonly recovered?: boolean;
}

export interface PresencePage {
  readonly members: readonly Member[];
}

export interface DisconnectedEvent {
  readonly code: number;
  readonly reason: string;
  /** Whether the SDK will reconnect (a `reconnecting` event follows) or has stopped (`closed` follows). */
  readonly willReconnect: boolean;
}

export interface ReconnectingEvent {
  /** 1 for the first retry after a drop (or after a failed first attempt), then 2, 3… until connected. */
  readonly attempt: number;
  readonly delayMs: number;
}

export interface ClosedEvent {
  readonly code: number;
  readonly reason: string;
  /** Why: the app called close(), or the server ended the session (terminal code, reconnect: false). */
  readonly error?: ChorusError;
}

export interface ClientEvents {
  state: (state: ClientState, previous: ClientState) => void;
  connecting: () => void;
  connected: (result: ConnectResult) => void;
  disconnected: (event: DisconnectedEvent) => void;
  reconnecting: (event: ReconnectingEvent) => void;
  closed: (event: ClosedEvent) => void;
  error: (error: ChorusError) => void;
}

export interface SubscribedEvent extends SubscribeResult {
  /** False for the first subscribe after `subscribe()`, true for automatic resubscribes after reconnects. */
  readonly resubscribed: boolean;
}

export interface UnsubscribedEvent {
  /** `unsubscribe` (the app), `client_closed`, `error` (a resubscribe failed: see `error`), or `server` (an unsubscribed push). */
  readonly reason: 'unsubscribe' | 'client_closed' | 'error' | 'server';
  readonly error?: ChorusError;
}

export interface RecoveryFailedEvent {
  /** The position the SDK asked to resume from. */
  readonly since: StreamPosition;
  /** The channel's position now; live publications continue from here. */
  readonly position: StreamPosition;
}

export type PublicationListener = (data: unknown, publication: Publication) => void;

/** Channel-level events. These names are reserved: publications with such an `event` only reach `'*'` listeners. */
export interface ChannelEvents {
  subscribed: (event: SubscribedEvent) => void;
  unsubscribed: (event: UnsubscribedEvent) => void;
  'recovery-failed': (event: RecoveryFailedEvent) => void;
  join: (member: Member) => void;
  leave: (member: Member) => void;
  error: (error: ChorusError) => void;
}

export const RESERVED_CHANNEL_EVENTS: ReadonlySet<string> = new Set<keyof ChannelEvents>(['subscribed', 'unsubscribed', 'recovery-failed', 'join', 'leave', 'error']);
