/**
 * The shape of the configuration: what a user may write (ChorusConfigInput), what the server runs
 * with once every default is filled in (ChorusConfig), and the defaults. config.ts validates and
 * resolves; config-schema.ts is the JSON Schema; docs/configuration.md documents every option.
 */
import type { TokenKeyConfig } from './auth.js';

export interface Limits {
  /** Largest inbound WebSocket message in bytes; larger closes the socket with 1009. */
  maxMessageSize: number;
  /** Bytes queued for one socket (ours plus the kernel-side stream buffer) before it is closed as a slow consumer. */
  maxPendingBytes: number;
  /** Channels one v1 connection may be subscribed to at once. */
  maxChannelsPerConnection: number;
  /** Most publications one v1 history query returns. */
  maxHistoryLimit: number;
  /** Open connections per app (checked before the upgrade; HTTP 429 past it). */
  maxConnections: number;
  /** Open connections per app and client IP address (HTTP 429 past it). */
  maxConnectionsPerIp: number;
  /** Average messages (raw frames, v1 commands) per second per connection; 0 = unlimited. */
  messagesPerSecond: number;
  /** Messages a connection may send in a burst above the average rate. */
  messageBurst: number;
  /** Members in one channel's presence roster. */
  maxPresenceMembers: number;
}

export interface HistoryConfig {
  /** Publications kept per channel (0 keeps none: offsets still count, recovery only of nothing). */
  size: number;
  /** How long a publication stays in history. */
  ttlSeconds: number;
}

/** Per channel-name pattern options; `*` matches any run of characters. First match wins. */
export interface ChannelRule {
  pattern: string;
  history?: Partial<HistoryConfig>;
  /** JSON Schema every publication's data on these channels must match. */
  schema?: object;
}

export interface AppConfig {
  id: string;
  /** Public API key, sent by clients as `api_key`. */
  key: string;
  /** Private secret: signs channel JWTs (HS256) and authenticates REST publish. Never sent to browsers. */
  secret: string;
  /** Origins allowed to open sockets: `*`, exact `scheme://host[:port]`, or `scheme://*.example.com`. */
  allowedOrigins: string[];
  /** v1 connections without a token (anonymous users) are accepted. */
  allowAnonymous: boolean;
  limits: Limits;
  history: HistoryConfig;
  channels: ChannelRule[];
  /** Extra token keys selected by the token's `kid` (rotation, asymmetric keys). */
  tokenKeys: TokenKeyConfig[];
  /** false refuses every connection (Pusher: 4003) and HTTP API call (403), keeping the app's config. */
  enabled: boolean;
  /** Pusher client events (`client-*` on private-/presence- channels); off by default, as at Pusher. */
  clientEvents: boolean;
  /** Pusher `pusher_internal:subscription_count` events to a channel's subscribers; off by default, as at Pusher. */
  subscriptionCount: boolean;
  pusher: PusherAppLimits;
  /** Where this app's webhooks go (Pusher's format and signature): docs/webhooks.md. */
  webhooks: WebhookTarget[];
}

/** The webhook events, Pusher's names; every dialect's channels produce them. */
export const WEBHOOK_EVENTS = ['channel_occupied', 'channel_vacated', 'member_added', 'member_removed', 'client_event', 'cache_miss', 'subscription_count'] as const;
export type WebhookEventName = (typeof WEBHOOK_EVENTS)[number];

/** One receiver of an app's webhooks. */
export interface WebhookTarget {
  url: string;
  /** Only these events (default: all). */
  events: WebhookEventName[];
  /** Only events of channels whose name starts with this (default: all channels). */
  channelPrefix: string;
  /** Extra request headers (an auth token of the receiver's, say). */
  headers: Record<string, string>;
}

/** Server-wide delivery settings of webhooks. */
export interface WebhookOptions {
  /** Events of one app and receiver within this long go out in one request. */
  batchMs: number;
  /** channel_vacated and member_removed wait this long, and are not sent if the channel or member is back by then. */
  holdMs: number;
  /** A receiver that fails is retried with exponential backoff and jitter for this long, then the batch is dropped. */
  retryForMs: number;
  /** One request's timeout. */
  timeoutMs: number;
  /** Events waiting for delivery, all receivers together; past it new events are dropped (and counted). */
  maxQueuedEvents: number;
}

/** Limits of the Pusher dialect, Pusher's own numbers by default. */
export interface PusherAppLimits {
  /** Users in a presence channel joined through the Pusher protocol. */
  maxPresenceMembers: number;
  /** Size of a presence member's user_info (JSON bytes). */
  maxUserInfoBytes: number;
  maxUserIdLength: number;
  /** Client events per second per connection (then pusher:error 4301). */
  clientEventsPerSecond: number;
  /** Largest `data` of one HTTP API event (413 past it): Pusher's 10 KB. */
  maxEventBytes: number;
}

/** Server-wide options of the Pusher dialect. */
export interface PusherServerConfig {
  /** Put before `/app/{key}` and `/apps/{id}/…` (pusher-js `wsPath`; the SDKs' path prefix), e.g. `/pusher`. */
  pathPrefix: string;
  /** Seconds of silence after which pusher-js pings (sent in connection_established). */
  activityTimeoutSeconds: number;
}

/** Yjs rooms (`/yjs/{room}`, the y-websocket provider's protocol): docs/collaboration.md. */
export interface YjsServerConfig {
  /** The URL path the rooms live under: `${path}/{room}`. */
  path: string;
  /** Memory engine: a folder where each room's document is kept, so a restart keeps documents. */
  directory: string | undefined;
  /** Largest inbound Yjs frame (a client's first sync carries its whole offline state). */
  maxMessageSize: number;
  /** A room's stored document may not grow past this many bytes (encoded state). */
  maxDocumentBytes: number;
  /** A room without connections is unloaded from memory after this long. */
  idleUnloadMs: number;
}

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface ChorusConfig {
  port: number;
  /** Interface to bind; undefined binds every interface, like Node's default. */
  host: string | undefined;
  logLevel: LogLevel;
  /** Ping every connection this often; a connection that missed the previous pong is terminated. */
  heartbeatIntervalMs: number;
  /** On SIGTERM/SIGINT, connections are told to reconnect elsewhere in batches spread over this long (drain.ts). */
  drainWindowMs: number;
  /** After the drain, how long connections get to finish their close handshake before they are cut. */
  shutdownTimeoutMs: number;
  /** A v1 connection must send `connect` within this long of the upgrade. */
  connectTimeoutMs: number;
  /** The whole HTTP request head must arrive within this long (slowloris defence). */
  headersTimeoutMs: number;
  /** Deciding an upgrade (key, origin, token checks) may take this long before the socket is dropped. */
  handshakeTimeoutMs: number;
  /** A close handshake the peer does not complete is cut after this long. */
  closeTimeoutMs: number;
  /** After a token expires on an open connection, how long the client has to refresh it. */
  tokenGraceMs: number;
  /** Serve https:// and wss:// with this certificate and key (PEM file paths). */
  tls: TlsConfig | undefined;
  /**
   * Reverse proxies and load balancers (addresses, CIDR ranges, or `loopback`, `linklocal`,
   * `uniquelocal`) whose X-Forwarded-For names the client. Empty: the socket's peer is the client.
   */
  trustedProxies: string[];
  engine: EngineConfig;
  /** Serve the example pages under /examples/ (pre-filled with the first app's key). */
  examples: boolean;
  pusher: PusherServerConfig;
  yjs: YjsServerConfig;
  webhooks: WebhookOptions;
  /** The admin API and dashboard under /admin/; undefined turns them off (404). */
  admin: AdminConfig | undefined;
  metrics: MetricsConfig;
  apps: AppConfig[];
  /** What apps added through the admin API get where they set nothing. */
  appDefaults: AppDefaults;
  /**
   * Where apps added, disabled or re-keyed through the admin API are kept on the memory engine
   * (the Redis engine keeps them in Redis); undefined: in this process only.
   */
  appsFile: string | undefined;
}

/** Who may use the admin API and dashboard (HTTP Basic, or `Authorization: Bearer <password>`). */
export interface AdminConfig {
  user: string;
  password: string;
}

/** GET /metrics (Prometheus) and what it needs. */
export interface MetricsConfig {
  /** Serve GET /metrics; counting happens either way (plain integer fields). */
  enabled: boolean;
  /** Put before every metric name; soketi's dashboards work with `soketi_`. */
  prefix: string;
  /** When set, /metrics needs `Authorization: Bearer <token>` (401 otherwise). */
  token: string | undefined;
}

/** Where publications, history and presence live: this process, or Redis for many nodes. */
export type EngineConfig =
  | { type: 'memory' }
  | {
      type: 'redis';
      /** One Redis (redis:// or rediss://); or give `sentinels` and `name`. */
      url?: string;
      /** Redis Sentinel: the sentinels to ask for the primary of `name` (failover moves the engine with it). */
      sentinels?: Array<{ host: string; port: number }>;
      /** The primary's name as the sentinels monitor it. */
      name?: string;
      /** How often each node checks its pub/sub connection with a probe to itself (ms, default 2000). */
      probeIntervalMs?: number;
      /** A Redis command without a reply within this long is refused as engine-unavailable (ms, default 5000). */
      commandTimeoutMs?: number;
      /** Clients of a node that cannot reach Redis for this long are closed so they reconnect elsewhere (ms, default 10000; 0: never). */
      unavailableCloseMs?: number;
      /** How long a crashed node's presence members stay listed (ms, default 30000). */
      presenceTtlMs?: number;
      /** How long a crashed node's share of the cluster-wide counts (subscriptions, signed-in users) stays counted (ms, default 15000). */
      nodeTtlMs?: number;
    }
  | {
      /** Redis Cluster (Redis ≥ 7: sharded pub/sub); see docs/cluster.md#redis-cluster. */
      type: 'redis-cluster';
      /** Some of the cluster's nodes, to learn the rest from (any primary or replica). */
      nodes: Array<{ host: string; port: number }>;
      /** As for `redis`. */
      probeIntervalMs?: number;
      commandTimeoutMs?: number;
      unavailableCloseMs?: number;
      presenceTtlMs?: number;
      nodeTtlMs?: number;
    };

export interface TlsConfig {
  cert: string;
  key: string;
}

export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  maxMessageSize: 64 * 1024,
  maxPendingBytes: 1024 * 1024,
  maxChannelsPerConnection: 128,
  maxHistoryLimit: 100,
  maxConnections: 10_000,
  maxConnectionsPerIp: 100,
  messagesPerSecond: 100,
  messageBurst: 200,
  maxPresenceMembers: 1_000,
});

export const DEFAULT_PUSHER_LIMITS: Readonly<PusherAppLimits> = Object.freeze({
  maxPresenceMembers: 100,
  maxUserInfoBytes: 1024,
  maxUserIdLength: 128,
  clientEventsPerSecond: 10,
  maxEventBytes: 10 * 1024,
});

export const DEFAULT_PUSHER: Readonly<PusherServerConfig> = Object.freeze({ pathPrefix: '', activityTimeoutSeconds: 120 });

export const DEFAULT_YJS: Readonly<YjsServerConfig> = Object.freeze({
  path: '/yjs',
  directory: undefined,
  maxMessageSize: 4 * 1024 * 1024,
  maxDocumentBytes: 16 * 1024 * 1024,
  idleUnloadMs: 30_000,
});
export const DEFAULT_WEBHOOKS: Readonly<WebhookOptions> = Object.freeze({ batchMs: 50, holdMs: 3_000, retryForMs: 5 * 60_000, timeoutMs: 5_000, maxQueuedEvents: 10_000 });
export const DEFAULT_METRICS: Readonly<MetricsConfig> = Object.freeze({ enabled: true, prefix: 'chorus_', token: undefined });

export const DEFAULT_HISTORY: Readonly<HistoryConfig> = Object.freeze({ size: 100, ttlSeconds: 300 });

export const DEFAULTS: Readonly<Omit<ChorusConfig, 'apps' | 'appDefaults' | 'appsFile'>> = Object.freeze({
  port: 8080,
  host: undefined,
  logLevel: 'info',
  heartbeatIntervalMs: 25_000,
  drainWindowMs: 5_000,
  shutdownTimeoutMs: 5_000,
  connectTimeoutMs: 10_000,
  headersTimeoutMs: 10_000,
  handshakeTimeoutMs: 5_000,
  closeTimeoutMs: 5_000,
  tokenGraceMs: 25_000,
  tls: undefined,
  trustedProxies: [],
  engine: { type: 'memory' as const },
  examples: true,
  pusher: DEFAULT_PUSHER,
  yjs: DEFAULT_YJS,
  webhooks: DEFAULT_WEBHOOKS,
  admin: undefined,
  metrics: DEFAULT_METRICS,
});

/** The shape a user may write: everything optional but the app identities. */
export interface ChorusConfigInput {
  port?: number;
  host?: string;
  logLevel?: LogLevel;
  heartbeatIntervalMs?: number;
  drainWindowMs?: number;
  shutdownTimeoutMs?: number;
  connectTimeoutMs?: number;
  headersTimeoutMs?: number;
  handshakeTimeoutMs?: number;
  closeTimeoutMs?: number;
  tokenGraceMs?: number;
  tls?: TlsConfig;
  trustedProxies?: string[];
  engine?: EngineConfig;
  examples?: boolean;
  pusher?: Partial<PusherServerConfig>;
  yjs?: Partial<YjsServerConfig>;
  webhooks?: Partial<WebhookOptions>;
  admin?: { user?: string; password: string };
  appsFile?: string;
  metrics?: Partial<MetricsConfig>;
  limits?: Partial<Limits>;
  history?: Partial<HistoryConfig>;
  apps?: AppConfigInput[];
}

export interface AppConfigInput {
  id: string;
  key: string;
  secret: string;
  allowedOrigins?: string[];
  allowAnonymous?: boolean;
  limits?: Partial<Limits>;
  history?: Partial<HistoryConfig>;
  channels?: ChannelRule[];
  tokenKeys?: TokenKeyConfig[];
  enabled?: boolean;
  clientEvents?: boolean;
  subscriptionCount?: boolean;
  pusher?: Partial<PusherAppLimits>;
  webhooks?: Array<{ url: string; events?: WebhookEventName[]; channelPrefix?: string; headers?: Record<string, string> }>;
}

/** The limits and history an app gets where it sets none: the config's top-level ones. */
export interface AppDefaults {
  limits: Limits;
  history: HistoryConfig;
}
