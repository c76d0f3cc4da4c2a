/**
 * The `chorus` command line: `serve`, `connect`, `publish`, `stats`, `token`, `secret`, `bench`, `help`. One file
 * per command; args.ts holds what they share (exit codes, server and app flags). docs/cli.md is
 * the user-facing reference, and every command's `--help` is enough to use it.
 *
 * Exit codes, for every command: 0 success, 1 runtime failure, 2 bad usage or bad config.
 */
import { EXIT_USAGE, UsageError, fail, version } from './args.js';
import { BENCH_USAGE, benchCommand } from './bench.js';
import { CONNECT_USAGE, connectCommand } from './connect.js';
import { PUBLISH_USAGE, publishCommand } from './publish.js';
import { SECRET_USAGE, secretCommand } from './secret.js';
import { SERVE_USAGE, serveCommand } from './serve.js';
import { STATS_USAGE, statsCommand } from './stats.js';
import { TOKEN_USAGE, tokenCommand } from './token.js';

export const USAGE = `Usage: chorus <command> [options]

Commands:
  serve                     Start a server (the default when no command is given)
  connect URL|CHANNEL       Interactive WebSocket client: prints frames, sends the lines you type
  publish CHANNEL MESSAGE   Publish a message through the REST API
  stats                     Live counts of a server, from its admin API
  token                     Mint a channel or connection JWT (prints only the token)
  secret                    Print a new random app secret for the config file
  bench [NAME]              Run the benchmarks of a source checkout, with a progress bar
  help [COMMAND]            Show a command's help

Where the server is (connect, publish, stats):
      --url URL             Base URL (env CHORUS_URL; default http://localhost:8080)
      --host H              Replace the URL's host
  -p, --port N              Replace the URL's port
      --insecure            Accept a self-signed TLS certificate (https://, wss://)
      --timeout MS          Give up connecting after MS (default 10000)

Which app (publish, token; connect CHANNEL):
      --key KEY             The app's public key (env CHORUS_KEY)
      --secret SECRET       The app's secret (env CHORUS_SECRET); never printed
  -c, --config FILE         Take key and secret from this server config file (env CHORUS_CONFIG)
      --app ID              With a config file: the app with this id (default: the first)

Every command:
  -h, --help                Show help (also "chorus help <command>")
  -v, --version             Show the version

Exit codes: 0 success; 1 runtime failure (server unreachable, request refused, connection
closed abnormally or with an error code); 2 bad usage or bad config.
Run "chorus help <command>" for its options and exit codes; docs/cli.md has examples.`;

interface Command {
  usage: string;
  run: (argv: readonly string[]) => Promise<number>;
}

const COMMANDS: Record<string, Command> = {
  serve: { usage: SERVE_USAGE, run: serveCommand },
  connect: { usage: CONNECT_USAGE, run: connectCommand },
  publish: { usage: PUBLISH_USAGE, run: publishCommand },
  stats: { usage: STATS_USAGE, run: statsCommand },
  token: { usage: TOKEN_USAGE, run: tokenCommand },
  secret: { usage: SECRET_USAGE, run: secretCommand },
  bench: { usage: BENCH_USAGE, run: benchCommand },
};

export async function main(argv: readonly string[]): Promise<number> {
  const [first, ...rest] = argv;
  try {
    if (first === undefined) return await run('serve', []);
    if (first === 'help') return help(rest);
    if (Object.hasOwn(COMMANDS, first)) return await run(first, rest);
    if (first === '-h' || first === '--help') return print(USAGE);
    if (first === '-v' || first === '--version') return print(version());
    // `chorus --port 0` (flags without a command) is `chorus serve --port 0`.
    if (first.startsWith('-')) return await run('serve', argv);
    return fail(EXIT_USAGE, `unknown command "${first}"\nRun "chorus --help" for usage.`);
  } catch (error) {
    // ConfigError by name: config.js (and its schema compiler) loads only for commands that read a config.
    if (error instanceof UsageError || (error instanceof Error && error.name === 'ConfigError')) return fail(EXIT_USAGE, error.message);
    throw error;
  }
}

async function run(name: string, argv: readonly string[]): Promise<number> {
  const command = COMMANDS[name] as Command;
  // Help and version are answered before anything else is checked, for every command.
  // `bench` passes everything after `--` to the benchmark, whose own --help that is.
  const own = name === 'bench' && argv.includes('--') ? argv.slice(0, argv.indexOf('--')) : argv;
  if (own.includes('-h') || own.includes('--help')) return print(command.usage);
  if (own.includes('-v') || own.includes('--version')) return print(version());
  return command.run(argv);
}

function help(args: readonly string[]): number {
  const [name, ...extra] = args;
  if (name === undefined) return print(USAGE);
  if (extra.length > 0 || !Object.hasOwn(COMMANDS, name)) {
    return fail(EXIT_USAGE, `no help for "${args.join(' ')}"; commands: ${Object.keys(COMMANDS).join(', ')}`);
  }
  return print((COMMANDS[name] as Command).usage);
}

function print(text: string): number {
  process.stdout.write(`${text}\n`);
  return 0;
}
