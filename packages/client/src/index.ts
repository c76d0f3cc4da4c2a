/**
 * @chorus/client — the Chorus v1 SDK. Browser-safe ESM; on Node 20 pass `WebSocket` from `ws`.
 * See docs/client.md.
 */
export { ChorusClient, createClient, DEFAULT_OPTIONS, SDK_NAME } from './client.js';
export { Channel } from './channel.js';
export { ChorusError } from './errors.js';
export { backoffCeiling, backoffDelay, type BackoffOptions } from './backoff.js';
export type * from './types.js';
export { ErrorCodes, CloseCodes, isTerminalCloseCode } from '@chorus/protocol';
export type { ConnectResult, SubscribeResult, PublishResult, StreamPosition, Member, ErrorCodeName, CloseCodeName } from '@chorus/protocol';
export { ChorusConnector, DEFAULT_AUTH_ENDPOINT, type ChorusConnectorOptions, type EchoConnectionStatus } from './echo/connector.js';
export {
  ChorusEchoChannel,
  ChorusEchoPrivateChannel,
  ChorusEchoPresenceChannel,
  type PresenceMember,
  type PresenceRoster,
  type SubscriptionErrorStatus,
} from './echo/channels.js';
export { AuthEndpointError, type AuthErrorStatus, type FetchLike } from './echo/auth.js';
