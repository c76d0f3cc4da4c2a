/** `chorus publish CHANNEL MESSAGE` against a real server: delivery, credentials, coded errors. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OTHER_APP, TEST_APP, TestClient, closeAfterwards, rawUrl, settle } from './helpers.ts';
import { freePort, run, writeTemp } from './cli-helpers.ts';

const { serverWith, track } = closeAfterwards();
const server = await serverWith({ apps: [{ ...TEST_APP }, { ...OTHER_APP, limits: { maxMessageSize: 16 } }] });
const url = `http://127.0.0.1:${server.port}`;
const creds = ['--url', url, '--key', TEST_APP.key, '--secret', TEST_APP.secret];

async function subscriber(channel: string, key: string = TEST_APP.key): Promise<TestClient> {
  return track(await TestClient.open(rawUrl(server, channel, `api_key=${key}`)));
}

describe('chorus publish', () => {
  it('publishes text through the REST API: a subscriber receives it, stdout names the offset', async () => {
    const client = await subscriber('cli-text');
    const r = run(['publish', 'cli-text', 'Hello from the CLI', ...creds]);
    assert.equal(await r.exited(), 0, r.stderr());
    assert.equal(r.stdout(), 'published to cli-text (offset 1)\n');
    assert.equal(r.stderr(), '');
    const [frame] = await client.messages(1);
    assert.equal(frame?.text, 'Hello from the CLI');
    assert.equal(frame?.binary, false);
    const again = run(['publish', 'cli-text', 'second', ...creds]);
    assert.equal(await again.exited(), 0);
    assert.equal(again.stdout(), 'published to cli-text (offset 2)\n');
  });

  it('--json parses MESSAGE and sends it as a value', async () => {
    const client = await subscriber('cli-json');
    const message = { event: 'new_message', data: { text: 'hi', n: [1, 2] } };
    const r = run(['publish', 'cli-json', JSON.stringify(message, null, 2), '--json', ...creds]);
    assert.equal(await r.exited(), 0, r.stderr());
    assert.deepEqual(JSON.parse((await client.messages(1))[0]?.text ?? ''), message);
    assert.equal((await client.messages(1))[0]?.text, JSON.stringify(message), 'sent as a value: compact JSON text');
  });

  it('"-" reads MESSAGE from stdin (one final newline dropped)', async () => {
    const client = await subscriber('cli-stdin');
    const r = run(['publish', 'cli-stdin', '-', ...creds], { stdin: 'pipe' });
    r.write('line one\nline two\n');
    r.end();
    assert.equal(await r.exited(), 0, r.stderr());
    assert.equal((await client.messages(1))[0]?.text, 'line one\nline two');
  });

  it('takes the server and credentials from CHORUS_URL, CHORUS_KEY and CHORUS_SECRET', async () => {
    const client = await subscriber('cli-env');
    const r = run(['publish', 'cli-env', 'via env'], { env: { CHORUS_URL: url, CHORUS_KEY: TEST_APP.key, CHORUS_SECRET: TEST_APP.secret } });
    assert.equal(await r.exited(), 0, r.stderr());
    assert.equal((await client.messages(1))[0]?.text, 'via env');
  });

  it('takes key and secret from --config (the first app, or --app ID) and --host/--port', async () => {
    const config = writeTemp('publish-config.yaml', `apps:\n  - id: test\n    key: ${TEST_APP.key}\n    secret: ${TEST_APP.secret}\n  - id: other\n    key: ${OTHER_APP.key}\n    secret: ${OTHER_APP.secret}\n`);
    const first = await subscriber('cli-config');
    const other = await subscriber('cli-config', OTHER_APP.key);
    let r = run(['publish', 'cli-config', 'to test', '-c', config, '--host', '127.0.0.1', '--port', String(server.port)]);
    assert.equal(await r.exited(), 0, r.stderr());
    r = run(['publish', 'cli-config', 'to other', '--config', config, '--app', 'other', '--url', url]);
    assert.equal(await r.exited(), 0, r.stderr());
    assert.equal((await first.messages(1))[0]?.text, 'to test');
    assert.equal((await other.messages(1))[0]?.text, 'to other');
    await settle();
    assert.equal(first.received.length, 1, 'apps stay apart');
    r = run(['publish', 'cli-config', 'x', '--config', config, '--app', 'nope', '--url', url]);
    assert.equal(await r.exited(), 2);
    assert.match(r.stderr(), /publish-config\.yaml: no app with id "nope" \(apps: test, other\)/);
  });

  it('a config without apps still says where the server is (its port); key and secret from flags', async () => {
    const config = writeTemp('port-only.json', { port: server.port, logLevel: 'silent' });
    const client = await subscriber('cli-port');
    const r = run(['publish', 'cli-port', 'port from the config', '-c', config, '--host', '127.0.0.1', '--key', TEST_APP.key, '--secret', TEST_APP.secret]);
    assert.equal(await r.exited(), 0, r.stderr());
    assert.equal((await client.messages(1))[0]?.text, 'port from the config');
  });

  it('a wrong secret: exit 1 with the HTTP status and coded error, and the secret is not printed', async () => {
    const r = run(['publish', 'cli-auth', 'x', '--url', url, '--key', TEST_APP.key, '--secret', 'wrong-secret-0123456789']);
    assert.equal(await r.exited(), 1);
    assert.equal(r.stderr(), 'chorus: publish failed: HTTP 401 unauthorized: Unknown key or wrong secret.\n');
    assert.equal(r.stdout(), '');
    assert.doesNotMatch(r.stderr() + r.stdout(), /wrong-secret/);
  });

  it('a bad channel name and a message over the limit: exit 1 with the server\'s 400 and 413', async () => {
    let r = run(['publish', 'no spaces!', 'x', ...creds]);
    assert.equal(await r.exited(), 1);
    assert.match(r.stderr(), /^chorus: publish failed: HTTP 400 bad_request: channelId must be a channel name/);
    r = run(['publish', 'cli-big', 'more than sixteen bytes', '--url', url, '--key', OTHER_APP.key, '--secret', OTHER_APP.secret]);
    assert.equal(await r.exited(), 1);
    assert.match(r.stderr(), /HTTP 413 payload_too_large: message is 23 bytes; this app allows 16\./);
  });

  it('exit 2 without key or secret, or with --json and a MESSAGE that is not JSON', async () => {
    let r = run(['publish', 'room', 'x', '--url', url, '--key', TEST_APP.key]);
    assert.equal(await r.exited(), 2);
    assert.match(r.stderr(), /publish needs the app secret: --key\/--secret, CHORUS_KEY\/CHORUS_SECRET, or --config FILE/);
    r = run(['publish', 'room', 'x', '--url', url]);
    assert.equal(await r.exited(), 2);
    assert.match(r.stderr(), /publish needs the app key and secret/);
    r = run(['publish', 'room', '{nope', '--json', ...creds]);
    assert.equal(await r.exited(), 2);
    assert.match(r.stderr(), /--json: MESSAGE is not valid JSON/);
    r = run(['publish', 'room', 'x', ...creds, '--url', 'ftp://example.com']);
    assert.equal(await r.exited(), 2);
    assert.match(r.stderr(), /--url must be http\(s\):\/\/ or ws\(s\):\/\//);
    // Each value is reported under the name it was given by: environment variable or flag.
    r = run(['publish', 'room', 'x', '--key', TEST_APP.key, '--secret', TEST_APP.secret], { env: { CHORUS_URL: 'ftp://example.com' } });
    assert.equal(await r.exited(), 2);
    assert.equal(r.stderr(), 'chorus: CHORUS_URL must be http(s):// or ws(s)://, got "ftp://example.com"\n');
    r = run(['publish', 'room', 'x', ...creds, '--port', 'xyz']);
    assert.equal(await r.exited(), 2);
    assert.equal(r.stderr(), 'chorus: --port xyz: must be a number from 0 to 65535\n');
  });

  it('exit 1 when no server listens there', async () => {
    const port = await freePort();
    const r = run(['publish', 'room', 'x', '--url', `http://127.0.0.1:${port}`, '--key', TEST_APP.key, '--secret', TEST_APP.secret]);
    assert.equal(await r.exited(), 1);
    assert.equal(r.stderr(), `chorus: cannot reach http://127.0.0.1:${port}: connection refused (is the server running? chorus serve)\n`);
  });
});
