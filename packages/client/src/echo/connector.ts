/**
 * ChorusConnector: Laravel Echo over Chorus protocol v1, given to Echo as its broadcaster
 * (`new Echo({ broadcaster: ChorusConnector, key, wsHost, … })`; Echo constructs a connector
 * class it is handed with its options). Echo's API stays as it is (channel/private/join, listen,
 * whisper, here/joining/leaving, socketId for `X-Socket-Id`), and so does the app's auth
 * endpoint: the server verifies Pusher-style signatures over the connection's socketId.
 * Underneath is the SDK's reconnect and recovery, which pusher-js does not have: after a cut every
 * channel resumes from its last offset, so what was published meanwhile arrives once, in order.
 *
 * It mirrors Echo's Connector interface instead of extending it, so the SDK does not depend on
 * laravel-echo at run time.
 */
import { backoffDelay } from '../backoff.js';
import { ChorusClient } from '../client.js';
import type { Channel } from '../channel.js';
import type { ChannelAuth, ChannelOptions, ClientOptions, WebSocketConstructor } from '../types.js';
import { AuthEndpointError, requestChannelAuth, type FetchLike } from './auth.js';
import { ChorusEchoChannel, ChorusEchoPresenceChannel, ChorusEchoPrivateChannel } from './channels.js';
import { DEFAULT_NAMESPACE } from './formatter.js';

/** Echo's default, Laravel's route. */
export const DEFAULT_AUTH_ENDPOINT = '/broadcasting/auth';

const PRIVATE_PREFIX = 'private-';
const PRESENCE_PREFIX = 'presence-';
const ENCRYPTED_PREFIX = 'private-encrypted-';

/** An auth endpoint that failed transiently (network, 408, 429, 5xx) is asked again after these delays. */
const AUTH_RETRY = { minDelayMs: 500, maxDelayMs: 10_000 } as const;

/** Echo's ConnectionStatus. */
export type EchoConnectionStatus = 'connected' | 'disconnected' | 'connecting' | 'reconnecting' | 'failed';

/** Echo's options for the Pusher connector that mean something here, plus `WebSocket`, `fetch` and `chorus`. */
export interface ChorusConnectorOptions {
  /** The Chorus app key. */
  key: string;
  /**
   * The server as a URL (`wss://chorus.example.com`, `https://…`, `ws://127.0.0.1:8080`) or
   * `host[:port]`. Without it, `wsHost`/`wsPort`/`wssPort`/`forceTLS` as for pusher-js, else the
   * page's origin.
   */
  host?: string | null;
  wsHost?: string | null;
  wsPort?: number | string | null;
  wssPort?: number | string | null;
  /** As in pusher-js: TLS (wss, `wssPort`, default 443) unless `false` (ws, `wsPort`, default 80); always on https pages. */
  forceTLS?: boolean | null;
  /** Default `/broadcasting/auth`, resolved against the page; give an absolute URL outside browsers. */
  authEndpoint?: string;
  /** Sent with every auth request; read at each request, so changing them later takes effect. */
  auth?: { headers?: Record<string, string>; params?: Record<string, string> };
  /** Sent as `X-CSRF-TOKEN` (else window.Laravel.csrfToken or the csrf-token meta tag, as Echo does). */
  csrfToken?: string | null;
  /** Sent as `Authorization: Bearer …`. */
  bearerToken?: string | null;
  /** The event namespace, default `App.Events`; `false` for none. */
  namespace?: string | false;
  /** WebSocket constructor; default `globalThis.WebSocket`. Pass `ws` on Node 20. */
  WebSocket?: WebSocketConstructor;
  /** For the auth requests; default `globalThis.fetch`. */
  fetch?: FetchLike;
  /** More SDK options (reconnect delays, timeouts, a connection token); see docs/client.md. */
  chorus?: Partial<Omit<ClientOptions, 'key' | 'WebSocket'>>;
  /** Echo passes every option it was given (`broadcaster` among them); the others are ignored. */
  readonly [option: string]: unknown;
}

type AuthOptions = { headers: Record<string, string>; params: Record<string, string> };

export class ChorusConnector {
  /** The options with Echo's defaults; `options.auth.headers` may be changed later (a new bearer token). */
  readonly options: ChorusConnectorOptions & { authEndpoint: string; namespace: string | false; auth: AuthOptions };
  /** The SDK client underneath: its `error` and `state` events, `session`, `close()`. */
  readonly client: ChorusClient;
  /** By full channel name (`private-…`, `presence-…`); Echo's leaveAllChannels walks it. */
  readonly channels: Record<string, ChorusEchoChannel> = {};
  #everConnected = false;
  #closedByApp = false;

  constructor(options: ChorusConnectorOptions) {
    if (typeof options !== 'object' || options === null || typeof options.key !== 'string' || options.key === '') {
      throw new TypeError('ChorusConnector: options.key (the Chorus app key) is required');
    }
    const auth: AuthOptions = { headers: { ...options.auth?.headers }, params: { ...options.auth?.params } };
    const csrf = csrfToken(options);
    if (csrf) auth.headers['X-CSRF-TOKEN'] = csrf;
    if (options.bearerToken) auth.headers['Authorization'] = `Bearer ${options.bearerToken}`;
    this.options = {
      ...options,
      authEndpoint: options.authEndpoint ?? DEFAULT_AUTH_ENDPOINT,
      namespace: options.namespace ?? DEFAULT_NAMESPACE,
      auth,
    };
    const clientOptions: ClientOptions = { ...options.chorus, key: options.key };
    if (options.WebSocket) clientOptions.WebSocket = options.WebSocket;
    this.client = new ChorusClient(serverUrl(options), clientOptions);
    this.client.on('connected', () => {
      this.#everConnected = true;
    });
  }

  /** Connects again after disconnect() (the client connects by itself when created). */
  connect(): void {
    this.#closedByApp = false;
    this.client.connect().catch(() => undefined); // failures show in connectionStatus() and the client's error event
  }

  channel(name: string): ChorusEchoChannel {
    return this.#get(name, () => new ChorusEchoChannel(this.#subscription(name), this.options.namespace));
  }

  privateChannel(name: string): ChorusEchoPrivateChannel {
    const full = PRIVATE_PREFIX + name;
    return this.#get(full, () => new ChorusEchoPrivateChannel(this.#subscription(full), this.options.namespace));
  }

  /** Not supported: Chorus has no end-to-end encrypted channels (Echo itself refuses before asking). */
  encryptedPrivateChannel(name: string): never {
    throw new Error(`ChorusConnector: encrypted private channels (${ENCRYPTED_PREFIX}${name}) are not supported; use Echo.private()`);
  }

  presenceChannel(name: string): ChorusEchoPresenceChannel {
    const full = PRESENCE_PREFIX + name;
    return this.#get(full, () => new ChorusEchoPresenceChannel(this.#subscription(full), this.options.namespace));
  }

  listen(name: string, event: string, callback: CallableFunction): ChorusEchoChannel {
    return this.channel(name).listen(event, callback);
  }

  /** Leaves the channel and its private-, private-encrypted- and presence- variants. */
  leave(name: string): void {
    for (const full of [name, PRIVATE_PREFIX + name, ENCRYPTED_PREFIX + name, PRESENCE_PREFIX + name]) this.leaveChannel(full);
  }

  leaveChannel(name: string): void {
    const channel = this.channels[name];
    if (!channel) return;
    channel.unsubscribe();
    delete this.channels[name];
  }

  /** The connection's socket id (`\d+.\d+`), what Echo sends as `X-Socket-Id`; undefined while not connected. */
  socketId(): string | undefined {
    return this.client.session?.socketId;
  }

  connectionStatus(): EchoConnectionStatus {
    switch (this.client.state) {
      case 'connected':
        return 'connected';
      case 'connecting':
      case 'disconnected': // between attempts: the SDK reconnects by itself
        return this.#everConnected ? 'reconnecting' : 'connecting';
      case 'closed':
        return this.#closedByApp ? 'disconnected' : 'failed';
    }
  }

  /** Calls back on every status change; returns the function that stops it. */
  onConnectionChange(callback: (status: EchoConnectionStatus) => void): () => void {
    return this.client.on('state', () => callback(this.connectionStatus()));
  }

  disconnect(): void {
    this.#closedByApp = true;
    this.client.close();
  }

  /** The channel object for the name; one that was refused is subscribed again (as pusher-js retries). */
  #get<T extends ChorusEchoChannel>(name: string, create: () => T): T {
    const existing = this.channels[name] as T | undefined;
    if (existing) {
      if (existing.subscription.state === 'unsubscribed' && this.client.state !== 'closed') existing.subscribe();
      return existing;
    }
    const channel = create();
    this.channels[name] = channel;
    channel.subscribe();
    return channel;
  }

  /** The SDK channel; private- and presence- names are authorized through the auth endpoint whichever method asked. */
  #subscription(name: string): Channel {
    const options: ChannelOptions = {};
    if (name.startsWith(PRIVATE_PREFIX) || name.startsWith(PRESENCE_PREFIX)) options.getAuth = () => this.#authorize(name);
    if (name.startsWith(PRESENCE_PREFIX)) options.presence = true;
    return this.client.channel(name, options);
  }

  /**
   * Asks the auth endpoint for this connection's signature. Transient failures are reported on
   * the channel's error() callbacks and asked again, as long as the connection is the same (a new
   * one asks anew with its own socket id).
   */
  async #authorize(channel: string): Promise<ChannelAuth> {
    const socketId = this.client.session?.socketId;
    if (socketId === undefined) {
      throw new Error('the server sent no socketId in its connect result (a Chorus server older than the Pusher-style auth of protocol v1?)');
    }
    const endpoint = resolveEndpoint(this.options.authEndpoint);
    const fetch = this.options.fetch ?? (globalThis as { fetch?: FetchLike }).fetch;
    if (!fetch) throw new TypeError('ChorusConnector: this runtime has no fetch for the auth requests; pass one as options.fetch');
    for (let attempt = 1; ; attempt++) {
      try {
        const { headers, params } = this.options.auth;
        return await requestChannelAuth({ endpoint, socketId, channel, headers, params, fetch });
      } catch (error) {
        if (!(error instanceof AuthEndpointError) || !error.transient) throw error;
        this.channels[channel]?._error(error.toStatus());
        await new Promise((resolve) => setTimeout(resolve, backoffDelay(attempt, AUTH_RETRY)));
        if (this.client.session?.socketId !== socketId || !this.channels[channel]) throw error;
      }
    }
  }
}

function serverUrl(options: ChorusConnectorOptions): string {
  const location = (globalThis as { location?: { protocol?: string; origin?: string } }).location;
  const tls = location?.protocol === 'https:' || options.forceTLS !== false;
  const scheme = tls ? 'wss' : 'ws';
  if (options.host) return options.host.includes('://') ? options.host : `${scheme}://${options.host}`;
  if (options.wsHost) return `${scheme}://${options.wsHost}:${String(tls ? (options.wssPort ?? 443) : (options.wsPort ?? 80))}`;
  if (location?.origin && location.origin !== 'null') return location.origin;
  throw new TypeError('ChorusConnector: no server address: pass host (a URL such as "wss://chorus.example.com") or wsHost and wsPort (with forceTLS: false for ws://)');
}

function resolveEndpoint(endpoint: string): string {
  const base = (globalThis as { location?: { href?: string } }).location?.href;
  try {
    return new URL(endpoint, base).toString();
  } catch {
    const which = endpoint === DEFAULT_AUTH_ENDPOINT ? ` (the default)` : '';
    throw new TypeError(`ChorusConnector: authEndpoint "${endpoint}"${which} is relative and there is no page to resolve it against: pass an absolute URL, e.g. authEndpoint: "https://app.example.com/broadcasting/auth"`);
  }
}

/** Where Echo finds Laravel's CSRF token, in Echo's order. */
function csrfToken(options: ChorusConnectorOptions): string | null {
  const scope = globalThis as {
    Laravel?: { csrfToken?: string };
    document?: { querySelector?: (selector: string) => { getAttribute(name: string): string | null } | null };
  };
  if (scope.Laravel?.csrfToken) return scope.Laravel.csrfToken;
  if (options.csrfToken) return options.csrfToken;
  if (typeof scope.document?.querySelector === 'function') return scope.document.querySelector('meta[name="csrf-token"]')?.getAttribute('content') ?? null;
  return null;
}
