/** `chorus serve`: start a server from flags, environment and an optional config file. */
import type { ChorusConfigInput } from '../config.js';
import type { ChorusServer } from '../server.js';
import { EXIT_FAILURE, EXIT_USAGE, UsageError, expectPositionals, fail, parseFlags, parsePort } from './args.js';

export const SERVE_USAGE = `Usage: chorus serve [options]

Starts a Chorus server: raw channels on /v4/CHANNEL, protocol v1 on /v1/connect, REST publish on
/api/publish, example pages on /examples/. Stops cleanly on SIGTERM or Ctrl-C (clients get 1001).

Options:
  -p, --port N          Port to listen on (env CHORUS_PORT; default 8080; 0 picks a free port)
      --host H          Interface to bind (default: all)
  -c, --config FILE     JSON or YAML config file (env CHORUS_CONFIG); see docs/configuration.md
      --tls-cert FILE   PEM certificate: serve https:// and wss:// (with --tls-key)
      --tls-key FILE    PEM private key for --tls-cert
      --redis URL       Keep channels, history and presence in Redis (redis:// or rediss://),
                        so several servers share them (cluster mode; see docs)
      --log-level L     fatal, error, warn, info, debug, trace or silent (default info)
  -h, --help            Show this help

Flags win over the environment, which wins over the config file.
Without a config, one development app with a fresh key and secret is generated and printed.

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
  });
  expectPositionals('serve', positionals, 0, 0, '');
  const configPath = values.config ?? process.env['CHORUS_CONFIG'];
  // ConfigError (unreadable or invalid file) reaches main(), which exits 2 with its one line.
  const input = await buildConfigInput(configPath, values);
  return serve(input, configPath ?? 'config');
}

async function buildConfigInput(
  configPath: string | undefined,
  values: { port?: string; host?: string; redis?: string; 'log-level'?: string; 'tls-cert'?: string; 'tls-key'?: string },
): Promise<ChorusConfigInput> {
  const { ConfigError, loadConfigFile } = await import('../config.js');
  const input: ChorusConfigInput = configPath ? await loadConfigFile(configPath) : {};
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new ConfigError(`${configPath}: must be an object`);
  const port = values.port ?? process.env['CHORUS_PORT'];
  if (port !== undefined) input.port = parsePort(port);
  if (values.host !== undefined) input.host = values.host;
  if (values['log-level'] !== undefined) input.logLevel = values['log-level'] as ChorusConfigInput['logLevel'];
  const cert = values['tls-cert'];
  const key = values['tls-key'];
  if ((cert === undefined) !== (key === undefined)) throw new UsageError('--tls-cert and --tls-key go together');
  if (cert !== undefined && key !== undefined) input.tls = { cert, key };
  if (values.redis !== undefined) {
    if (!/^rediss?:\/\/\S+$/.test(values.redis)) throw new UsageError(`--redis takes a redis:// or rediss:// URL, got "${values.redis}"`);
    input.engine = { type: 'redis', url: values.redis };
  }
  return input;
}

/** `source` names the config in error messages (the file path when there is one). */
async function serve(input: ChorusConfigInput, source: string): Promise<number> {
  // The server loads only here, so that the client commands start fast.
  const { ConfigError, resolveConfig } = await import('../config.js');
  const { ChorusServer } = await import('../server.js');
  const { EXAMPLE_CHANNEL } = await import('../http/router.js');
  const generatedApp = input.apps === undefined;
  let server: ChorusServer;
  try {
    server = new ChorusServer(resolveConfig(input, source));
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
      server.log.info({ signal }, 'shutting down');
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
  if (!stopping) printBanner(server, generatedApp, EXAMPLE_CHANNEL);
  return stopped;
}

function printBanner(server: ChorusServer, generatedApp: boolean, exampleChannel: string): void {
  const base = `localhost:${server.port}`;
  const ws = server.scheme === 'https' ? 'wss' : 'ws';
  const app = server.config.apps[0];
  if (!app) return;
  const lines = [
    '',
    `Chorus is running on ${server.scheme}://${base}`,
    generatedApp
      ? `  Development app "${app.id}" (generated for this run; pass --config to keep your own keys)`
      : `  App "${app.id}"${server.config.apps.length > 1 ? ` and ${server.config.apps.length - 1} more` : ''}`,
    `    key:    ${app.key}`,
    ...(generatedApp ? [`    secret: ${app.secret}`] : []),
    '  Connect (browser console, wscat, your code):',
    `    ${ws}://${base}/v4/${exampleChannel}?api_key=${app.key}&notify_self`,
  ];
  if (server.config.examples) lines.push(`  Example pages: ${server.scheme}://${base}/examples/`);
  if (generatedApp) {
    const body = JSON.stringify({ key: app.key, secret: app.secret, channelId: exampleChannel, message: 'Hello from REST' });
    lines.push('  Publish from a backend:', `    curl -X POST ${server.scheme}://${base}/api/publish -H 'content-type: application/json' -d '${body}'`);
  }
  process.stdout.write(`${lines.join('\n')}\n\n`);
}
