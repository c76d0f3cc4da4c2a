/**
 * The JSON Schema of the config file, checked with ajv before defaults are filled in. Every
 * option here is documented in docs/configuration.md; config.ts turns the first violation into
 * one line naming the field.
 */
const limitsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    maxMessageSize: { type: 'integer', minimum: 1, maximum: 100 * 1024 * 1024 },
    maxPendingBytes: { type: 'integer', minimum: 1024 },
    maxChannelsPerConnection: { type: 'integer', minimum: 1 },
    maxHistoryLimit: { type: 'integer', minimum: 1, maximum: 10_000 },
    maxConnections: { type: 'integer', minimum: 1 },
    maxConnectionsPerIp: { type: 'integer', minimum: 1 },
    messagesPerSecond: { type: 'number', minimum: 0 },
    messageBurst: { type: 'integer', minimum: 1 },
    maxPresenceMembers: { type: 'integer', minimum: 1 },
  },
} as const;

const historySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    size: { type: 'integer', minimum: 0, maximum: 100_000 },
    ttlSeconds: { type: 'integer', minimum: 1 },
  },
} as const;

export const configSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    port: { type: 'integer', minimum: 0, maximum: 65535 },
    host: { type: 'string', minLength: 1 },
    logLevel: { enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] },
    heartbeatIntervalMs: { type: 'integer', minimum: 100 },
    drainWindowMs: { type: 'integer', minimum: 0, maximum: 600_000 },
    shutdownTimeoutMs: { type: 'integer', minimum: 0 },
    connectTimeoutMs: { type: 'integer', minimum: 100 },
    headersTimeoutMs: { type: 'integer', minimum: 100 },
    handshakeTimeoutMs: { type: 'integer', minimum: 100 },
    closeTimeoutMs: { type: 'integer', minimum: 100 },
    tokenGraceMs: { type: 'integer', minimum: 0 },
    trustedProxies: { type: 'array', items: { type: 'string', minLength: 1 } },
    engine: {
      type: 'object',
      additionalProperties: false,
      required: ['type'],
      properties: {
        type: { enum: ['memory', 'redis', 'redis-cluster'] },
        url: { type: 'string', pattern: '^rediss?://' },
        sentinels: {
          type: 'array',
          minItems: 1,
          items: { type: 'object', additionalProperties: false, required: ['host', 'port'], properties: { host: { type: 'string', minLength: 1 }, port: { type: 'integer', minimum: 1, maximum: 65535 } } },
        },
        name: { type: 'string', minLength: 1 },
        nodes: {
          type: 'array',
          minItems: 1,
          items: { type: 'object', additionalProperties: false, required: ['host', 'port'], properties: { host: { type: 'string', minLength: 1 }, port: { type: 'integer', minimum: 1, maximum: 65535 } } },
        },
        probeIntervalMs: { type: 'integer', minimum: 100 },
        commandTimeoutMs: { type: 'integer', minimum: 100 },
        unavailableCloseMs: { type: 'integer', minimum: 0 },
        presenceTtlMs: { type: 'integer', minimum: 1000 },
        nodeTtlMs: { type: 'integer', minimum: 1000 },
      },
    },
    tls: {
      type: 'object',
      additionalProperties: false,
      required: ['cert', 'key'],
      properties: { cert: { type: 'string', minLength: 1 }, key: { type: 'string', minLength: 1 } },
    },
    examples: { type: 'boolean' },
    metrics: {
      type: 'object',
      additionalProperties: false,
      properties: {
        enabled: { type: 'boolean' },
        // A Prometheus metric name starts with a letter, `_` or `:`; empty is allowed (no prefix).
        prefix: { type: 'string', pattern: '^([A-Za-z_:][A-Za-z0-9_:]*)?$', maxLength: 64 },
        token: { type: 'string', minLength: 16, maxLength: 1024 },
      },
    },
    pusher: {
      type: 'object',
      additionalProperties: false,
      properties: {
        pathPrefix: { type: 'string', pattern: '^(/[A-Za-z0-9._~-]+)*$', maxLength: 256 },
        activityTimeoutSeconds: { type: 'integer', minimum: 1, maximum: 3600 },
      },
    },
    appsFile: { type: 'string', minLength: 1 },
    admin: {
      type: 'object',
      additionalProperties: false,
      required: ['password'],
      properties: {
        user: { type: 'string', minLength: 1, maxLength: 128, pattern: '^[^:]+$' },
        password: { type: 'string', minLength: 16, maxLength: 1024 },
      },
    },
    yjs: {
      type: 'object',
      additionalProperties: false,
      properties: {
        path: { type: 'string', pattern: '^(/[A-Za-z0-9._~-]+)+$', maxLength: 256 },
        directory: { type: 'string', minLength: 1 },
        maxMessageSize: { type: 'integer', minimum: 1024, maximum: 256 * 1024 * 1024 },
        maxDocumentBytes: { type: 'integer', minimum: 1024 },
        idleUnloadMs: { type: 'integer', minimum: 0 },
      },
    },
    webhooks: {
      type: 'object',
      additionalProperties: false,
      properties: {
        batchMs: { type: 'integer', minimum: 0, maximum: 60_000 },
        holdMs: { type: 'integer', minimum: 0, maximum: 600_000 },
        retryForMs: { type: 'integer', minimum: 0 },
        timeoutMs: { type: 'integer', minimum: 100 },
        maxQueuedEvents: { type: 'integer', minimum: 1 },
      },
    },
    limits: limitsSchema,
    history: historySchema,
    apps: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['id', 'key', 'secret'],
        properties: {
          id: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' },
          key: { type: 'string', minLength: 8, maxLength: 256 },
          secret: { type: 'string', minLength: 16, maxLength: 1024 },
          allowedOrigins: { type: 'array', items: { type: 'string', minLength: 1 } },
          allowAnonymous: { type: 'boolean' },
          enabled: { type: 'boolean' },
          clientEvents: { type: 'boolean' },
          subscriptionCount: { type: 'boolean' },
          webhooks: {
            type: 'array',
            items: {
              type: 'object',
              additionalProperties: false,
              required: ['url'],
              properties: {
                url: { type: 'string', pattern: '^https?://' },
                events: { type: 'array', minItems: 1, items: { enum: ['channel_occupied', 'channel_vacated', 'member_added', 'member_removed', 'client_event', 'cache_miss', 'subscription_count'] } },
                channelPrefix: { type: 'string' },
                headers: { type: 'object', additionalProperties: { type: 'string' } },
              },
            },
          },
          pusher: {
            type: 'object',
            additionalProperties: false,
            properties: {
              maxPresenceMembers: { type: 'integer', minimum: 1 },
              maxUserInfoBytes: { type: 'integer', minimum: 0 },
              maxUserIdLength: { type: 'integer', minimum: 1 },
              clientEventsPerSecond: { type: 'integer', minimum: 1 },
              maxEventBytes: { type: 'integer', minimum: 1 },
            },
          },
          limits: limitsSchema,
          history: historySchema,
          tokenKeys: {
            type: 'array',
            items: {
              type: 'object',
              additionalProperties: false,
              required: ['kid', 'alg'],
              properties: {
                kid: { type: 'string', minLength: 1, maxLength: 128 },
                alg: { enum: ['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] },
                secret: { type: 'string', minLength: 16 },
                publicKey: { type: 'string', minLength: 1 },
              },
            },
          },
          channels: {
            type: 'array',
            items: {
              type: 'object',
              additionalProperties: false,
              required: ['pattern'],
              properties: { pattern: { type: 'string', pattern: '^[A-Za-z0-9_\\-=@,.;*]{1,200}$' }, history: historySchema, schema: { type: 'object' } },
            },
          },
        },
      },
    },
  },
} as const;
