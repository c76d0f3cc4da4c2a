/**
 * `chorus serve`: start a server from flags, environment and an optional config file, with the
 * development app of dev-app.ts when the config names no apps, and logs for whoever reads them:
 * short coloured lines on a terminal, JSON lines otherwise.
 */
import { dirname, join, resolve } from 'node:path';
import { createHmac } from 'node:crypto';
import type { Logger } from 'pino';
import type { ChorusConfigInput, LogLevel } from '../config.js';
import { configSchema } from '../config-schema.js';
import type { ChorusServer } from '../server.js';
import { EXIT_FAILURE, EXIT_USAGE, UsageError, expectPositionals, fail, parseFlags, parsePort } from './args.js';
import type { DevApp } from './dev-app.js';

export const SERVE_USAGE = `Usage: chorus serve [options]

Starts a Chorus server: raw channels on /v4/CHANNEL, protocol v1 on /v1/connect, REST publish on
/api/publish, example pages on /examples/. On SIGTERM or Ctrl-C it drains, then stops: clients
are told to reconnect elsewhere (raw 1001, v1 disconnect advice, Pusher 4200) a few at a time
over drainWindowMs (default 5 s; see docs/cluster.md). A second signal exits at once.

Options:
  -p, --port N          Port to listen on (env CHORUS_PORT; default 8080; 0 picks a free port)
      --host H          Interface to bind (default: all)
  -c, --config FILE     JSON or YAML config file (env CHORUS_CONFIG); see docs/configuration.md
      --tls-cert FILE   PEM certificate: serve https:// and wss:// (with --tls-key)
      --tls-key FILE    PEM private key for --tls-cert
      --redis URL       Keep channels, history and presence in Redis (redis:// or rediss://),
                        so several servers share them (cluster mode; see docs)
      --log-level L     fatal, error, warn, info, debug, trace or silent (default info)
      --log-format F    pretty (short lines, coloured on a colour terminal) or json (one JSON
                        object a line) (env CHORUS_LOG_FORMAT; default pretty on a terminal,
                        json otherwise)
  -h, --help            Show this help

Flags win over the environment, which wins over the config file.
Without apps in a config, a development app is generated at the first start, kept in
.chorus/dev-app.json of the working directory (the same key at every start; delete the file
to get a new one) and printed.

Exit codes:
  0  stopped by SIGTERM or SIGINT (Ctrl-C) after a clean shutdown
  1  runtime failure (for example the port is in use)
  2  bad usage or bad config (one line names the field)`;

export async function serveCommand(argv: readonly string[]): Promise<number> {
  const { values, positionals } = parseFlags('serve', argv, {
    port: { type: 'string', short: 'p' },
    host: { type: 'string' },
    config: { type: 'string', short: 'c' },
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
    redis: { type: 'string' },
    'log-level': { type: 'string' },
    'log-format': { type: 'string' },
  });
  expectPositionals('serve', positionals, 0, 0, '');
  const overrides = parseOverrides(values);
  const logFormat = resolveLogFormat(values['log-format']);
  const configPath = values.config ?? env('CHORUS_CONFIG');
  // ConfigError (unreadable or invalid file) reaches main(), which exits 2 with its one line.
  const { ConfigError, loadConfigFile, resolveConfig } = await import('../config.js');
  const file: ChorusConfigInput = configPath ? await loadConfigFile(configPath) : {};
  if (typeof file !== 'object' || file === null || Array.isArray(file)) throw new ConfigError(`${configPath}: must be an object`);
  // The file is checked as written: a bad value in it is reported even where a flag overrides it.
  if (configPath) resolveConfig(file, configPath);
  const input: ChorusConfigInput = { ...file, ...overrides };
  let devApp: DevApp | undefined;
  if (input.apps === undefined) {
    const { loadDevApp } = await import('./dev-app.js');
    devApp = await loadDevApp();
    input.apps = [devApp.app];
    // The development dashboard's password comes from the kept app's secret: the same at every
    // start, a new one with a new app, and nothing more to store.
    input.admin ??= { password: developmentAdminPassword(devApp.app.secret) };
  }
  // Apps added or changed through the admin API are kept next to the config (or the development app).
  if (input.appsFile === undefined) {
    const { DEV_APP_DIR } = await import('./dev-app.js');
    input.appsFile = configPath ? join(dirname(resolve(configPath)), 'chorus-apps.json') : join(DEV_APP_DIR, 'apps.json');
  }
  return serve(input, configPath ?? 'config', devApp, logFormat);
}

const LOG_LEVELS: readonly string[] = configSchema.properties.logLevel.enum;

type ServeFlags = { port?: string; host?: string; redis?: string; 'log-level'?: string; 'tls-cert'?: string; 'tls-key'?: string };

/**
 * What flags and environment set, each value checked on its own so that an error names where it
 * came from (`--port x`, `CHORUS_PORT=x`), not the config it would have been merged into.
 */
function parseOverrides(values: ServeFlags): ChorusConfigInput {
  const input: ChorusConfigInput = {};
  const envPort = env('CHORUS_PORT');
  if (values.port !== undefined) input.port = parsePort(values.port, `--port ${values.port}`);
  else if (envPort !== undefined) input.port = parsePort(envPort, `CHORUS_PORT=${envPort}`);
  if (values.host !== undefined) {
    if (values.host === '') throw new UsageError('--host: must not be empty (leave it out to listen on every interface)');
    input.host = values.host;
  }
  const level = values['log-level'];
  if (level !== undefined) {
    if (!LOG_LEVELS.includes(level)) throw new UsageError(`--log-level ${level}: must be one of ${LOG_LEVELS.join(', ')}`);
    input.logLevel = level as LogLevel;
  }
  const cert = values['tls-cert'];
  const key = values['tls-key'];
  if ((cert === undefined) !== (key === undefined)) throw new UsageError('--tls-cert and --tls-key go together');
  if (cert === '' || key === '') throw new UsageError(`--tls-${cert === '' ? 'cert' : 'key'}: must be a file path`);
  if (cert !== undefined && key !== undefined) input.tls = { cert, key };
  if (values.redis !== undefined) {
    if (!/^rediss?:\/\/\S+$/.test(values.redis)) throw new UsageError(`--redis takes a redis:// or rediss:// URL, got "${values.redis}"`);
    input.engine = { type: 'redis', url: values.redis };
  }
  return input;
}

type LogFormat = 'json' | 'pretty';

/** --log-format, else CHORUS_LOG_FORMAT, else pretty for a person at a terminal and JSON for anything else. */
function resolveLogFormat(flag: string | undefined): LogFormat {
  const fromEnv = env('CHORUS_LOG_FORMAT');
  if (flag === undefined && fromEnv === undefined) return process.stdout.isTTY ? 'pretty' : 'json';
  const [value, source] = flag !== undefined ? [flag, `--log-format ${flag}`] : [fromEnv as string, `CHORUS_LOG_FORMAT=${fromEnv}`];
  if (value !== 'json' && value !== 'pretty') throw new UsageError(`${source}: must be json or pretty`);
  return value;
}

/** An environment variable; set but empty counts as not set. */
function env(name: string): string | undefined {
  const value = process.env[name];
  return value === '' ? undefined : value;
}

async function createLogger(level: LogLevel, format: LogFormat): Promise<Logger> {
  const { pino } = await import('pino');
  if (format === 'json') return pino({ level });
  const { default: pretty } = await import('pino-pretty');
  // sync: lines are written as they are logged, so the last ones ("stopped") are not lost at exit.
  // Colours follow the terminal (colorette: a TTY with a TERM, NO_COLOR, FORCE_COLOR).
  return pino({ level }, pretty({ sync: true, translateTime: 'SYS:HH:MM:ss', ignore: 'pid,hostname', singleLine: true }));
}

/** `source` names the config in error messages (the file path when there is one). */
async function serve(input: ChorusConfigInput, source: string, devApp: DevApp | undefined, logFormat: LogFormat): Promise<number> {
  // The server loads only here, so that the client commands start fast.
  const { ConfigError, resolveConfig } = await import('../config.js');
  const { ChorusServer } = await import('../server.js');
  const { EXAMPLE_CHANNEL } = await import('../http/router.js');
  let server: ChorusServer;
  try {
    const config = resolveConfig(input, source);
    server = new ChorusServer(config, { logger: await createLogger(config.logLevel, logFormat) });
  } catch (error) {
    if (error instanceof ConfigError) return fail(EXIT_USAGE, error.message);
    throw error;
  }
  // Signal handlers go in before listening: a signal that arrives while starting still shuts
  // down cleanly instead of killing the process.
  let stopping = false;
  const stopped = new Promise<number>((resolve) => {
    const stop = (signal: NodeJS.Signals): void => {
      if (stopping) {
        process.stderr.write(`chorus: ${signal} again, exiting now\n`);
        process.exit(EXIT_FAILURE);
      }
      stopping = true;
      server.log.info({ signal, hint: `${signal === 'SIGINT' ? 'Ctrl-C' : signal} again to exit at once` }, 'shutting down');
      server.close().then(
        () => resolve(0),
        () => resolve(EXIT_FAILURE),
      );
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
  try {
    await server.start();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return fail(EXIT_FAILURE, code === 'EADDRINUSE' ? `port ${server.config.port} is already in use; pick another with --port` : String(error));
  }
  if (!stopping) printBanner(server, devApp, EXAMPLE_CHANNEL);
  return stopped;
}

function printBanner(server: ChorusServer, devApp: DevApp | undefined, exampleChannel: string): void {
  const base = `localhost:${server.port}`;
  const ws = server.scheme === 'https' ? 'wss' : 'ws';
  const app = server.config.apps[0];
  if (!app) return;
  const lines = [
    '',
    `Chorus is running on ${server.scheme}://${base}`,
    devApp ? `  Development app "${app.id}" ${devAppOrigin(devApp)}` : `  App "${app.id}"${server.config.apps.length > 1 ? ` and ${server.config.apps.length - 1} more` : ''}`,
    `    key:    ${app.key}`,
    ...(devApp ? [`    secret: ${app.secret}`] : []),
    '  Connect (browser console, wscat, your code):',
    `    ${ws}://${base}/v4/${exampleChannel}?api_key=${app.key}&notify_self`,
  ];
  if (server.config.examples) lines.push(`  Example pages: ${server.scheme}://${base}/examples/`);
  const { admin } = server.config;
  if (admin) lines.push(devApp ? `  Admin dashboard: ${server.scheme}://${base}/admin/ (user ${admin.user}, password ${admin.password})` : `  Admin dashboard: ${server.scheme}://${base}/admin/ (user ${admin.user}, the password in your config)`);
  if (devApp) {
    const body = JSON.stringify({ key: app.key, secret: app.secret, channelId: exampleChannel, message: 'Hello from REST' });
    lines.push('  Publish from a backend:', `    curl -X POST ${server.scheme}://${base}/api/publish -H 'content-type: application/json' -d '${body}'`);
  }
  process.stdout.write(`${lines.join('\n')}\n\n`);
}

function developmentAdminPassword(secret: string): string {
  return createHmac('sha256', secret).update('chorus development admin').digest('base64url').slice(0, 24);
}

function devAppOrigin(devApp: DevApp): string {
  switch (devApp.origin) {
    case 'loaded':
      return `(kept in ${devApp.path}; delete it to get a new key)`;
    case 'created':
      return `(new; kept in ${devApp.path} for the next starts; delete it to get a new key)`;
    case 'unsaved':
      return `(for this run only: cannot save ${devApp.path} (${devApp.problem}); pass --config to keep your own keys)`;
  }
}
