/**
 * Every coded outcome a Chorus client can observe, in one place.
 *
 * WebSocket close codes are grouped in ranges so a client can decide what to do without knowing
 * each code (the same idea as Centrifugo's disconnect codes):
 *   1000–1015  standard RFC 6455 codes (normal close, going away, message too big…)
 *   4000–4499  terminal: the request itself is wrong (bad key, bad token, bad channel).
 *              Reconnecting with the same parameters will fail again, so clients must not retry.
 *   4500–4999  transient: the server dropped this connection for its own health (slow reader,
 *              missed heartbeats…). Reconnect with backoff.
 *
 * docs/codes.md lists the same table; a test keeps the two equal. Append only: a code, once
 * published, keeps its number and meaning.
 */

export interface CloseCodeInfo {
  readonly code: number;
  /** The reason string sent in the close frame (at most 123 bytes by RFC 6455). */
  readonly reason: string;
  /** Whether a client should reconnect after receiving this code. */
  readonly reconnect: boolean;
  readonly description: string;
}

function closeCode(code: number, reason: string, reconnect: boolean, description: string): CloseCodeInfo {
  return Object.freeze({ code, reason, reconnect, description });
}

export const CloseCodes = Object.freeze({
  NORMAL: closeCode(1000, '', false, 'Normal closure, initiated by either side.'),
  GOING_AWAY: closeCode(1001, 'Server shutting down', true, 'The server is stopping (SIGTERM/SIGINT); reconnect to another instance or later.'),
  PROTOCOL_ERROR: closeCode(1002, '', false, 'The client broke RFC 6455 framing (unmasked frame, bad opcode, reserved bits…); sent by the ws library.'),
  INVALID_PAYLOAD: closeCode(1007, '', false, 'A text frame was not valid UTF-8; sent by the ws library.'),
  MESSAGE_TOO_BIG: closeCode(1009, '', false, 'A message exceeded the app\'s maxMessageSize (default 64 KiB); sent by the ws library.'),
  UNKNOWN_API_KEY: closeCode(4001, 'Unknown api key', false, 'The api_key query parameter matches no app.'),
  INVALID_CHANNEL: closeCode(4002, 'Invalid channel name', false, 'The channel name is empty, longer than 200 characters or has characters outside [A-Za-z0-9_-=@,.;].'),
  AUTHENTICATION_FAILED: closeCode(4003, 'Authentication failed', false, 'The channel needs a valid JWT (private- channels always, any channel when a jwt is given) and it was missing, badly signed, for another sub, expired or without exp.'),
  INVALID_PARAMETER: closeCode(4004, 'Invalid parameter', false, 'A query parameter (user, uuid) is longer than 1024 characters.'),
  LIMIT_EXCEEDED: closeCode(4005, 'Limit exceeded', false, 'A per-app limit refused this connection after the upgrade (raw dialect: the channel\'s presence roster is full).'),
  BAD_REQUEST: closeCode(4006, 'Bad request', false, 'A v1 frame was not a JSON object with a positive integer id (or was binary), or the first command was not connect.'),
  TERMINATED: closeCode(4007, 'Terminated by the app', false, 'The app\'s backend ended this user\'s connections (Pusher HTTP API terminate_connections; Pusher clients see 4009).'),
  SLOW_CONSUMER: closeCode(4500, 'Slow consumer', true, 'The client read too slowly: its pending outbound bytes passed maxPendingBytes. Reconnect and read faster.'),
  CONNECT_TIMEOUT: closeCode(4501, 'Connect timeout', true, 'A v1 client did not send connect within connectTimeoutMs of the upgrade.'),
  RATE_LIMITED: closeCode(4502, 'Rate limit exceeded', true, 'Raw dialect: the client sent more than messagesPerSecond (with messageBurst) allows. Reconnect with backoff and send slower.'),
  TOKEN_EXPIRED: closeCode(4503, 'Token expired', true, 'The connection token (v1) or channel token (raw) expired and was not refreshed within tokenGraceMs. Reconnect with a fresh token.'),
  INSUFFICIENT_STATE: closeCode(4504, 'Insufficient state', true, 'Cluster mode: this node may have missed publications of one of your channels (Redis pub/sub reconnect, offset gap, history loss). Reconnect and resume from your last offset.'),
  ENGINE_UNAVAILABLE: closeCode(4505, 'Engine unavailable', true, 'Cluster mode: this node could not reach its engine (Redis) for longer than engine.unavailableCloseMs, so it can neither store nor deliver your publications. Reconnect with backoff (a load balancer sends you to another node).'),
  INVALID_YJS_MESSAGE: closeCode(4020, 'Invalid Yjs message', false, 'Yjs rooms (/yjs/{room}): a frame was not one complete y-protocols sync or awareness message (text frame, truncated varint, length past the frame, trailing bytes, unknown type, or an update Yjs cannot decode).'),
  DOCUMENT_TOO_LARGE: closeCode(4021, 'Document too large', false, 'Yjs rooms: the update would grow the room\'s stored document past yjs.maxDocumentBytes; the update was not stored.'),
} satisfies Record<string, CloseCodeInfo>);

export type CloseCodeName = keyof typeof CloseCodes;

/**
 * Close codes on Pusher connections (`/app/{key}`), Pusher's own numbers so pusher-js reacts as
 * it does with Pusher: 4000–4099 do not reconnect, 4100–4199 reconnect after a back-off,
 * 4200–4299 reconnect at once. Each close is preceded by `pusher:error` with the same code.
 * `reconnect` here is what pusher-js does, not Chorus's range rule above.
 */
export const PusherCloseCodes = Object.freeze({
  UNKNOWN_APP: closeCode(4001, 'App does not exist', false, 'No app has this key (the path is /app/{key}).'),
  APP_DISABLED: closeCode(4003, 'App is disabled', false, 'The app is configured with "enabled": false.'),
  OVER_QUOTA: closeCode(4004, 'Over connection quota', false, 'The app\'s maxConnections is reached.'),
  UNSUPPORTED_PROTOCOL: closeCode(4007, 'Unsupported protocol version', false, 'The protocol query parameter is not 7 (Chorus speaks Pusher protocol 7; pusher-js 4+ sends it).'),
  NO_PROTOCOL: closeCode(4008, 'No protocol version supplied', false, 'The protocol query parameter is missing.'),
  UNAUTHORIZED: closeCode(4009, 'Connection is unauthorized', false, 'A pusher:signin with a bad signature or user_data, or the app terminated the user\'s connections (HTTP API terminate_connections).'),
  OVER_CAPACITY: closeCode(4100, 'Over capacity', true, 'The app\'s maxConnectionsPerIp is reached, or the client read too slowly (maxPendingBytes); pusher-js retries after a back-off.'),
  ENGINE_UNAVAILABLE: closeCode(4101, 'Engine unavailable', true, 'This node could not reach its engine (Redis) for longer than engine.unavailableCloseMs; pusher-js reconnects after 1 s, to another node behind a balancer.'),
  RECONNECT: closeCode(4200, 'Server shutting down', true, 'The server is stopping (SIGTERM/SIGINT); pusher-js reconnects at once, to another node behind a balancer.'),
  PONG_TIMEOUT: closeCode(4201, 'Pong reply not received', true, 'The client did not answer the server\'s pings within heartbeatIntervalMs.'),
  CLIENT_EVENT_RATE_LIMITED: closeCode(4301, 'Client event rejected due to rate limit', false, 'As pusher:error without a close: a client event refused (rate, disabled, channel). As a close: the connection sent more frames than limits.messagesPerSecond allows.'),
  WATCHLIST_LIMIT: closeCode(4302, 'Watchlist limit exceeded', false, 'Only as pusher:error, never a close: a pusher:signin whose user_data has a watchlist of more than 100 user ids, or one that is not a list of strings; signed in without a watchlist.'),
} satisfies Record<string, CloseCodeInfo>);

/** True when a close code tells the client not to reconnect with the same parameters. */
export function isTerminalCloseCode(code: number): boolean {
  return code >= 4000 && code < 4500;
}

/** HTTP responses Chorus gives before or instead of a WebSocket upgrade, and on the REST API. */
export interface HttpErrorInfo {
  readonly status: number;
  readonly code: string;
  readonly message: string;
}

function httpError(status: number, code: string, message: string): HttpErrorInfo {
  return Object.freeze({ status, code, message });
}

export const HttpErrors = Object.freeze({
  BAD_REQUEST: httpError(400, 'bad_request', 'The request body is not valid JSON or misses a required field.'),
  UNAUTHORIZED: httpError(401, 'unauthorized', 'Unknown key or wrong secret.'),
  ORIGIN_NOT_ALLOWED: httpError(403, 'origin_not_allowed', 'The Origin header is not in the app\'s allowedOrigins.'),
  NOT_FOUND: httpError(404, 'not_found', 'No such path.'),
  METHOD_NOT_ALLOWED: httpError(405, 'method_not_allowed', 'The path exists but not for this HTTP method.'),
  PAYLOAD_TOO_LARGE: httpError(413, 'payload_too_large', 'The request body is larger than the app\'s maxMessageSize allows.'),
  UPGRADE_REQUIRED: httpError(426, 'upgrade_required', 'A WebSocket path was requested without a WebSocket upgrade.'),
  TOO_MANY_CONNECTIONS: httpError(429, 'too_many_connections', 'The app\'s maxConnections or maxConnectionsPerIp is reached; retry later.'),
  INTERNAL: httpError(500, 'internal', 'The server failed to handle the request (a bug: it is logged); retrying may work.'),
  SHUTTING_DOWN: httpError(503, 'shutting_down', 'The server is shutting down; try another instance or later.'),
  ENGINE_UNAVAILABLE: httpError(503, 'engine_unavailable', 'The server cannot reach its engine (Redis): nothing was published. Retry after the Retry-After header\'s seconds.'),
  ADMIN_UNAUTHORIZED: httpError(401, 'admin_unauthorized', 'The admin API and dashboard need the config\'s admin.user and admin.password: HTTP Basic, or Authorization: Bearer <password>.'),
} satisfies Record<string, HttpErrorInfo>);

export type HttpErrorName = keyof typeof HttpErrors;

/**
 * Errors in v1 replies (`{"ok": false, "error": {code, name, message}}`) and, from 200 up, the
 * errors the SDK raises on its own side. Same rules: append only, listed in docs/codes.md.
 */
export interface ReplyErrorInfo {
  readonly code: number;
  readonly name: string;
  readonly description: string;
}

function replyError(code: number, name: string, description: string): ReplyErrorInfo {
  return Object.freeze({ code, name, description });
}

export const ErrorCodes = Object.freeze({
  INTERNAL: replyError(100, 'internal', 'The server failed to process the command; retrying may work.'),
  UNAUTHORIZED: replyError(101, 'unauthorized', 'connect: unknown key, wrong secret, or a connection token that is missing (anonymous not allowed), invalid or expired.'),
  BAD_CHANNEL: replyError(102, 'bad_channel', 'The channel name is empty, longer than 200 characters or has characters outside [A-Za-z0-9_-=@,.;].'),
  PERMISSION_DENIED: replyError(103, 'permission_denied', 'A private- channel without a valid channel token, a Pusher-style auth that does not verify (or, for publish, no subscription).'),
  BAD_REQUEST: replyError(104, 'bad_request', 'The command has an unknown type or a missing or invalid field.'),
  ALREADY_CONNECTED: replyError(105, 'already_connected', 'connect was sent twice on one connection.'),
  ALREADY_SUBSCRIBED: replyError(106, 'already_subscribed', 'This connection is already subscribed to the channel.'),
  LIMIT_EXCEEDED: replyError(107, 'limit_exceeded', 'A per-connection limit was reached (for example maxChannelsPerConnection).'),
  NOT_SUBSCRIBED: replyError(108, 'not_subscribed', 'unsubscribe for a channel this connection is not subscribed to.'),
  MESSAGE_TOO_LARGE: replyError(109, 'message_too_large', 'The publication payload is over the app\'s maxMessageSize.'),
  RATE_LIMITED: replyError(110, 'rate_limited', 'More commands than messagesPerSecond (with messageBurst) allows; the command was not executed. Slow down.'),
  INVALID_MESSAGE: replyError(111, 'invalid_message', 'The publication does not match the channel\'s JSON Schema; the message names the failing path. It was not delivered.'),
  ENGINE_UNAVAILABLE: replyError(112, 'engine_unavailable', 'The server cannot reach its engine (Redis) right now: nothing was stored or published (publish, subscribe with presence or recovery, history, presence). Retry shortly.'),
  QUEUE_FULL: replyError(201, 'queue_full', 'SDK: the offline publish queue is full (maxQueuedPublishes); the publish was not queued.'),
  TIMEOUT: replyError(202, 'timeout', 'SDK: no reply within commandTimeoutMs while connected.'),
  CLIENT_CLOSED: replyError(203, 'client_closed', 'SDK: the client or the channel was closed before the command completed.'),
  TERMINAL_DISCONNECT: replyError(204, 'terminal_disconnect', 'SDK: the server closed with a terminal code (4000–4499); pending commands fail and the SDK does not reconnect.'),
} satisfies Record<string, ReplyErrorInfo>);

export type ErrorCodeName = keyof typeof ErrorCodes;
