/**
 * What every `chorus` command shares: exit codes, flag parsing that turns mistakes into usage
 * errors, and the two questions most commands ask — where is the server (`--url`, `--host`,
 * `--port`, CHORUS_URL) and which app (`--key`, `--secret`, `--config`, `--app`, CHORUS_KEY,
 * CHORUS_SECRET, CHORUS_CONFIG).
 */
import { createRequire } from 'node:module';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { AppConfigInput, ChorusConfigInput } from '../config.js';

/** Exit codes, the same for every command (docs/cli.md). */
export const EXIT_OK = 0;
/** Runtime failure: the server is unreachable, refused the request, or closed abnormally. */
export const EXIT_FAILURE = 1;
/** Bad usage: unknown flag, missing argument, bad value, unreadable or invalid config. */
export const EXIT_USAGE = 2;

export const DEFAULT_URL = 'http://localhost:8080';
/** Deadline for connecting / for an HTTP request, unless --timeout says otherwise. */
export const DEFAULT_TIMEOUT_MS = 10_000;

export class UsageError extends Error {
  override name = 'UsageError';
}

/** Writes `chorus: message` to stderr and returns `code`, so commands can `return fail(…)`. */
export function fail(code: number, message: string): number {
  process.stderr.write(`chorus: ${message}\n`);
  return code;
}

type OptionsConfig = NonNullable<ParseArgsConfig['options']>;
type ParsedFlags<O extends OptionsConfig> = ReturnType<typeof parseArgs<{ args: string[]; allowPositionals: true; strict: true; options: typeof COMMON_OPTIONS & O }>>;

/**
 * Parses a command's flags (plus --help and --version) and positionals with `util.parseArgs`,
 * strictly, turning its errors into usage errors that name the command.
 */
export function parseFlags<const O extends OptionsConfig>(command: string, argv: readonly string[], options: O): ParsedFlags<O> {
  try {
    return parseArgs({ args: [...argv], allowPositionals: true, strict: true, options: { ...COMMON_OPTIONS, ...options } });
  } catch (error) {
    throw new UsageError(`${(error as Error).message}\nRun "chorus help ${command}" for usage.`);
  }
}

/** Rejects positionals past `max` ("chorus publish a b c"). */
export function expectPositionals(command: string, positionals: readonly string[], min: number, max: number, names: string): void {
  if (positionals.length < min) throw new UsageError(`${command} needs ${names}\nRun "chorus help ${command}" for usage.`);
  if (positionals.length > max) throw new UsageError(`unexpected argument "${positionals[max]}"\nRun "chorus help ${command}" for usage.`);
}

export function version(): string {
  return (createRequire(import.meta.url)('../../package.json') as { version: string }).version;
}

/** Help and version flags every command takes. */
const COMMON_OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' },
} as const;

/** Where the server is. */
export const SERVER_OPTIONS = {
  url: { type: 'string' },
  host: { type: 'string' },
  port: { type: 'string', short: 'p' },
  insecure: { type: 'boolean' },
  timeout: { type: 'string' },
} as const;

/** Which app: its key and secret, given directly or read from the server's config file. */
export const APP_OPTIONS = {
  key: { type: 'string' },
  secret: { type: 'string' },
  config: { type: 'string', short: 'c' },
  app: { type: 'string' },
} as const;

export interface ServerFlags {
  url?: string | undefined;
  host?: string | undefined;
  port?: string | undefined;
}

export interface AppFlags {
  key?: string | undefined;
  secret?: string | undefined;
  config?: string | undefined;
  app?: string | undefined;
}

/** The app a command acts for, and the config file it came from (if any). */
export interface AppCredentials {
  key: string | undefined;
  secret: string | undefined;
  /** The selected app of the config file, when one was read (for its tokenKeys). */
  app: AppConfigInput | undefined;
  /** The whole config, when one was read (its port and tls say where the server is). */
  config: ChorusConfigInput | undefined;
}

/**
 * Key and secret, each from the first source that has it: the --key/--secret flags, the
 * --config file, the CHORUS_KEY/CHORUS_SECRET environment variables, the CHORUS_CONFIG file.
 */
export async function resolveApp(flags: AppFlags): Promise<AppCredentials> {
  const env = process.env;
  const flagFile = flags.config !== undefined ? await readApp(flags.config, flags.app) : undefined;
  const envPath = env['CHORUS_CONFIG'];
  // CHORUS_CONFIG is read only when it is needed: for --app, or for a key or secret not given otherwise.
  const envFileNeeded = !flagFile && envPath && (flags.app !== undefined || (flags.key ?? env['CHORUS_KEY']) === undefined || (flags.secret ?? env['CHORUS_SECRET']) === undefined);
  const envFile = envFileNeeded ? await readApp(envPath, flags.app) : undefined;
  if (flags.app !== undefined && !flagFile && !envFile) throw new UsageError('--app needs a config file: --config FILE or CHORUS_CONFIG');
  const file = flagFile ?? envFile;
  return {
    key: flags.key ?? flagFile?.app?.key ?? env['CHORUS_KEY'] ?? envFile?.app?.key,
    secret: flags.secret ?? flagFile?.app?.secret ?? env['CHORUS_SECRET'] ?? envFile?.app?.secret,
    app: file?.app,
    config: file?.config,
  };
}

async function readApp(path: string, appId: string | undefined): Promise<{ app: AppConfigInput | undefined; config: ChorusConfigInput }> {
  const { ConfigError, loadConfigFile } = await import('../config.js');
  const config = await loadConfigFile(path);
  if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new ConfigError(`${path}: must be an object`);
  // A config without apps still says where the server is; its key and secret are serve's development app (.chorus/dev-app.json).
  const apps = Array.isArray(config.apps) ? config.apps : [];
  const app = appId === undefined ? apps[0] : apps.find((candidate) => candidate.id === appId);
  if (appId !== undefined && !app) throw new ConfigError(`${path}: no app with id "${appId}" (apps: ${apps.map((candidate) => candidate.id).join(', ') || 'none'})`);
  return { app, config };
}

/**
 * The server's base URL (http: or https:, no path): --url, else CHORUS_URL, else the config's
 * port and tls on localhost, else http://localhost:8080; then --host and --port replace those
 * parts. ws:// and wss:// are accepted and mean http:// and https://.
 */
export function resolveServerUrl(flags: ServerFlags, config?: ChorusConfigInput): URL {
  const configured = config ? `${config.tls ? 'https' : 'http'}://localhost:${config.port ?? 8080}` : undefined;
  const envUrl = process.env['CHORUS_URL'];
  const base = flags.url ?? envUrl ?? configured ?? DEFAULT_URL;
  // A bad value is reported under the name the user gave it, flag or environment variable.
  const from = flags.url !== undefined ? '--url' : envUrl !== undefined ? 'CHORUS_URL' : 'the server URL';
  let url: URL;
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(base) ? base : `http://${base}`);
  } catch {
    throw new UsageError(`${from} must be a URL like http://localhost:8080, got "${base}"`);
  }
  if (url.protocol === 'ws:') url.protocol = 'http:';
  if (url.protocol === 'wss:') url.protocol = 'https:';
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`${from} must be http(s):// or ws(s)://, got "${base}"`);
  if (flags.host !== undefined) url.hostname = flags.host;
  if (flags.port !== undefined) url.port = String(parsePort(flags.port, `--port ${flags.port}`));
  url.pathname = url.pathname.replace(/\/+$/, '');
  url.search = '';
  url.hash = '';
  return url;
}

/** `source` is where the value came from, as the user wrote it: `--port 80x` or `CHORUS_PORT=80x`. */
export function parsePort(value: string, source: string): number {
  if (!/^\d+$/.test(value) || Number(value) > 65535) throw new UsageError(`${source}: must be a number from 0 to 65535`);
  return Number(value);
}

/** A non-negative integer number of milliseconds. */
export function parseMs(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value)) throw new UsageError(`--${flag} takes milliseconds (a whole number), got "${value}"`);
  return Number(value);
}

/** Redacts credentials in a URL's query before it is printed. */
export function displayUrl(url: string): string {
  try {
    const parsed = new URL(url);
    for (const name of ['jwt', 'token', 'secret']) if (parsed.searchParams.has(name)) parsed.searchParams.set(name, '***');
    return parsed.toString().replace(/=(?=&|$)/g, '');
  } catch {
    return url;
  }
}
