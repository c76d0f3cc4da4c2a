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
import { parse as parseYaml } from 'yaml';

export interface Limits {
  /** Largest inbound WebSocket message in bytes; larger closes the socket with 1009. */
  maxMessageSize: number;
  /** Bytes queued for one socket (ours plus the kernel-side stream buffer) before it is closed as a slow consumer. */
  maxPendingBytes: number;
}

export interface AppConfig {
  id: string;
  /** Public API key, sent by clients as `api_key`. */
  key: string;
  /** Private secret: signs channel JWTs (HS256) and authenticates REST publish. Never sent to browsers. */
  secret: string;
  /** Origins allowed to open sockets: `*`, exact `scheme://host[:port]`, or `scheme://*.example.com`. */
  allowedOrigins: string[];
  limits: Limits;
}

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface ChorusConfig {
  port: number;
  /** Interface to bind; undefined binds every interface, like Node's default. */
  host: string | undefined;
  logLevel: LogLevel;
  /** Ping every connection this often; a connection that missed the previous pong is terminated. */
  heartbeatIntervalMs: number;
  /** On SIGTERM/SIGINT, how long connections get to finish their close handshake before they are cut. */
  shutdownTimeoutMs: number;
  /** Serve the example pages under /examples/ (pre-filled with the first app's key). */
  examples: boolean;
  apps: AppConfig[];
}

export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  maxMessageSize: 64 * 1024,
  maxPendingBytes: 1024 * 1024,
});

export const DEFAULTS: Readonly<Omit<ChorusConfig, 'apps'>> = Object.freeze({
  port: 8080,
  host: undefined,
  logLevel: 'info',
  heartbeatIntervalMs: 25_000,
  shutdownTimeoutMs: 5_000,
  examples: true,
});

/** The shape a user may write: everything optional but the app identities. */
export interface ChorusConfigInput {
  port?: number;
  host?: string;
  logLevel?: LogLevel;
  heartbeatIntervalMs?: number;
  shutdownTimeoutMs?: number;
  examples?: boolean;
  limits?: Partial<Limits>;
  apps?: AppConfigInput[];
}

export interface AppConfigInput {
  id: string;
  key: string;
  secret: string;
  allowedOrigins?: string[];
  limits?: Partial<Limits>;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

const limitsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    maxMessageSize: { type: 'integer', minimum: 1, maximum: 100 * 1024 * 1024 },
    maxPendingBytes: { type: 'integer', minimum: 1024 },
  },
} as const;

const configSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    port: { type: 'integer', minimum: 0, maximum: 65535 },
    host: { type: 'string', minLength: 1 },
    logLevel: { enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] },
    heartbeatIntervalMs: { type: 'integer', minimum: 100 },
    shutdownTimeoutMs: { type: 'integer', minimum: 0 },
    examples: { type: 'boolean' },
    limits: limitsSchema,
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
          limits: limitsSchema,
        },
      },
    },
  },
} as const;

const validateInput = new Ajv({ allErrors: false, strict: true }).compile<ChorusConfigInput>(configSchema);

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
    default:
      return error.message ?? 'is invalid';
  }
}

/** Validates raw input and fills every default. Throws ConfigError naming the first bad field. */
export function resolveConfig(input: unknown, source = 'config'): ChorusConfig {
  if (!validateInput(input)) {
    const error = validateInput.errors?.[0];
    throw new ConfigError(error ? `${source}: ${fieldName(error)} ${describe(error)}` : `${source}: invalid`);
  }
  const sharedLimits: Limits = { ...DEFAULT_LIMITS, ...input.limits };
  const apps = (input.apps ?? [generateDevelopmentApp()]).map(
    (app): AppConfig => ({
      id: app.id,
      key: app.key,
      secret: app.secret,
      allowedOrigins: app.allowedOrigins ?? ['*'],
      limits: { ...sharedLimits, ...app.limits },
    }),
  );
  rejectDuplicates(apps, 'id', source);
  rejectDuplicates(apps, 'key', source);
  for (const [i, app] of apps.entries()) {
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
    shutdownTimeoutMs: input.shutdownTimeoutMs ?? DEFAULTS.shutdownTimeoutMs,
    examples: input.examples ?? DEFAULTS.examples,
    apps,
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

/** A development app with fresh random credentials, used when no config names any app. */
export function generateDevelopmentApp(): AppConfigInput {
  return {
    id: 'dev',
    key: randomBytes(15).toString('base64url'),
    secret: randomBytes(24).toString('base64url'),
    allowedOrigins: ['*'],
  };
}
