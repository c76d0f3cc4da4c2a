/** The configured apps, looked up by API key, with constant-time secret checks. */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { AppConfig, HistoryConfig, PusherAppLimits, WebhookTarget } from './config.js';
import type { HistoryPolicy } from './engine/types.js';
import { TokenVerifier } from './auth.js';
import { isOriginAllowed } from './origin.js';
import { compileMessageSchema, type MessageCheck } from './validation.js';

interface ChannelRuleCompiled {
  readonly pattern: RegExp;
  readonly history: HistoryPolicy;
  readonly check: MessageCheck | undefined;
}

export class App {
  readonly id: string;
  readonly key: string;
  readonly limits: AppConfig['limits'];
  readonly allowedOrigins: readonly string[];
  readonly allowAnonymous: boolean;
  /** false refuses new connections and API calls (the admin API can change it at run time). */
  enabled: boolean;
  readonly clientEvents: boolean;
  readonly subscriptionCount: boolean;
  readonly pusher: PusherAppLimits;
  readonly webhooks: readonly WebhookTarget[];
  /** Pusher signatures are HMACs keyed by the secret itself, so the Pusher dialect needs it. */
  credentials: { readonly key: string; readonly secret: string };
  /** Verifies this app's channel and connection tokens. */
  tokens: TokenVerifier;
  #secretDigest: Buffer;
  readonly #tokenKeys: AppConfig['tokenKeys'];
  readonly #defaultHistory: HistoryPolicy;
  readonly #channelRules: readonly ChannelRuleCompiled[];

  constructor(config: AppConfig) {
    this.id = config.id;
    this.key = config.key;
    this.limits = config.limits;
    this.allowedOrigins = config.allowedOrigins;
    this.allowAnonymous = config.allowAnonymous;
    this.enabled = config.enabled;
    this.clientEvents = config.clientEvents;
    this.subscriptionCount = config.subscriptionCount;
    this.pusher = config.pusher;
    this.webhooks = config.webhooks;
    this.credentials = Object.freeze({ key: config.key, secret: config.secret });
    this.#defaultHistory = toPolicy(config.history);
    this.#channelRules = config.channels.map((rule) => ({
      pattern: globToRegExp(rule.pattern),
      history: toPolicy({ ...config.history, ...rule.history }),
      check: rule.schema ? compileMessageSchema(rule.schema) : undefined,
    }));
    this.#tokenKeys = config.tokenKeys;
    this.tokens = new TokenVerifier(config.secret, config.tokenKeys);
    this.#secretDigest = digest(config.secret);
  }

  /**
   * A new secret, in place: every session holds this object, so from now on every check (REST,
   * Pusher signatures, tokens signed with the secret) takes the new one and refuses the old.
   */
  rotateSecret(secret: string): void {
    this.credentials = Object.freeze({ key: this.key, secret });
    this.tokens = new TokenVerifier(secret, this.#tokenKeys);
    this.#secretDigest = digest(secret);
  }

  /** Compares digests so neither the content nor the length of the secret leaks through timing. */
  isSecret(candidate: string): boolean {
    return timingSafeEqual(this.#secretDigest, digest(candidate));
  }

  allowsOrigin(origin: string | undefined): boolean {
    return isOriginAllowed(origin, this.allowedOrigins);
  }

  /** History kept for a channel: the first matching channel rule, else the app's default. */
  historyPolicy(channel: string): HistoryPolicy {
    return this.#ruleFor(channel)?.history ?? this.#defaultHistory;
  }

  /** The message check of the channel's schema, if its rule has one. */
  messageCheck(channel: string): MessageCheck | undefined {
    return this.#ruleFor(channel)?.check;
  }

  #ruleFor(channel: string): ChannelRuleCompiled | undefined {
    return this.#channelRules.find((rule) => rule.pattern.test(channel));
  }
}

function toPolicy(history: HistoryConfig): HistoryPolicy {
  return { size: history.size, ttlMs: history.ttlSeconds * 1000 };
}

/** `chat-*` → /^chat-.*$/: `*` is the only wildcard; names may hold `.` and other regex characters. */
function globToRegExp(pattern: string): RegExp {
  return new RegExp(`^${pattern.split('*').map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

export class AppRegistry {
  readonly #byKey = new Map<string, App>();
  readonly #byId = new Map<string, App>();

  constructor(configs: readonly AppConfig[]) {
    for (const config of configs) this.add(config);
  }

  /** Every app, in the order added (the config's first). */
  get all(): readonly App[] {
    return [...this.#byId.values()];
  }

  /** Adds an app (the admin API adds them at run time); undefined when its id or key is taken. */
  add(config: AppConfig): App | undefined {
    if (this.#byId.has(config.id) || this.#byKey.has(config.key)) return undefined;
    const app = new App(config);
    this.#byKey.set(app.key, app);
    this.#byId.set(app.id, app);
    return app;
  }

  byKey(key: string | null | undefined): App | undefined {
    return key ? this.#byKey.get(key) : undefined;
  }

  byId(id: string): App | undefined {
    return this.#byId.get(id);
  }
}
