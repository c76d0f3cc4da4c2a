/**
 * Server configuration: defaults, loading from JSON or YAML, validation with one clear error line.
 *
 * Precedence, highest first: CLI flags → environment (CHORUS_PORT, CHORUS_CONFIG) → config file →
 * defaults. Every option is listed with its default in docs/configuration.md.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import proxyAddr from 'proxy-addr';
import { parse as parseYaml } from 'yaml';
import { configSchema } from './config-schema.js';
import { DEFAULTS, DEFAULT_HISTORY, DEFAULT_LIMITS, DEFAULT_PUSHER_LIMITS, WEBHOOK_EVENTS, type AppConfig, type AppConfigInput, type AppDefaults, type ChorusConfig, type ChorusConfigInput, type EngineConfig, type HistoryConfig, type Limits } from './config-types.js';
import { compileMessageSchema } from './validation.js';

export * from './config-types.js';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

// verbose: errors carry the offending value, so a short secret can be reported with its length.
const ajv = new Ajv({ allErrors: false, strict: true, verbose: true });
const validateInput = ajv.compile<ChorusConfigInput>(configSchema);
const validateApp = ajv.compile<AppConfigInput>(configSchema.properties.apps.items);

/** How to get a secret that passes: said wherever a secret is refused. */
export const MAKE_SECRET = `make one with \`npx chorus secret\` (or: node -e "console.log(require('crypto').randomBytes(24).toString('base64url'))")`;

/** `/apps/0/key` → `apps[0].key`, the way a user would name the field. */
function fieldName(error: ErrorObject): string {
  const parts = error.instancePath.split('/').slice(1);
  if (error.keyword === 'required') parts.push(String(error.params['missingProperty']));
  if (error.keyword === 'additionalProperties') parts.push(String(error.params['additionalProperty']));
  const name = parts.map((p) => (/^\d+$/.test(p) ? `[${p}]` : `.${p}`)).join('').replace(/^\./, '');
  return name === '' ? '(root)' : name;
}

function describe(error: ErrorObject): string {
  switch (error.keyword) {
    case 'required':
      return 'is required';
    case 'additionalProperties':
      return 'is not a known option (see docs/configuration.md)';
    case 'enum':
      return `must be one of ${(error.params['allowedValues'] as unknown[]).join(', ')}`;
    case 'minLength':
      // ajv's "must NOT have fewer than 16 characters" says neither why nor what to do instead.
      if (/(^|\/)(secret|password|token)$/.test(error.instancePath) && typeof error.data === 'string') {
        return `is ${error.data.length} characters; secrets must be at least ${String(error.params['limit'])} characters so they cannot be guessed — ${MAKE_SECRET}`;
      }
      if (/(^|\/)key$/.test(error.instancePath) && typeof error.data === 'string') {
        // soketi's and many tutorials' "app-key" is 7: say so rather than ajv's bare rule.
        return `is ${error.data.length} characters; app keys must be at least ${String(error.params['limit'])} characters (pick any longer public string, e.g. the output of \`npx chorus secret --bytes 12\`)`;
      }
      return error.message ?? 'is invalid';
    default:
      return error.message ?? 'is invalid';
  }
}

function schemaError(errors: ErrorObject[] | null | undefined, source: string): ConfigError {
  const error = errors?.[0];
  return new ConfigError(error ? `${source}: ${fieldName(error)} ${describe(error)}` : `${source}: invalid`);
}

/** Checks one app's fields (id, key, secret…) as the config file's apps[] would; for files that hold a single app. */
export function validateAppInput(input: unknown, source: string): AppConfigInput {
  if (!validateApp(input)) throw schemaError(validateApp.errors, source);
  return input;
}

/** Validates raw input and fills every default. Throws ConfigError naming the first bad field. */
export function resolveConfig(input: unknown, source = 'config'): ChorusConfig {
  if (!validateInput(input)) throw schemaError(validateInput.errors, source);
  const sharedLimits: Limits = { ...DEFAULT_LIMITS, ...input.limits };
  const sharedHistory: HistoryConfig = { ...DEFAULT_HISTORY, ...input.history };
  const appDefaults = { limits: sharedLimits, history: sharedHistory };
  const apps = (input.apps ?? [generateDevelopmentApp()]).map((app) => resolveAppConfig(app, appDefaults));
  rejectDuplicates(apps, 'id', source);
  rejectDuplicates(apps, 'key', source);
  for (const [i, app] of apps.entries()) {
    for (const [k, key] of app.tokenKeys.entries()) {
      const needs = key.alg.startsWith('HS') ? 'secret' : 'publicKey';
      if (key[needs] === undefined) throw new ConfigError(`${source}: apps[${i}].tokenKeys[${k}].${needs} is required for ${key.alg}`);
    }
    for (const [c, rule] of app.channels.entries()) {
      if (!rule.schema) continue;
      try {
        compileMessageSchema(rule.schema);
      } catch (error) {
        throw new ConfigError(`${source}: apps[${i}].channels[${c}].schema is not a valid JSON Schema (${(error as Error).message})`);
      }
    }
    for (const origin of app.allowedOrigins) {
      if (!isValidOriginPattern(origin)) {
        throw new ConfigError(`${source}: apps[${i}].allowedOrigins has "${origin}"; use "*", "https://host[:port]" or "https://*.example.com"`);
      }
    }
  }
  return {
    port: input.port ?? DEFAULTS.port,
    host: input.host ?? DEFAULTS.host,
    logLevel: input.logLevel ?? DEFAULTS.logLevel,
    heartbeatIntervalMs: input.heartbeatIntervalMs ?? DEFAULTS.heartbeatIntervalMs,
    drainWindowMs: input.drainWindowMs ?? DEFAULTS.drainWindowMs,
    shutdownTimeoutMs: input.shutdownTimeoutMs ?? DEFAULTS.shutdownTimeoutMs,
    connectTimeoutMs: input.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
    headersTimeoutMs: input.headersTimeoutMs ?? DEFAULTS.headersTimeoutMs,
    handshakeTimeoutMs: input.handshakeTimeoutMs ?? DEFAULTS.handshakeTimeoutMs,
    closeTimeoutMs: input.closeTimeoutMs ?? DEFAULTS.closeTimeoutMs,
    tokenGraceMs: input.tokenGraceMs ?? DEFAULTS.tokenGraceMs,
    tls: input.tls,
    trustedProxies: resolveTrustedProxies(input.trustedProxies ?? DEFAULTS.trustedProxies, source),
    engine: resolveEngine(input.engine, source),
    examples: input.examples ?? DEFAULTS.examples,
    pusher: { ...DEFAULTS.pusher, ...input.pusher },
    yjs: { ...DEFAULTS.yjs, ...input.yjs },
    webhooks: { ...DEFAULTS.webhooks, ...input.webhooks },
    admin: input.admin ? { user: input.admin.user ?? 'admin', password: input.admin.password } : undefined,
    appDefaults,
    appsFile: input.appsFile,
    metrics: { ...DEFAULTS.metrics, ...input.metrics },
    apps,
  };
}

/** One app with every default filled in (the config's apps, and apps added at run time by the admin API). */
export function resolveAppConfig(app: AppConfigInput, defaults: AppDefaults): AppConfig {
  return {
    id: app.id,
    key: app.key,
    secret: app.secret,
    allowedOrigins: app.allowedOrigins ?? ['*'],
    allowAnonymous: app.allowAnonymous ?? true,
    limits: { ...defaults.limits, ...app.limits },
    history: { ...defaults.history, ...app.history },
    channels: app.channels ?? [],
    tokenKeys: app.tokenKeys ?? [],
    enabled: app.enabled ?? true,
    clientEvents: app.clientEvents ?? false,
    subscriptionCount: app.subscriptionCount ?? false,
    pusher: { ...DEFAULT_PUSHER_LIMITS, ...app.pusher },
    webhooks: (app.webhooks ?? []).map((hook) => ({ url: hook.url, events: hook.events ?? [...WEBHOOK_EVENTS], channelPrefix: hook.channelPrefix ?? '', headers: hook.headers ?? {} })),
  };
}

function rejectDuplicates(apps: AppConfig[], field: 'id' | 'key', source: string): void {
  const seen = new Set<string>();
  for (const [i, app] of apps.entries()) {
    if (seen.has(app[field])) throw new ConfigError(`${source}: apps[${i}].${field} "${app[field]}" is used by another app`);
    seen.add(app[field]);
  }
}

function isValidOriginPattern(origin: string): boolean {
  return origin === '*' || /^[a-z][a-z0-9+.-]*:\/\/(\*\.)?[^/*\s]+$/i.test(origin);
}

/** Reads a JSON or YAML (.yaml/.yml) config file and resolves it. */
export async function loadConfigFile(path: string): Promise<ChorusConfigInput> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`${path}: cannot read (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
  }
  const ext = extname(path).toLowerCase();
  try {
    return (ext === '.yaml' || ext === '.yml' ? parseYaml(text) : JSON.parse(text)) as ChorusConfigInput;
  } catch (error) {
    throw new ConfigError(`${path}: not valid ${ext === '.yaml' || ext === '.yml' ? 'YAML' : 'JSON'} (${(error as Error).message.split('\n')[0]})`);
  }
}

/**
 * A development app with fresh random credentials, used when no config names any app. `chorus
 * serve` keeps the one it makes in .chorus/dev-app.json (cli/dev-app.ts), so its key survives restarts.
 */
export function generateDevelopmentApp(): AppConfigInput {
  return {
    id: 'dev',
    key: randomBytes(15).toString('base64url'),
    secret: randomBytes(24).toString('base64url'),
    allowedOrigins: ['*'],
  };
}

function resolveEngine(engine: ChorusConfigInput['engine'], source: string): EngineConfig {
  if (!engine || engine.type === 'memory') return { type: 'memory' };
  // The schema lets every engine field through for every type; which belong together is said here.
  const fields = engine as Partial<Record<'url' | 'sentinels' | 'name' | 'nodes', unknown>>;
  if (engine.type === 'redis-cluster') {
    const misplaced = (['url', 'sentinels', 'name'] as const).find((field) => fields[field] !== undefined);
    if (misplaced) throw new ConfigError(`${source}: engine.${misplaced} is for the redis engine; the redis-cluster engine finds its nodes through engine.nodes`);
    if (!fields.nodes) throw new ConfigError(`${source}: engine.nodes is required for the redis-cluster engine ([{"host": "10.0.0.5", "port": 6379}, …]: some of the cluster's nodes, to learn the rest from)`);
    return engine;
  }
  if (fields.nodes !== undefined) throw new ConfigError(`${source}: engine.nodes is for the redis-cluster engine: set engine.type to "redis-cluster", or give engine.url for one Redis`);
  if (engine.sentinels && !engine.name) throw new ConfigError(`${source}: engine.name is required with engine.sentinels (the primary's name the sentinels monitor)`);
  if (engine.url && engine.sentinels) throw new ConfigError(`${source}: give engine.url or engine.sentinels, not both`);
  if (!engine.url && !engine.sentinels) throw new ConfigError(`${source}: engine.url is required for the redis engine (redis://host:port), or engine.sentinels and engine.name for Redis Sentinel`);
  return engine;
}

function resolveTrustedProxies(entries: string[], source: string): string[] {
  for (const [i, entry] of entries.entries()) {
    try {
      proxyAddr.compile(entry);
    } catch (error) {
      throw new ConfigError(`${source}: trustedProxies[${i}] "${entry}" is not an IP address, a CIDR range or loopback/linklocal/uniquelocal (${(error as Error).message})`);
    }
  }
  return entries;
}
