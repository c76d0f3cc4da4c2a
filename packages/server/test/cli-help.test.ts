/** `chorus --help`, `chorus help <command>`, `<command> --help`, versions and usage errors. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { repoRoot, run } from './cli-helpers.ts';

const version = (JSON.parse(readFileSync(`${repoRoot}/packages/server/package.json`, 'utf8')) as { version: string }).version;

/** Each command's help must name these (the flags a user needs, and the exit codes). */
const FLAGS: Record<string, string[]> = {
  serve: ['--port N', '--host H', '--config FILE', '--tls-cert FILE', '--tls-key FILE', '--redis URL', 'cluster mode', '--log-level L', '--log-format F', 'CHORUS_PORT', 'CHORUS_CONFIG', 'CHORUS_LOG_FORMAT', '.chorus/dev-app.json'],
  connect: ['URL', 'CHANNEL', '--json', '--header K:V', '--origin ORIGIN', '--jwt TOKEN', '--send TEXT', '--wait MS', '--close-after', '--close', '--insecure', '--timeout MS', '--url URL', '--key KEY', '<binary', 'Ctrl-D', '1006', '4000-4999'],
  publish: ['CHANNEL', 'MESSAGE', '"-" reads', '--json', '--url URL', '--host H', '--port N', '--key KEY', '--secret SECRET', '--config FILE', '--app ID', '--insecure', 'CHORUS_URL', 'CHORUS_KEY', 'CHORUS_SECRET', 'published to CHANNEL (offset N)', 'HTTP 401'],
  token: ['--channel NAME', '--user ID', '--info JSON', '--ttl SPAN', '--kid KID', '--json', '--secret SECRET', '--config FILE', '--app ID', 'chorus:connection', 'CHORUS_SECRET'],
  secret: ['--bytes N', 'base64url', 'SECRET=$(chorus secret)'],
  bench: ['suite', 'fanout', '--json', '--no-progress', '-- --help', 'BENCH_', 'CHORUS_BENCH_DIR'],
};

describe('chorus help', () => {
  it('chorus --help lists every command, the shared flags, the environment and the exit codes', async () => {
    const r = run(['--help']);
    assert.equal(await r.exited(), 0);
    const out = r.stdout();
    for (const command of ['serve', 'connect URL|CHANNEL', 'publish CHANNEL MESSAGE', 'stats', 'token', 'secret', 'bench [NAME]', 'help [COMMAND]']) assert.match(out, new RegExp(`\\n  ${command.replace(/[|[\]]/g, '\\$&')}\\s`), command);
    for (const text of ['--url URL', '--host H', '--port N', '--key KEY', '--secret SECRET', '--config FILE', '--app ID', '--help', '--version', 'CHORUS_URL', 'CHORUS_KEY', 'CHORUS_SECRET', 'CHORUS_CONFIG', 'Exit codes: 0']) {
      assert.ok(out.includes(text), `global help mentions ${text}`);
    }
    const bare = run(['help']);
    assert.equal(await bare.exited(), 0);
    assert.equal(bare.stdout(), out);
  });

  for (const [command, flags] of Object.entries(FLAGS)) {
    it(`chorus ${command} --help (and chorus help ${command}) shows its usage, flags and exit codes`, async () => {
      const [r, viaHelp, short] = [run([command, '--help']), run(['help', command]), run([command, '-h'])];
      assert.equal(await r.exited(), 0);
      assert.equal(r.stderr(), '');
      assert.match(r.stdout(), new RegExp(`^Usage: chorus ${command}\\b`));
      assert.match(r.stdout(), /Exit codes/);
      for (const flag of flags) assert.ok(r.stdout().includes(flag), `${command} --help mentions ${flag}`);
      assert.ok(r.stdout().includes('-h, --help'));
      assert.equal(await viaHelp.exited(), 0);
      assert.equal(viaHelp.stdout(), r.stdout());
      assert.equal(await short.exited(), 0);
      assert.equal(short.stdout(), r.stdout());
    });
  }

  it('help wins over missing arguments: chorus publish --help needs no CHANNEL', async () => {
    const r = run(['publish', 'room', '--help']);
    assert.equal(await r.exited(), 0);
    assert.match(r.stdout(), /^Usage: chorus publish/);
  });

  it('-v and --version print the package version, on every command', async () => {
    const runs = [['-v'], ['--version'], ['connect', '-v'], ['token', '--version'], ['secret', '-v'], ['bench', '-v']].map((args) => ({ args, r: run(args) }));
    for (const { args, r } of runs) {
      assert.equal(await r.exited(), 0, args.join(' '));
      assert.equal(r.stdout(), `${version}\n`);
    }
  });

  it('exits 2 with a pointer to the help for an unknown command, flag or help topic', async () => {
    let r = run(['frobnicate']);
    assert.equal(await r.exited(), 2);
    assert.match(r.stderr(), /^chorus: unknown command "frobnicate"\nRun "chorus --help" for usage\.\n$/);
    r = run(['help', 'frobnicate']);
    assert.equal(await r.exited(), 2);
    assert.match(r.stderr(), /no help for "frobnicate"; commands: serve, connect, publish, stats, token, secret, bench/);
    const runs = ['connect', 'publish', 'token', 'secret', 'serve'].map((command) => ({ command, r: run([command, '--bogus']) }));
    for (const { command, r: bogus } of runs) {
      assert.equal(await bogus.exited(), 2, command);
      assert.match(bogus.stderr(), new RegExp(`Unknown option '--bogus'.*\\nRun "chorus help ${command}" for usage\\.`, 's'));
    }
  });

  it('exits 2 when a command misses its arguments or gets too many', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['connect'], /connect needs a ws:\/\/ or wss:\/\/ URL, or a channel name/],
      [['publish', 'room'], /publish needs CHANNEL and MESSAGE/],
      [['publish', 'room', 'a', 'b'], /unexpected argument "b"/],
      [['serve', 'extra'], /unexpected argument "extra"/],
      [['secret', 'extra'], /unexpected argument "extra"/],
      [['token'], /token needs --channel NAME \(channel token\) or --user ID \(connection token\)/],
    ];
    const runs = cases.map(([args, message]) => ({ args, message, r: run(args) }));
    for (const { args, message, r } of runs) {
      assert.equal(await r.exited(), 2, args.join(' '));
      assert.match(r.stderr(), message);
    }
  });

  it('serve --redis takes a redis:// URL (exit 2 otherwise)', async () => {
    const r = run(['serve', '--redis', 'localhost:6379']);
    assert.equal(await r.exited(), 2);
    assert.match(r.stderr(), /--redis takes a redis:\/\/ or rediss:\/\/ URL, got "localhost:6379"/);
  });
});
