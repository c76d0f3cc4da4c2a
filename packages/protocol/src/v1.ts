/**
 * Chorus protocol v1: the frames on `/v1/connect`, as types shared by the server and the SDK.
 * docs/protocol.md is the normative description; keep the two in step.
 */
import type { Member } from './raw.js';

export const V1_PATH = '/v1/connect';

/** A position in a channel's stream: the offset of a publication within an epoch. */
export interface StreamPosition {
  readonly offset: number;
  readonly epoch: string;
}

/** Audience claim a connection token must carry (channel tokens have none, as in the raw dialect). */
export const CONNECTION_TOKEN_AUDIENCE = 'chorus:connection';

export const MAX_MSG_ID_LENGTH = 64;
export const DEFAULT_EVENT = 'message';

// ---- client → server -------------------------------------------------------------------------

export interface ConnectCommand {
  readonly id: number;
  readonly type: 'connect';
  readonly key: string;
  /** Connection JWT minted by the app's backend (browsers). */
  readonly token?: string;
  /** The app secret: only for trusted backends, never in browser code. */
  readonly secret?: string;
  readonly client?: string;
}

export interface SubscribeCommand {
  readonly id: number;
  readonly type: 'subscribe';
  readonly channel: string;
  readonly presence?: boolean;
  readonly since?: StreamPosition;
  /** Channel JWT, required on private- channels. */
  readonly token?: string;
  /**
   * Instead of `token`: what a Pusher-style auth endpoint (Laravel's `/broadcasting/auth`) returned
   * for this connection's `socketId`, `"key:hex HMAC-SHA256(secret, socketId:channel[:channelData])"`.
   */
  readonly auth?: string;
  /** With `auth` on presence- channels: the endpoint's `channel_data`, exactly as returned. */
  readonly channelData?: string;
}

export interface UnsubscribeCommand {
  readonly id: number;
  readonly type: 'unsubscribe';
  readonly channel: string;
}

export interface PublishCommand {
  readonly id: number;
  readonly type: 'publish';
  readonly channel: string;
  readonly event?: string;
  readonly data?: unknown;
  readonly b64?: string;
  readonly msgId?: string;
}

export interface HistoryCommand {
  readonly id: number;
  readonly type: 'history';
  readonly channel: string;
  readonly limit?: number;
  readonly since?: StreamPosition;
}

export interface PresenceCommand {
  readonly id: number;
  readonly type: 'presence';
  readonly channel: string;
}

/** Replaces the connection token before it expires; the user (`sub`) must stay the same. */
export interface RefreshCommand {
  readonly id: number;
  readonly type: 'refresh';
  readonly token: string;
}

export interface PingCommand {
  readonly id: number;
  readonly type: 'ping';
}

export type Command =
  | ConnectCommand
  | SubscribeCommand
  | UnsubscribeCommand
  | PublishCommand
  | HistoryCommand
  | PresenceCommand
  | RefreshCommand
  | PingCommand;

export type CommandType = Command['type'];

// ---- server → client: replies ----------------------------------------------------------------

export interface ConnectResult {
  readonly client: string;
  /** `\d+.\d+`, random per connection: what Pusher-style channel auth signs (see SubscribeCommand.auth). */
  readonly socketId: string;
  readonly user: string;
  readonly pingIntervalMs: number;
  /** When the connection token expires (ms since the Unix epoch); absent without a token. */
  readonly expiresAt?: number;
}

export interface RefreshResult {
  readonly expiresAt: number;
}

export interface SubscribeResult extends StreamPosition {
  readonly channel: string;
  /** Present only when the subscribe carried `since`. */
  readonly recovered?: boolean;
  /** How many `pub` pushes follow the reply as the replay (when recovered). */
  readonly replayed?: number;
}

export type PublishResult = StreamPosition;

/** A publication as history returns it (a `pub` push without `type` and `channel`). */
export interface HistoryPublication {
  readonly offset: number;
  readonly event: string;
  readonly data?: unknown;
  readonly b64?: string;
  readonly meta?: unknown;
  readonly ts: number;
}

export interface HistoryResult extends StreamPosition {
  readonly publications: readonly HistoryPublication[];
  readonly recovered?: boolean;
}

export interface PresenceResult {
  readonly members: readonly Member[];
}

export interface ReplyError {
  readonly code: number;
  readonly name: string;
  readonly message: string;
}

export type Reply<R = unknown> =
  | { readonly id: number; readonly ok: true; readonly result: R }
  | { readonly id: number; readonly ok: false; readonly error: ReplyError };

// ---- server → client: pushes -----------------------------------------------------------------

export interface PubPush extends HistoryPublication {
  readonly type: 'pub';
  readonly channel: string;
  readonly epoch: string;
}

export interface JoinPush {
  readonly type: 'join';
  readonly channel: string;
  readonly member: Member;
}

export interface LeavePush {
  readonly type: 'leave';
  readonly channel: string;
  readonly member: Member;
}

/** The connection token has expired: send `refresh` within `graceMs` or be disconnected (4503). */
export interface TokenExpiredPush {
  readonly type: 'token_expired';
  readonly graceMs: number;
}

export interface DisconnectPush {
  readonly type: 'disconnect';
  readonly code: number;
  readonly reason: string;
  readonly reconnect: boolean;
  readonly retryAfterMs?: number;
}

export type Push = PubPush | JoinPush | LeavePush | TokenExpiredPush | DisconnectPush;

export type ServerFrame = Reply | Push;
