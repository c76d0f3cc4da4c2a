/** The `chorus` command as a user runs it: a real process, real flags, real signals. */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { TestClient, withTimeout } from './helpers.ts';

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const chorusBin = join(repoRoot, 'node_modules/.bin/chorus');
const dir = mkdtempSync(join(tmpdir(), 'chorus-cli-'));
const running: ChildProcess[] = [];
after(() => {
  for (const child of running) child.kill('SIGKILL');
});

function configFile(name: string, content: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

interface Run {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exit: Promise<number | null>;
}

/** Runs in the temp folder, where `serve` keeps its development app (.chorus/), not in the repository. */
function run(args: string[], env: Record<string, string> = {}): Run {
  const child = spawn(chorusBin, args, { cwd: dir, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  running.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, stdout: () => stdout, stderr: () => stderr, exit };
}

/** Waits for the start banner and returns the port it names. */
async function started(r: Run): Promise<number> {
  return withTimeout(
    new Promise<number>((resolve, reject) => {
      const check = (): void => {
        const match = /Chorus is running on http:\/\/localhost:(\d+)/.exec(r.stdout());
        if (match) resolve(Number(match[1]));
      };
      r.child.stdout?.on('data', check);
      void r.exit.then((code) => reject(new Error(`exited with ${code}: ${r.stderr()}`)));
      check();
    }),
    10_000,
    'server did not start',
  );
}

const app = { id: 'demo', key: 'demo-key-123', secret: 'demo-secret-0123456789', allowedOrigins: ['*'] };

describe('chorus serve', () => {
  it('without a config generates a dev app whose printed URL works', async () => {
    const r = run(['serve', '--port', '0', '--log-level', 'silent']);
    const port = await started(r);
    const url = /(ws:\/\/localhost:\d+\/v4\/channel_123\?api_key=\S+&notify_self)/.exec(r.stdout())?.[1];
    assert.ok(url, r.stdout());
    assert.match(r.stdout(), /secret: \S+/);
    const client = await TestClient.open(url.replace('localhost', '127.0.0.1'));
    client.ws.send('Hello, server!');
    assert.equal((await client.messages(1))[0]?.text, 'Hello, server!', 'notify_self echoes');
    assert.equal(port, Number(new URL(url).port));
    client.close();
    r.child.kill('SIGTERM');
    assert.equal(await r.exit, 0);
  });

  it('reads --config (JSON) and --port; never prints a configured secret', async () => {
    const r = run(['serve', '--port', '0', '--config', configFile('ok.json', { port: 1, apps: [app], logLevel: 'silent' })]);
    const port = await started(r);
    assert.notEqual(port, 1, '--port wins over the file');
    assert.match(r.stdout(), /api_key=demo-key-123&notify_self/);
    assert.doesNotMatch(r.stdout(), /demo-secret/);
    r.child.kill('SIGINT');
    assert.equal(await r.exit, 0);
  });

  it('reads CHORUS_CONFIG (YAML) and CHORUS_PORT', async () => {
    const yaml = configFile('ok.yaml', `logLevel: silent\napps:\n  - id: demo\n    key: ${app.key}\n    secret: ${app.secret}\n`);
    const r = run(['serve'], { CHORUS_CONFIG: yaml, CHORUS_PORT: '0' });
    const port = await started(r);
    const res = await fetch(`http://127.0.0.1:${port}/health`);
    assert.equal(res.status, 200);
    r.child.kill('SIGTERM');
    assert.equal(await r.exit, 0);
  });

  const invalid: Array<[string, unknown, RegExp]> = [
    ['a bad field type', { apps: [{ ...app, key: 42 }] }, /^chorus: .*bad-type\.json: apps\[0\]\.key must be string\n$/],
    ['a missing secret', { apps: [{ id: 'x', key: 'key-12345678' }] }, /apps\[0\]\.secret is required\n$/],
    ['an unknown option', { prot: 8080 }, /prot is not a known option/],
    ['a bad port', { port: 70000 }, /port must be <= 65535/],
    ['duplicate keys', { apps: [app, { ...app, id: 'demo2' }] }, /apps\[1\]\.key "demo-key-123" is used by another app/],
    ['a bad origin', { apps: [{ ...app, allowedOrigins: ['example.com'] }] }, /apps\[0\]\.allowedOrigins has "example.com"/],
    ['broken JSON', '{"port": 80', /not valid JSON/],
  ];
  for (const [name, content, message] of invalid) {
    it(`exits 2 with one line naming the problem for ${name}`, async () => {
      const file = configFile(`${name === 'a bad field type' ? 'bad-type' : name.replace(/\W+/g, '-')}.json`, content);
      const r = run(['serve', '--config', file]);
      assert.equal(await r.exit, 2);
      assert.match(r.stderr(), message);
      assert.equal(r.stderr().trim().split('\n').length, 1, r.stderr());
    });
  }

  it('exits 2 for a missing config file and a bad --port', async () => {
    let r = run(['serve', '--config', join(dir, 'missing.json')]);
    assert.equal(await r.exit, 2);
    assert.match(r.stderr(), /missing\.json: cannot read \(ENOENT\)/);
    r = run(['serve', '--port', 'eighty']);
    assert.equal(await r.exit, 2);
    assert.equal(r.stderr(), 'chorus: --port eighty: must be a number from 0 to 65535\n');
  });

  it('names where a bad value came from: environment variable, flag, or file and field', async () => {
    const cases: Array<[string[], Record<string, string>, string]> = [
      [['serve'], { CHORUS_PORT: 'xyz' }, 'CHORUS_PORT=xyz: must be a number from 0 to 65535'],
      [['serve', '--port', '99999'], { CHORUS_PORT: 'xyz' }, '--port 99999: must be a number from 0 to 65535'],
      [['serve', '--log-level', 'loud'], {}, '--log-level loud: must be one of fatal, error, warn, info, debug, trace, silent'],
      [['serve', '--log-format', 'xml'], {}, '--log-format xml: must be json or pretty'],
      [['serve'], { CHORUS_LOG_FORMAT: 'xml' }, 'CHORUS_LOG_FORMAT=xml: must be json or pretty'],
      [['serve', '--host', ''], {}, '--host: must not be empty (leave it out to listen on every interface)'],
      // The file is checked as written: a flag overriding its bad value does not hide it.
      [['serve', '--port', '0', '--config', configFile('port-over.json', { port: 70000 })], {}, `${join(dir, 'port-over.json')}: port must be <= 65535`],
      [['serve', '--port', '0'], { CHORUS_CONFIG: configFile('env-level.json', { logLevel: 'loud' }) }, `${join(dir, 'env-level.json')}: logLevel must be one of fatal, error, warn, info, debug, trace, silent`],
      [['serve', '--log-level', 'silent', '--config', configFile('level-over.json', { logLevel: 'loud' })], {}, `${join(dir, 'level-over.json')}: logLevel must be one of fatal, error, warn, info, debug, trace, silent`],
    ];
    const runs = cases.map(([args, env, message]) => ({ args, env, message, r: run(args, env) }));
    for (const { args, env, message, r } of runs) {
      const what = `${Object.entries(env).map(([k, v]) => `${k}=${v} `).join('')}chorus ${args.join(' ')}`;
      assert.equal(await r.exit, 2, what);
      assert.equal(r.stderr(), `chorus: ${message}\n`, what);
    }
  });

  it('refuses a short secret saying why and how to make one, in one line; chorus secret makes one that is accepted', async () => {
    const r = run(['serve', '--config', configFile('short.json', { apps: [{ ...app, secret: 'nine-char' }] })]);
    assert.equal(await r.exit, 2);
    assert.equal(
      r.stderr(),
      `chorus: ${join(dir, 'short.json')}: apps[0].secret is 9 characters; secrets must be at least 16 characters so they cannot be guessed — make one with \`npx chorus secret\` (or: node -e "console.log(require('crypto').randomBytes(24).toString('base64url'))")\n`,
    );
    const tokenKey = run(['serve', '--config', configFile('short-kid.json', { apps: [{ ...app, tokenKeys: [{ kid: 'k1', alg: 'HS256', secret: 'tiny' }] }] })]);
    assert.equal(await tokenKey.exit, 2);
    assert.match(tokenKey.stderr(), /: apps\[0\]\.tokenKeys\[0\]\.secret is 4 characters; secrets must be at least 16 characters .*chorus secret/);

    // soketi's default key "app-key" is 7 characters: the line says so and how to pick another.
    const shortKey = run(['serve', '--config', configFile('short-key.json', { apps: [{ ...app, key: 'app-key' }] })]);
    assert.equal(await shortKey.exit, 2);
    assert.match(shortKey.stderr(), /: apps\[0\]\.key is 7 characters; app keys must be at least 8 characters \(.*chorus secret/);

    const [one, two] = [run(['secret']), run(['secret'])];
    assert.equal(await one.exit, 0);
    assert.equal(await two.exit, 0);
    const secret = one.stdout().trim();
    assert.match(secret, /^[A-Za-z0-9_-]{32}$/);
    assert.notEqual(two.stdout().trim(), secret, 'a new one each time');
    const long = run(['secret', '--bytes', '64']);
    assert.equal(await long.exit, 0);
    assert.equal(long.stdout().trim().length, 86);
    const tooShort = run(['secret', '--bytes', '8']);
    assert.equal(await tooShort.exit, 2);
    assert.equal(tooShort.stderr(), 'chorus: --bytes 8: must be a whole number from 12 to 768\n');

    const server = run(['serve', '--port', '0', '--config', configFile('made.json', { logLevel: 'silent', apps: [{ ...app, secret }] })]);
    const port = await started(server);
    const res = await fetch(`http://127.0.0.1:${port}/api/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ key: app.key, secret, channelId: 'c', message: 'hi' }) });
    assert.equal(res.status, 200, 'the made secret authenticates');
    server.child.kill('SIGTERM');
    assert.equal(await server.exit, 0);
  });

  it('logs JSON lines when stdout is not a terminal, pretty lines with --log-format pretty or CHORUS_LOG_FORMAT=pretty', async () => {
    const json = run(['serve', '--port', '0', '--config', configFile('logs.json', { apps: [app] })]);
    await started(json);
    json.child.kill('SIGTERM');
    assert.equal(await json.exit, 0);
    const lines = json.stdout().split('\n').filter((line) => line.startsWith('{'));
    assert.deepEqual(
      lines.map((line) => (JSON.parse(line) as { msg: string }).msg),
      ['listening', 'shutting down', 'stopped'],
    );

    for (const [args, env] of [[['--log-format', 'pretty'], {}], [[], { CHORUS_LOG_FORMAT: 'pretty' }]] as const) {
      const pretty = run(['serve', '--port', '0', '--config', join(dir, 'logs.json'), ...args], { ...env, NO_COLOR: '1' });
      await started(pretty);
      pretty.child.kill('SIGTERM');
      assert.equal(await pretty.exit, 0);
      assert.doesNotMatch(pretty.stdout(), /^\{/m, 'no JSON lines');
      assert.match(pretty.stdout(), /^\[\d\d:\d\d:\d\d\] INFO: listening \{"port":\d+,"host":"[^"]+"\}\n/);
      assert.match(pretty.stdout(), /\] INFO: stopped\n$/, 'the last line is written before the process exits');
    }
  });

  it('exits 1 with a clear line when the port is taken', async () => {
    const first = run(['serve', '--port', '0', '--log-level', 'silent']);
    const port = await started(first);
    const second = run(['serve', '--port', String(port), '--log-level', 'silent']);
    assert.equal(await second.exit, 1);
    assert.match(second.stderr(), new RegExp(`port ${port} is already in use`));
    first.child.kill('SIGTERM');
    assert.equal(await first.exit, 0);
  });

  it('on SIGTERM closes clients with 1001 and exits 0', async () => {
    const r = run(['serve', '--port', '0', '--config', configFile('term.json', { apps: [app], logLevel: 'silent' })]);
    const port = await started(r);
    const clients = await Promise.all([1, 2, 3].map(() => TestClient.open(`ws://127.0.0.1:${port}/v4/c?api_key=${app.key}`)));
    r.child.kill('SIGTERM');
    for (const client of clients) assert.deepEqual(await client.closed(), { code: 1001, reason: 'Server shutting down' });
    assert.equal(await r.exit, 0);
  });

  it('--help prints usage and exits 0; an unknown flag exits 2', async () => {
    let r = run(['--help']);
    assert.equal(await r.exit, 0);
    assert.match(r.stdout(), /Usage: chorus <command>/);
    assert.match(r.stdout(), /--config FILE/);
    r = run(['serve', '--bogus']);
    assert.equal(await r.exit, 2);
    assert.match(r.stderr(), /Unknown option '--bogus'/);
  });
});
