/**
 * The `chorus` command line. `chorus serve` starts a server; more commands arrive with later
 * issues. Exit codes: 0 success, 1 runtime failure (port in use…), 2 bad usage or bad config.
 */
import { parseArgs } from 'node:util';
import { createRequire } from 'node:module';
import { ConfigError, loadConfigFile, resolveConfig, type ChorusConfigInput } from './config.js';
import { EXAMPLE_CHANNEL } from './http/router.js';
import { ChorusServer } from './server.js';

const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;

const USAGE = `Usage: chorus <command> [options]

Commands:
  serve              Start the server (the default when no command is given)

Options for serve:
  -p, --port N        Port to listen on (env CHORUS_PORT; default 8080; 0 picks a free port)
      --host H        Interface to bind (default: all)
  -c, --config FILE   JSON or YAML config file (env CHORUS_CONFIG); see docs/configuration.md
      --tls-cert FILE PEM certificate: serve https:// and wss:// (with --tls-key)
      --tls-key FILE  PEM private key for --tls-cert
      --log-level L   fatal, error, warn, info, debug, trace or silent (default info)
  -h, --help          Show this help
  -v, --version       Show the version

Without a config, one development app with a fresh key and secret is generated and printed.
Exit codes: 0 success, 1 runtime failure (for example the port is in use), 2 bad usage or config.`;

class UsageError extends Error {}

export async function main(argv: readonly string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: {
        port: { type: 'string', short: 'p' },
        host: { type: 'string' },
        config: { type: 'string', short: 'c' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        'log-level': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
    });
  } catch (error) {
    return fail(EXIT_USAGE, `${(error as Error).message}\nRun "chorus --help" for usage.`);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (values.version) {
    const pkg = createRequire(import.meta.url)('../package.json') as { version: string };
    process.stdout.write(`${pkg.version}\n`);
    return 0;
  }
  const command = positionals[0] ?? 'serve';
  if (command !== 'serve' || positionals.length > 1) {
    return fail(EXIT_USAGE, `unknown command "${positionals.join(' ')}"\nRun "chorus --help" for usage.`);
  }

  const configPath = values.config ?? process.env['CHORUS_CONFIG'];
  let input: ChorusConfigInput;
  try {
    input = await buildConfigInput(configPath, values);
  } catch (error) {
    if (error instanceof ConfigError || error instanceof UsageError) return fail(EXIT_USAGE, error.message);
    throw error;
  }
  return serve(input, configPath ?? 'config');
}

async function buildConfigInput(
  configPath: string | undefined,
  values: { port?: string; host?: string; 'log-level'?: string; 'tls-cert'?: string; 'tls-key'?: string },
): Promise<ChorusConfigInput> {
  const input: ChorusConfigInput = configPath ? await loadConfigFile(configPath) : {};
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new ConfigError(`${configPath}: must be an object`);
  const port = values.port ?? process.env['CHORUS_PORT'];
  if (port !== undefined) {
    if (!/^\d+$/.test(port) || Number(port) > 65535) throw new UsageError(`--port must be a number from 0 to 65535, got "${port}"`);
    input.port = Number(port);
  }
  if (values.host !== undefined) input.host = values.host;
  if (values['log-level'] !== undefined) input.logLevel = values['log-level'] as ChorusConfigInput['logLevel'];
  const cert = values['tls-cert'];
  const key = values['tls-key'];
  if ((cert === undefined) !== (key === undefined)) throw new UsageError('--tls-cert and --tls-key go together');
  if (cert !== undefined && key !== undefined) input.tls = { cert, key };
  return input;
}

/** `source` names the config in error messages (the file path when there is one). */
async function serve(input: ChorusConfigInput, source: string): Promise<number> {
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
      server.close().then(() => resolve(0), () => resolve(EXIT_FAILURE));
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
  if (!stopping) printBanner(server, generatedApp);
  return stopped;
}

function printBanner(server: ChorusServer, generatedApp: boolean): void {
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
    `    ${ws}://${base}/v4/${EXAMPLE_CHANNEL}?api_key=${app.key}&notify_self`,
  ];
  if (server.config.examples) lines.push(`  Example pages: ${server.scheme}://${base}/examples/`);
  if (generatedApp) {
    const body = JSON.stringify({ key: app.key, secret: app.secret, channelId: EXAMPLE_CHANNEL, message: 'Hello from REST' });
    lines.push('  Publish from a backend:', `    curl -X POST ${server.scheme}://${base}/api/publish -H 'content-type: application/json' -d '${body}'`);
  }
  process.stdout.write(`${lines.join('\n')}\n\n`);
}

function fail(code: number, message: string): number {
  process.stderr.write(`chorus: ${message}\n`);
  return code;
}
