/**
 * Security defences of issue 4 that Chorus implements itself: wss://, connection and message
 * limits, presence caps, token kinds and keys, JSON Schema validation, log hygiene. Framing and
 * handshake attacks against the ws layer are in attacks-protocol.test.ts.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { SignJWT } from 'jose';
import { pino } from 'pino';
import { ConfigError, resolveConfig, startServer, type ChorusServer } from '../src/index.ts';
import { TEST_APP, TestClient, closeAfterwards, rawUrl, settle, withTimeout } from './helpers.ts';
import { V1Client, channelToken, connectionToken } from './v1-helpers.ts';

const { serverWith, track } = closeAfterwards();

/** A self-signed certificate for 127.0.0.1/localhost, made with openssl at test time. */
function selfSignedCertificate(): { cert: string; key: string } {
  const dir = mkdtempSync(join(tmpdir(), 'chorus-tls-'));
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
  return { cert, key };
}

describe('wss://', () => {
  const tls = selfSignedCertificate();

  it('serves wss:// and https:// on one port with the configured certificate', async () => {
    const server = await serverWith({ tls });
    const ca = readFileSync(tls.cert);
    const url = rawUrl(server, 'secure');
    assert.match(url, /^wss:\/\//);
    const a = track(await TestClient.open(url, { ca }));
    const b = track(await TestClient.open(url, { ca }));
    a.ws.send('over tls');
    assert.equal((await b.messages(1))[0]?.text, 'over tls');
    const v1 = await V1Client.open(server, TEST_APP.key, { ca });
    track(v1.raw);
    assert.equal((await v1.command('connect')).ok, true);
    const plain = new TestClient(url.replace('wss://', 'ws://'));
    await assert.rejects(plain.opened(), 'plain ws:// to a TLS port fails');
    const untrusted = new TestClient(url);
    await assert.rejects(untrusted.opened(), /self-signed|certificate/);
  });

  it('chorus serve --tls-cert --tls-key prints https:// and wss:// and serves them', async () => {
    const bin = fileURLToPath(new URL('../../../node_modules/.bin/chorus', import.meta.url));
    const child = spawn(bin, ['serve', '--port', '0', '--log-level', 'silent', '--tls-cert', tls.cert, '--tls-key', tls.key], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      await withTimeout(new Promise<void>((resolve) => child.stdout.on('data', () => out.includes('wss://') && resolve())), 10_000, 'banner');
      assert.match(out, /Chorus is running on https:\/\/localhost:\d+/);
      const url = /(wss:\/\/localhost:\d+\/v4\/\S+)/.exec(out)?.[1] ?? '';
      const client = track(await TestClient.open(url, { ca: readFileSync(tls.cert) }));
      client.ws.send('hi');
      assert.equal((await client.messages(1))[0]?.text, 'hi');
    } finally {
      child.kill('SIGTERM');
    }
  });

  it('an unreadable certificate stops the server with a clear config error', () => {
    assert.throws(() => resolveConfig(JSON.parse('{"tls":{"cert":42}}')), ConfigError);
    return assert.rejects(startServer({ port: 0, logLevel: 'silent', tls: { cert: '/nope/cert.pem', key: tls.key } }), /tls\.cert: cannot read \/nope\/cert\.pem \(ENOENT\)/);
  });
});

describe('subprotocols', () => {
  it('never echoes an offered subprotocol (a client may have put a token there)', async () => {
    const server = await serverWith({});
    const { default: WebSocket } = await import('ws');
    const ws = new WebSocket(rawUrl(server, 'sp'), ['chat', 'token.secret-abc']);
    const error = await new Promise<Error>((resolve) => ws.once('error', resolve));
    assert.match(error.message, /Server sent no subprotocol/);
  });
});

describe('connection limits', () => {
  it('refuses the connection past maxConnectionsPerIp with 429; the others keep working', async () => {
    const server = await serverWith({ limits: { maxConnectionsPerIp: 3 } });
    const open = await Promise.all([1, 2, 3].map(async () => track(await TestClient.open(rawUrl(server, 'lim')))));
    const refused = new TestClient(rawUrl(server, 'lim'));
    await assert.rejects(refused.opened(), /Unexpected server response: 429/);
    const fromOtherIp = track(await TestClient.open(rawUrl(server, 'lim'), { localAddress: '127.0.0.2' }));
    open[0]?.ws.send('still fine');
    assert.equal((await fromOtherIp.messages(1))[0]?.text, 'still fine');
    open[1]?.close();
    await open[1]?.closed();
    await settle(50);
    track(await TestClient.open(rawUrl(server, 'lim')));
  });

  describe('behind a reverse proxy (trustedProxies)', () => {
    // The test client plays the proxy: it connects from 127.0.0.1 and sends the X-Forwarded-For
    // a proxy would add. Three clients behind one proxy must not share one per-IP quota.
    const via = (server: ChorusServer, forwardedFor: string, localAddress = '127.0.0.1'): TestClient =>
      new TestClient(rawUrl(server, 'lim'), { localAddress, headers: { 'X-Forwarded-For': forwardedFor } });
    const openVia = async (server: ChorusServer, forwardedFor: string, localAddress?: string): Promise<void> => {
      const client = track(via(server, forwardedFor, localAddress));
      await client.opened();
    };

    it('counts each forwarded client address separately when the peer is a trusted proxy', async () => {
      const server = await serverWith({ trustedProxies: ['127.0.0.1'], limits: { maxConnectionsPerIp: 2 } });
      for (let i = 0; i < 2; i++) await openVia(server, '203.0.113.7');
      await assert.rejects(via(server, '203.0.113.7').opened(), /429/, 'the third from the same client');
      await openVia(server, '203.0.113.8');
      // Entries left of the proxy's own are the client's to invent: only the right-most untrusted one counts.
      await assert.rejects(via(server, '198.51.100.1, 203.0.113.7').opened(), /429/, 'a spoofed left entry changes nothing');
    });

    it('ignores X-Forwarded-For from peers that are not trusted proxies (a client cannot dodge its quota)', async () => {
      const server = await serverWith({ trustedProxies: ['127.0.0.1'], limits: { maxConnectionsPerIp: 2 } });
      await openVia(server, '203.0.113.1', '127.0.0.9');
      await openVia(server, '203.0.113.2', '127.0.0.9');
      await assert.rejects(via(server, '203.0.113.3', '127.0.0.9').opened(), /429/);
      const withoutTrust = await serverWith({ limits: { maxConnectionsPerIp: 1 } });
      await openVia(withoutTrust, '203.0.113.1');
      await assert.rejects(via(withoutTrust, '203.0.113.2').opened(), /429/, 'no proxy is trusted by default');
    });

    it('refuses a trustedProxies entry that is not an address or range, naming it', () => {
      assert.throws(() => resolveConfig({ trustedProxies: ['10.0.0.0/8', 'proxy.internal'] }), (error: unknown) => error instanceof ConfigError && /trustedProxies\[1\] "proxy.internal"/.test(error.message));
    });
  });

  it('refuses the connection past maxConnections for the app, from any address, for v1 too', async () => {
    const server = await serverWith({ limits: { maxConnections: 2 } });
    track(await TestClient.open(rawUrl(server, 'lim'), { localAddress: '127.0.0.3' }));
    track(await TestClient.open(rawUrl(server, 'lim'), { localAddress: '127.0.0.4' }));
    await assert.rejects(new TestClient(rawUrl(server, 'lim'), { localAddress: '127.0.0.5' }).opened(), /429/);
    await assert.rejects(V1Client.open(server), /429/);
  });
});

describe('message rate limits', () => {
  it('raw: a burst over messageBurst closes the sender with 4502; what fit was delivered; others unaffected', async () => {
    const server = await serverWith({ limits: { messagesPerSecond: 5, messageBurst: 10 } });
    const flooder = track(await TestClient.open(rawUrl(server, 'flood')));
    const listener = track(await TestClient.open(rawUrl(server, 'flood')));
    const bystander = track(await TestClient.open(rawUrl(server, 'flood')));
    for (let i = 0; i < 50; i++) flooder.ws.send(`m${i}`);
    assert.equal((await flooder.closed()).code, 4502);
    await settle();
    assert.deepEqual(listener.received.map((m) => m.text), Array.from({ length: 10 }, (_, i) => `m${i}`));
    bystander.ws.send('after the flood');
    await listener.until(() => listener.received.some((m) => m.text === 'after the flood'), 'bystander message');
  });

  it('v1: commands over the rate get error 110 and are not executed; the connection stays', async () => {
    const server = await serverWith({ limits: { messagesPerSecond: 20, messageBurst: 5 } });
    const client = await V1Client.connected(server);
    track(client.raw);
    const ids = Array.from({ length: 12 }, (_, i) => client.send('publish', { channel: 'rl', data: i }));
    const replies = await Promise.all(ids.map((id) => client.reply(id)));
    const refused = replies.filter((r) => r.error?.code === 110);
    assert.ok(refused.length >= 5, `${refused.length} refused`);
    assert.equal(refused[0]?.error?.name, 'rate_limited');
    await settle(300); // the bucket refills: commands run again
    const history = await client.command('history', { channel: 'rl' });
    assert.equal((history.result?.['publications'] as unknown[]).length, replies.filter((r) => r.ok).length, 'refused publishes were not published');
  });
});

describe('presence cap', () => {
  it('raw: a joiner past maxPresenceMembers gets an error frame and 4005; v1 gets 107', async () => {
    const server = await serverWith({ limits: { maxPresenceMembers: 2 } });
    for (const user of ['a', 'b']) {
      const member = track(await TestClient.open(rawUrl(server, 'presence-full', `api_key=${TEST_APP.key}&user=${user}`)));
      await member.until(() => member.events('system:member_list').length === 1, 'member_list');
    }
    const third = track(new TestClient(rawUrl(server, 'presence-full', `api_key=${TEST_APP.key}&user=c`)));
    assert.equal((await third.messages(1))[0]?.text, '{"error":"Presence is full on this channel"}');
    assert.equal((await third.closed()).code, 4005);
    const v1 = await V1Client.connected(server);
    track(v1.raw);
    assert.equal((await v1.command('subscribe', { channel: 'presence-full' })).error?.code, 107);
    assert.equal((await v1.command('subscribe', { channel: 'no-presence-here' })).ok, true);
  });
});

describe('token kinds and keys', () => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const rsaPublicPem = rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const rotated = 'rotated-secret-0123456789abcdef';
  const keyed = {
    ...TEST_APP,
    tokenKeys: [
      { kid: '2026-11', alg: 'HS256' as const, secret: rotated },
      { kid: 'rsa-1', alg: 'RS256' as const, publicKey: rsaPublicPem },
    ],
  };

  function sign(claims: Record<string, unknown>, header: { alg: string; kid?: string }, key: Uint8Array | ReturnType<typeof generateKeyPairSync>['privateKey'], sub: string, exp: number | string = '1h'): Promise<string> {
    return new SignJWT(claims).setProtectedHeader(header).setSubject(sub).setExpirationTime(exp).sign(key);
  }
  const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

  async function rawOutcome(server: ChorusServer, channel: string, token: string): Promise<'open' | number> {
    const client = track(new TestClient(rawUrl(server, channel, `api_key=${TEST_APP.key}&jwt=${token}`)));
    await client.opened();
    await settle(100);
    return client.closeCode ?? 'open';
  }

  it('a connection token is not a channel token, and a channel token is not a connection token', async () => {
    const server = await serverWith({});
    const connectionTokenForChannelName = await connectionToken('private-x');
    assert.equal(await rawOutcome(server, 'private-x', connectionTokenForChannelName), 4003);
    const v1 = await V1Client.connected(server);
    track(v1.raw);
    assert.equal((await v1.command('subscribe', { channel: 'private-x', token: connectionTokenForChannelName })).error?.code, 103);
    const fresh = await V1Client.open(server);
    assert.equal((await fresh.command('connect', { token: await channelToken('alice') })).error?.code, 101);
  });

  it('rotated keys by kid, RS256 public keys, and pinned algorithms', async () => {
    const server = await serverWith({ apps: [keyed] });
    assert.equal(await rawOutcome(server, 'private-k', await sign({}, { alg: 'HS256' }, bytes(TEST_APP.secret), 'private-k')), 'open', 'no kid: the app secret');
    assert.equal(await rawOutcome(server, 'private-k', await sign({}, { alg: 'HS256', kid: '2026-11' }, bytes(rotated), 'private-k')), 'open', 'kid 2026-11');
    assert.equal(await rawOutcome(server, 'private-k', await sign({}, { alg: 'RS256', kid: 'rsa-1' }, rsa.privateKey, 'private-k')), 'open', 'kid rsa-1');
    assert.equal(await rawOutcome(server, 'private-k', await sign({}, { alg: 'HS256', kid: 'unknown' }, bytes(rotated), 'private-k')), 4003, 'unknown kid');
    assert.equal(await rawOutcome(server, 'private-k', await sign({}, { alg: 'HS384', kid: '2026-11' }, bytes(rotated), 'private-k')), 4003, 'alg not the key\'s');
    assert.equal(await rawOutcome(server, 'private-k', await sign({}, { alg: 'HS256', kid: '2026-11' }, bytes(TEST_APP.secret), 'private-k')), 4003, 'wrong key for kid');
    assert.equal(await rawOutcome(server, 'private-k', await sign({}, { alg: 'HS256', kid: 'rsa-1' }, bytes(rsaPublicPem), 'private-k')), 4003, 'HS/RS confusion');
  });

  it('allows 5 s of clock skew on exp and no more; a future nbf is refused', async () => {
    const server = await serverWith({});
    const now = Math.floor(Date.now() / 1000);
    const secret = bytes(TEST_APP.secret);
    assert.equal(await rawOutcome(server, 'private-t', await sign({}, { alg: 'HS256' }, secret, 'private-t', now - 2)), 'open');
    assert.equal(await rawOutcome(server, 'private-t', await sign({}, { alg: 'HS256' }, secret, 'private-t', now - 30)), 4003);
    const future = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('private-t').setExpirationTime('1h').setNotBefore(now + 120).sign(secret);
    assert.equal(await rawOutcome(server, 'private-t', future), 4003);
  });
});

describe('JSON Schema per channel pattern', () => {
  const schema = { type: 'object', required: ['text'], additionalProperties: false, properties: { text: { type: 'string', maxLength: 10 } } };

  it('refuses invalid publications in every dialect with the failing path, and delivers valid ones', async () => {
    const server = await serverWith({ apps: [{ ...TEST_APP, channels: [{ pattern: 'typed-*', schema }] }] });
    const watcher = await V1Client.connected(server);
    track(watcher.raw);
    await watcher.command('subscribe', { channel: 'typed-chat' });

    const v1 = await V1Client.connected(server);
    track(v1.raw);
    assert.deepEqual((await v1.command('publish', { channel: 'typed-chat', data: { text: 42 } })).error, { code: 111, name: 'invalid_message', message: 'data/text must be string' });
    assert.equal((await v1.command('publish', { channel: 'typed-chat', data: {} })).error?.message, 'data/text is required');
    assert.equal((await v1.command('publish', { channel: 'typed-chat', b64: 'AAEC' })).error?.code, 111);
    assert.equal((await v1.command('publish', { channel: 'typed-chat', data: { text: 'ok v1' } })).ok, true);

    const raw = track(await TestClient.open(rawUrl(server, 'typed-chat')));
    raw.ws.send(JSON.stringify({ event: 'msg', data: { text: 'far too long for this' } }));
    assert.equal((await raw.messages(1))[0]?.text, '{"error":"Invalid message: data/text must NOT have more than 10 characters"}');
    raw.ws.send('plain text is a string, not an object');
    assert.equal((await raw.messages(2))[1]?.text, '{"error":"Invalid message: data must be object"}');
    raw.ws.send(JSON.stringify({ event: 'msg', data: { text: 'ok raw' } }));

    const rest = await fetch(`http://127.0.0.1:${server.port}/api/publish`, {
      method: 'POST',
      body: JSON.stringify({ key: TEST_APP.key, secret: TEST_APP.secret, channelId: 'typed-chat', message: { event: 'msg', data: { text: 'ok', nope: 1 } } }),
    });
    assert.equal(rest.status, 400);
    assert.match(((await rest.json()) as { error: string }).error, /Invalid message: data\/nope is not allowed/);

    await watcher.untilPushes(2);
    await settle();
    assert.deepEqual(watcher.pushes('pub').map((p) => p.data), [{ text: 'ok v1' }, { text: 'ok raw' }]);
    assert.equal(raw.ws.readyState, raw.ws.OPEN, 'an invalid message does not cost the connection');
  });

  it('an invalid schema in the config is a config error naming the rule', () => {
    assert.throws(
      () => resolveConfig({ apps: [{ ...TEST_APP, channels: [{ pattern: 'x-*', schema: { type: 'no-such-type' } }] }] }),
      /apps\[0\]\.channels\[0\]\.schema is not a valid JSON Schema/,
    );
  });
});

describe('log hygiene', () => {
  it('never writes tokens, secrets or API secrets to the log, even at trace level', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const metricsToken = 'metrics-token-never-logged-0123';
    const server = await startServer(
      { port: 0, host: '127.0.0.1', logLevel: 'trace', apps: [{ ...TEST_APP }], metrics: { token: metricsToken } },
      { logger: pino({ level: 'trace' }, sink) },
    );
    after(() => server.close());
    const goodChannelToken = await channelToken('private-log');
    const badToken = `${goodChannelToken}x`;
    const connToken = await connectionToken('alice');
    track(await TestClient.open(rawUrl(server, 'private-log', `api_key=${TEST_APP.key}&jwt=${goodChannelToken}`)));
    await track(new TestClient(rawUrl(server, 'private-log', `api_key=${TEST_APP.key}&jwt=${badToken}`))).closed();
    const v1 = await V1Client.connected(server, { token: connToken });
    track(v1.raw);
    const bad = await V1Client.open(server);
    await bad.command('connect', { token: badToken });
    await fetch(`http://127.0.0.1:${server.port}/api/publish`, { method: 'POST', body: JSON.stringify({ key: TEST_APP.key, secret: `${TEST_APP.secret}-wrong`, channelId: 'c', message: 'x' }) });
    // Refusals are logged (one line each, with code and reason): a token in the URL stays out.
    await track(new TestClient(rawUrl(server, 'private-log', `api_key=wrong-key-${badToken}&jwt=${badToken}`))).closed();
    await track(new TestClient(`${rawUrl(server, 'private-log').replace('/v4/private-log', '/nowhere')}&jwt=${badToken}`)).closed();
    for (const authorization of [`Bearer ${metricsToken}`, `Bearer ${metricsToken}-wrong`]) {
      await fetch(`http://127.0.0.1:${server.port}/metrics?token=${metricsToken}`, { headers: { authorization } });
    }
    await settle();
    const log = lines.join('');
    assert.ok(lines.length > 3, 'the server did log at trace level');
    assert.ok((log.match(/"msg":"connection refused"/g)?.length ?? 0) >= 4, 'the refusals were logged');
    for (const secret of [goodChannelToken, badToken, connToken, TEST_APP.secret, metricsToken]) assert.ok(!log.includes(secret), `log contains ${secret.slice(0, 12)}…`);
    assert.ok(!log.includes(goodChannelToken.split('.')[2] ?? 'x'), 'not even a token signature');
  });
});

describe('tokens that expire while connected', () => {
  const soon = (): number => Math.floor(Date.now() / 1000) + 1;

  it('v1: the client is told, then closed with 4503 after tokenGraceMs unless it refreshed', async () => {
    const server = await serverWith({ tokenGraceMs: 300 });
    const client = await V1Client.open(server);
    track(client.raw);
    const connect = await client.command('connect', { token: await connectionToken('alice', { exp: soon() }) });
    assert.equal(typeof connect.result?.['expiresAt'], 'number');
    const [expired] = await withTimeout(client.untilPushes(1, 'token_expired'), 3000, 'token_expired push');
    assert.deepEqual(expired, { type: 'token_expired', graceMs: 300 });
    assert.equal((await client.raw.closed(2000)).code, 4503);
    assert.equal(client.pushes('disconnect')[0]?.['reconnect'], true);
  });

  it('v1: refresh with a new token for the same user keeps the connection; another user is refused', async () => {
    const server = await serverWith({ tokenGraceMs: 200 });
    const client = await V1Client.open(server);
    track(client.raw);
    await client.command('connect', { token: await connectionToken('alice', { exp: soon() }) });
    assert.equal((await client.command('refresh', { token: await connectionToken('mallory') })).error?.code, 101);
    const refreshed = await client.command('refresh', { token: await connectionToken('alice') });
    assert.ok(Number(refreshed.result?.['expiresAt']) > Date.now() + 3_000_000);
    await settle(1800);
    assert.equal(client.raw.ws.readyState, client.raw.ws.OPEN);
    assert.equal(client.pushes('token_expired').length, 0);
  });

  it('raw: a private channel closes with 4503 when its token expires', async () => {
    const server = await serverWith({ tokenGraceMs: 100 });
    const token = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('private-exp').setExpirationTime(soon()).sign(new TextEncoder().encode(TEST_APP.secret));
    const client = track(await TestClient.open(rawUrl(server, 'private-exp', `api_key=${TEST_APP.key}&jwt=${token}`)));
    assert.equal((await client.closed(3000)).code, 4503);
  });
});
