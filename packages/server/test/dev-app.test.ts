/**
 * The development app of `chorus serve` without apps in a config: kept in .chorus/dev-app.json
 * of the working directory, the same key and secret at every start, a new one only when the file
 * is gone, and a file that cannot be used is refused with one line naming it.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { TestClient } from './helpers.ts';
import { run, tempDir, type Run } from './cli-helpers.ts';

interface Banner {
  port: number;
  key: string;
  secret: string;
  appLine: string;
}

/** Starts `chorus serve --port 0` in `cwd`, reads its banner, and stops it (exit 0). */
async function serveOnce(cwd: string, args: string[] = []): Promise<Banner> {
  const r = run(['serve', '--port', '0', '--log-level', 'silent', ...args], { cwd });
  const banner = await readBanner(r);
  r.child.kill('SIGTERM');
  assert.equal(await r.exited(), 0, r.stderr());
  return banner;
}

async function readBanner(r: Run): Promise<Banner> {
  const [, port] = await r.waitFor(/Chorus is running on http:\/\/localhost:(\d+)[\s\S]*secret: \S+\n/, 'stdout');
  const out = r.stdout();
  return {
    port: Number(port),
    key: /key: {4}(\S+)/.exec(out)?.[1] ?? '',
    secret: /secret: (\S+)/.exec(out)?.[1] ?? '',
    appLine: /^ {2}Development app .*$/m.exec(out)?.[0] ?? '',
  };
}

const fresh = (): string => mkdtempSync(join(tempDir, 'cwd-'));

describe('the development app of chorus serve', () => {
  it('is the same at every start in the same folder, and new once its file is deleted', async () => {
    const cwd = fresh();
    const file = join(cwd, '.chorus', 'dev-app.json');
    const first = await serveOnce(cwd);
    assert.match(first.appLine, new RegExp(`new; kept in ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}.*delete it to get a new key`));
    const second = await serveOnce(cwd);
    assert.deepEqual([second.key, second.secret], [first.key, first.secret], 'the same key and secret after a restart');
    assert.match(second.appLine, /\(kept in .*dev-app\.json; delete it to get a new key\)/);

    const saved = JSON.parse(readFileSync(file, 'utf8')) as { key: string; secret: string };
    assert.deepEqual([saved.key, saved.secret], [first.key, first.secret]);
    assert.equal(statSync(file).mode & 0o777, 0o600, 'only its owner can read the secret');
    assert.equal(readFileSync(join(cwd, '.chorus', '.gitignore'), 'utf8').split('\n').filter((line) => line && !line.startsWith('#')).join(), '*', 'the folder keeps itself out of git');

    rmSync(file);
    const third = await serveOnce(cwd);
    assert.notEqual(third.key, first.key, 'a new key once the file is gone');
    assert.notEqual(third.secret, first.secret);
    assert.match(third.appLine, /new; kept in/);
  });

  it('the kept key works after a restart, and another folder has its own', async () => {
    const cwd = fresh();
    const before = await serveOnce(cwd);
    const r = run(['serve', '--port', '0', '--log-level', 'silent'], { cwd });
    const after = await readBanner(r);
    const client = await TestClient.open(`ws://127.0.0.1:${after.port}/v4/room?api_key=${before.key}&notify_self`);
    client.ws.send('still me');
    assert.equal((await client.messages(1))[0]?.text, 'still me');
    client.close();
    r.child.kill('SIGTERM');
    assert.equal(await r.exited(), 0);
    assert.notEqual((await serveOnce(fresh())).key, before.key);
  });

  it('is used by a config without apps too; a config with apps leaves the folder alone', async () => {
    const cwd = fresh();
    writeFileSync(join(cwd, 'no-apps.json'), JSON.stringify({ examples: false }));
    const first = await serveOnce(cwd, ['--config', 'no-apps.json']);
    assert.equal((await serveOnce(cwd, ['--config', 'no-apps.json'])).key, first.key);
    const other = fresh();
    writeFileSync(join(other, 'apps.json'), JSON.stringify({ apps: [{ id: 'demo', key: 'demo-key-123', secret: 'demo-secret-0123456789' }] }));
    const r = run(['serve', '--port', '0', '--log-level', 'silent', '--config', 'apps.json'], { cwd: other });
    await r.waitFor(/Chorus is running/, 'stdout');
    r.child.kill('SIGTERM');
    assert.equal(await r.exited(), 0);
    assert.throws(() => statSync(join(other, '.chorus')), /ENOENT/);
  });

  const broken: Array<[string, string, RegExp]> = [
    ['not JSON', '{"id": "dev", "key": ', /dev-app\.json: not valid JSON \(.*\); delete it to get a new development key$/],
    ['a short secret', JSON.stringify({ id: 'dev', key: 'key-12345678', secret: 'short' }), /dev-app\.json: secret is 5 characters; secrets must be at least 16 characters .* chorus secret/],
    ['no key', JSON.stringify({ id: 'dev', secret: 'a-secret-of-24-characters' }), /dev-app\.json: key is required$/],
  ];
  for (const [name, content, message] of broken) {
    it(`a file with ${name} stops the server with one line naming it (exit 2), and is left as it was`, async () => {
      const cwd = fresh();
      mkdirSync(join(cwd, '.chorus'));
      const file = join(cwd, '.chorus', 'dev-app.json');
      writeFileSync(file, content);
      const r = run(['serve', '--port', '0'], { cwd });
      assert.equal(await r.exited(), 2);
      assert.equal(r.stderr().trim().split('\n').length, 1, r.stderr());
      assert.match(r.stderr().trim(), message);
      assert.ok(r.stderr().includes(file), 'names the file by its full path');
      assert.equal(readFileSync(file, 'utf8'), content, 'not replaced');
    });
  }
});
