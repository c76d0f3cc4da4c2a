/**
 * `chorus connect` without a terminal: --send/--wait/--close, piped stdin, how frames and
 * closes are printed, and the exit codes. (cli-pty.test.ts drives the interactive prompt.)
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { SignJWT } from 'jose';
import { OTHER_APP, TEST_APP, TestClient, closeAfterwards, rawUrl, settle } from './helpers.ts';
import { v1Url } from './v1-helpers.ts';
import { freePort, run, tempDir } from './cli-helpers.ts';

const { serverWith, track } = closeAfterwards();
const server = await serverWith({ apps: [{ ...TEST_APP }, { ...OTHER_APP, allowedOrigins: ['https://good.example'] }] });

function channelToken(channel: string): Promise<string> {
  return new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(channel).setExpirationTime('1h').sign(new TextEncoder().encode(TEST_APP.secret));
}

describe('chorus connect (non-interactive)', () => {
  it('--send sends in order, --close closes with 1000 once sent: exit 0', async () => {
    const peer = track(await TestClient.open(rawUrl(server, 'cli-send')));
    const r = run(['connect', rawUrl(server, 'cli-send'), '--send', 'one', '--send', '{"event":"two"}', '--close']);
    assert.equal(await r.exited(), 0, r.stderr());
    assert.deepEqual(
      (await peer.messages(2)).map((m) => m.text),
      ['one', '{"event":"two"}'],
    );
    assert.equal(r.stderr(), `connected to ${rawUrl(server, 'cli-send')}\nclosed 1000 (normal closure)\n`);
    assert.equal(r.stdout(), '');
  });

  it('prints text as it is, JSON pretty with --json, binary as a hex preview', async () => {
    const peer = track(await TestClient.open(rawUrl(server, 'cli-frames')));
    const r = run(['connect', rawUrl(server, 'cli-frames'), '--json', '--wait', '60000']);
    await r.waitFor(/^connected to /m, 'stderr');
    peer.ws.send('plain text');
    peer.ws.send('{"event":"new_message","data":{"text":"hi"}}');
    peer.ws.send('{not json');
    peer.ws.send(Buffer.from([0x00, 0x01, 0xfe, 0xff]));
    peer.ws.send(Buffer.alloc(40, 0xab));
    peer.ws.send(Buffer.alloc(0));
    await r.waitFor(/<binary 0 bytes>\n/, 'stdout');
    r.child.kill('SIGTERM');
    assert.equal(await r.exited(), 0, 'SIGTERM is a clean close by the user');
    assert.equal(
      r.stdout(),
      [
        'plain text',
        '{',
        '  "event": "new_message",',
        '  "data": {',
        '    "text": "hi"',
        '  }',
        '}',
        '{not json',
        '<binary 4 bytes> 00 01 fe ff',
        `<binary 40 bytes> ${Array(32).fill('ab').join(' ')} …`,
        '<binary 0 bytes>',
        '',
      ].join('\n'),
    );
    assert.match(r.stderr(), /closed 1000 \(normal closure\)\n$/);
  });

  it('without --json, JSON is printed as it came', async () => {
    const peer = track(await TestClient.open(rawUrl(server, 'cli-raw-json')));
    const r = run(['connect', rawUrl(server, 'cli-raw-json'), '--wait', '60000']);
    await r.waitFor(/^connected/m, 'stderr');
    peer.ws.send('{"a":1}');
    await r.waitFor(/\{"a":1\}\n/, 'stdout');
    r.child.kill('SIGINT');
    assert.equal(await r.exited(), 0);
  });

  it('piped stdin: every line is sent; --wait closes that long after the end of input', async () => {
    const peer = track(await TestClient.open(rawUrl(server, 'cli-pipe')));
    const r = run(['connect', `${rawUrl(server, 'cli-pipe')}&notify_self`, '--wait', '300'], { stdin: 'pipe' });
    await r.waitFor(/^connected/m, 'stderr');
    r.write('first line\nsecond line\n');
    r.end();
    assert.equal(await r.exited(), 0, r.stderr());
    assert.deepEqual(
      (await peer.messages(2)).map((m) => m.text),
      ['first line', 'second line'],
    );
    assert.equal(r.stdout(), 'first line\nsecond line\n', 'notify_self echoes them back within --wait');
  });

  it('piped stdin without --wait: the connection stays open after the input ends, until SIGINT', async () => {
    const peer = track(await TestClient.open(rawUrl(server, 'cli-stay')));
    const r = run(['connect', rawUrl(server, 'cli-stay')], { stdin: 'pipe' });
    await r.waitFor(/^connected/m, 'stderr');
    r.end();
    await settle(300);
    peer.ws.send('still here');
    await r.waitFor(/^still here$/m, 'stdout');
    r.child.kill('SIGINT');
    assert.equal(await r.exited(), 0);
    assert.match(r.stderr(), /closed 1000/);
  });

  it('--close-after is --wait', async () => {
    const peer = track(await TestClient.open(rawUrl(server, 'cli-close-after')));
    const r = run(['connect', rawUrl(server, 'cli-close-after'), '--send', 'x', '--close-after', '100']);
    assert.equal(await r.exited(), 0, r.stderr());
    assert.equal((await peer.messages(1))[0]?.text, 'x');
  });

  it('a bad api key: the server\'s error frame, "closed 4001 …" with its meaning, exit 1', async () => {
    const r = run(['connect', rawUrl(server, 'room', 'api_key=nope'), '--wait', '60000']);
    assert.equal(await r.exited(), 1);
    assert.equal(r.stdout(), '{"error":"Unknown api key"}\n');
    assert.match(r.stderr(), /\nclosed 4001 Unknown api key \(the api_key query parameter matches no app\)\n$/);
  });

  it('a private channel: 4003 without a token (exit 1); --jwt or -H "jwt: …" opens it', async () => {
    let r = run(['connect', rawUrl(server, 'private-cli'), '--close']);
    assert.equal(await r.exited(), 1);
    assert.match(r.stderr(), /closed 4003 Authentication failed \(the channel needs a valid JWT/);
    const token = await channelToken('private-cli');
    const peer = track(await TestClient.open(rawUrl(server, 'private-cli', `api_key=${TEST_APP.key}&jwt=${token}`)));
    r = run(['connect', rawUrl(server, 'private-cli'), '--jwt', token, '--send', 'with --jwt', '--close']);
    assert.equal(await r.exited(), 0, r.stderr());
    r = run(['connect', rawUrl(server, 'private-cli'), '-H', `jwt: ${token}`, '--send', 'with -H', '--close']);
    assert.equal(await r.exited(), 0, r.stderr());
    assert.deepEqual(
      (await peer.messages(2)).map((m) => m.text),
      ['with --jwt', 'with -H'],
    );
    assert.doesNotMatch(r.stderr(), new RegExp(token), 'the token is not printed');
  });

  it('a jwt in the URL is not printed', async () => {
    const token = await channelToken('private-url');
    const r = run(['connect', `${rawUrl(server, 'private-url')}&jwt=${token}`, '--close']);
    assert.equal(await r.exited(), 0, r.stderr());
    assert.match(r.stderr(), /connected to ws:\/\/127\.0\.0\.1:\d+\/v4\/private-url\?api_key=test-key-123&jwt=\*\*\*\n/);
  });

  it('an origin the app does not allow: HTTP 403 with its code, exit 1; an allowed one connects', async () => {
    const url = rawUrl(server, 'room', `api_key=${OTHER_APP.key}`);
    let r = run(['connect', url, '--origin', 'https://evil.example', '--close']);
    assert.equal(await r.exited(), 1);
    assert.match(r.stderr(), /^chorus: cannot connect to ws:\/\/.*: HTTP 403 origin_not_allowed: /);
    r = run(['connect', url, '--origin', 'https://good.example', '--close']);
    assert.equal(await r.exited(), 0, r.stderr());
  });

  it('the server shutting down: closed 1001, exit 1', async () => {
    const own = await serverWith();
    const r = run(['connect', rawUrl(own, 'room')]);
    await r.waitFor(/^connected/m, 'stderr');
    await own.close();
    assert.equal(await r.exited(), 1);
    assert.match(r.stderr(), /closed 1001 Server shutting down \(the server is stopping/);
  });

  it('nothing listening: "cannot connect … connection refused", exit 1', async () => {
    const port = await freePort();
    const r = run(['connect', `ws://127.0.0.1:${port}/v4/room?api_key=x`, '--close']);
    assert.equal(await r.exited(), 1);
    assert.equal(r.stderr(), `chorus: cannot connect to ws://127.0.0.1:${port}/v4/room?api_key=x: connection refused (is the server running? chorus serve)\n`);
  });

  it('protocol v1: JSON commands go out as typed, replies come back (pretty with --json)', async () => {
    const r = run(['connect', v1Url(server), '--json', '--send', '{"id":1,"type":"connect"}', '--send', '{"id":2,"type":"ping"}', '--wait', '60000']);
    await r.waitFor(/"id": 2,\n\s+"ok": true/, 'stdout');
    r.child.kill('SIGINT');
    assert.equal(await r.exited(), 0);
    assert.match(r.stdout(), /^\{\n {2}"id": 1,\n {2}"ok": true,\n {2}"result": \{/);
  });

  it('a bare CHANNEL uses --url (or --host/--port) and --key', async () => {
    const peer = track(await TestClient.open(rawUrl(server, 'cli-bare')));
    let r = run(['connect', 'cli-bare', '--url', `http://127.0.0.1:${server.port}`, '--key', TEST_APP.key, '--send', 'bare', '--close']);
    assert.equal(await r.exited(), 0, r.stderr());
    r = run(['connect', 'cli-bare', '--host', '127.0.0.1', '-p', String(server.port), '--send', 'env key', '--close'], { env: { CHORUS_KEY: TEST_APP.key } });
    assert.equal(await r.exited(), 0, r.stderr());
    assert.deepEqual(
      (await peer.messages(2)).map((m) => m.text),
      ['bare', 'env key'],
    );
  });

  it('exit 2 for bad usage', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['connect', 'room'], /a bare channel needs the app key: --key KEY, CHORUS_KEY or --config FILE/],
      [['connect', 'no such thing'], /is neither a ws:\/\/ or wss:\/\/ URL nor a channel name/],
      [['connect', 'ws://localhost/v4/x', '--key', 'k'], /--key is for a bare CHANNEL; ws:\/\/localhost\/v4\/x is already a full URL/],
      [['connect', 'ws://localhost/v4/x', '-H', 'nocolon'], /--header takes "Name: value", got "nocolon"/],
      [['connect', 'ws://localhost/v4/x', '--wait', '5', '--close'], /--close means --wait 0; give one of them/],
      [['connect', 'ws://localhost/v4/x', '--wait', 'soon'], /--wait takes milliseconds/],
      [['connect', 'ws://localhost/v4/x', 'extra'], /unexpected argument "extra"/],
    ];
    const runs = cases.map(([args, message]) => ({ args, message, r: run(args) }));
    for (const { args, message, r } of runs) {
      assert.equal(await r.exited(), 2, args.join(' '));
      assert.match(r.stderr(), message);
    }
  });
});

describe('chorus connect and publish over TLS', () => {
  const cert = join(tempDir, 'cert.pem');
  const key = join(tempDir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });

  it('refuse a self-signed certificate with a hint (exit 1), accept it with --insecure', async () => {
    const tls = await serverWith({ tls: { cert, key } });
    const url = rawUrl(tls, 'room');
    assert.match(url, /^wss:/);
    let r = run(['connect', url, '--close']);
    assert.equal(await r.exited(), 1);
    assert.match(r.stderr(), /self[- ]signed certificate.*\(for a self-signed certificate add --insecure\)/);
    const peer = track(await TestClient.open(url, { rejectUnauthorized: false }));
    r = run(['connect', url, '--insecure', '--send', 'over wss', '--close']);
    assert.equal(await r.exited(), 0, r.stderr());
    assert.equal((await peer.messages(1))[0]?.text, 'over wss');

    const https = ['--url', `https://127.0.0.1:${tls.port}`, '--key', TEST_APP.key, '--secret', TEST_APP.secret];
    r = run(['publish', 'room', 'over https', ...https]);
    assert.equal(await r.exited(), 1);
    assert.match(r.stderr(), /add --insecure/);
    r = run(['publish', 'room', 'over https', ...https, '--insecure']);
    assert.equal(await r.exited(), 0, r.stderr());
    assert.equal((await peer.messages(2))[1]?.text, 'over https');
  });
});
