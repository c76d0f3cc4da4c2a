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

function run(args: string[], env: Record<string, string> = {}): Run {
  const child = spawn(chorusBin, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
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
    assert.match(r.stderr(), /--port must be a number/);
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
