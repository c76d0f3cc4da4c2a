/**
 * The request Laravel Echo's Pusher connector makes for a private or presence channel, made with
 * fetch: POST `socket_id=…&channel_name=…` form-encoded to the auth endpoint with the configured
 * headers (and the page's cookies, as pusher-js's XHR sends them), answered `{auth}` or
 * `{auth, channel_data}`. So an app's `/broadcasting/auth` route works as it is.
 */
import type { ChannelAuth } from '../types.js';

export type FetchLike = (url: string, init: { method: string; headers: Record<string, string>; body: string; credentials: 'same-origin' }) => Promise<{
  readonly status: number;
  text(): Promise<string>;
}>;

/** What Echo's error callbacks get for a refused authorization (pusher-js's shape). */
export interface AuthErrorStatus {
  readonly type: 'AuthError';
  readonly error: string;
  /** The endpoint's HTTP status; 0 when no response came (network error). */
  readonly status: number;
}

/** The endpoint refused or failed; `transient` ones (network, 408, 429, 5xx) are worth retrying. */
export class AuthEndpointError extends Error {
  readonly status: number;
  readonly transient: boolean;

  constructor(message: string, status: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AuthEndpointError';
    this.status = status;
    this.transient = status === 0 || status === 408 || status === 429 || status >= 500;
  }

  toStatus(): AuthErrorStatus {
    return { type: 'AuthError', error: this.message, status: this.status };
  }
}

export interface AuthRequest {
  readonly endpoint: string;
  readonly socketId: string;
  readonly channel: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly params: Readonly<Record<string, string>>;
  readonly fetch: FetchLike;
}

export async function requestChannelAuth(request: AuthRequest): Promise<ChannelAuth> {
  const { endpoint, channel } = request;
  let body = `socket_id=${encodeURIComponent(request.socketId)}&channel_name=${encodeURIComponent(channel)}`;
  for (const [name, value] of Object.entries(request.params)) body += `&${encodeURIComponent(name)}=${encodeURIComponent(value)}`;
  const headers = { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json', ...request.headers };
  let status: number;
  let text: string;
  try {
    const response = await request.fetch(endpoint, { method: 'POST', headers, body, credentials: 'same-origin' });
    status = response.status;
    text = await response.text();
  } catch (error) {
    throw new AuthEndpointError(`the auth endpoint ${endpoint} could not be reached for ${channel}: ${error instanceof Error ? error.message : String(error)}`, 0, { cause: error });
  }
  if (status !== 200) {
    throw new AuthEndpointError(`the auth endpoint ${endpoint} answered ${status} for ${channel} (clients must be authorized to join private and presence channels)`, status);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new AuthEndpointError(`the auth endpoint ${endpoint} answered 200 for ${channel} with something that is not JSON: ${text.slice(0, 200)}`, status);
  }
  const fields = typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : {};
  const auth = fields['auth'];
  const channelData = fields['channel_data'];
  if (typeof auth !== 'string' || auth === '') throw new AuthEndpointError(`the auth endpoint ${endpoint} answered 200 for ${channel} without an "auth" string`, status);
  if (channelData !== undefined && typeof channelData !== 'string') {
    throw new AuthEndpointError(`the auth endpoint ${endpoint} answered 200 for ${channel} with a channel_data that is not a string (it must be the signed JSON text)`, status);
  }
  return channelData === undefined ? { auth } : { auth, channelData };
}
