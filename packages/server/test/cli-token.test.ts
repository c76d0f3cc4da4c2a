/** `chorus token`: the JWTs verify with jose and are accepted by a real server. */
import assert from 'node:assert/strict';
import { createSecretKey } from 'node:crypto';
import { describe, it } from 'node:test';
import { decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import { TEST_APP, TestClient, closeAfterwards, rawUrl } from './helpers.ts';
import { V1Client } from './v1-helpers.ts';
import { run, writeTemp } from './cli-helpers.ts';

const { serverWith, track } = closeAfterwards();
const ROTATED = { kid: '2026-11', alg: 'HS512', secret: 'rotated-secret-0123456789-abcdef' } as const;
const server = await serverWith({ apps: [{ ...TEST_APP, allowAnonymous: false, tokenKeys: [{ ...ROTATED }] }] });
const appSecret = createSecretKey(Buffer.from(TEST_APP.secret));

/** Runs `chorus token …` and returns the single line it printed. */
async function mint(args: string[], env: Record<string, string> = {}): Promise<string> {
  const r = run(['token', ...args], { env });
  assert.equal(await r.exited(), 0, r.stderr());
  assert.equal(r.stderr(), '');
  assert.match(r.stdout(), /^[\w-]+\.[\w-]+\.[\w-]+\n$/, 'prints the token only');
  return r.stdout().trim();
}

describe('chorus token', () => {
  it('--channel mints a channel token (sub = channel, exp in 1 h, user claim) that opens a private channel', async () => {
    const token = await mint(['--channel', 'private-cli', '--user', 'alice', '--secret', TEST_APP.secret]);
    const { payload, protectedHeader } = await jwtVerify(token, appSecret, { subject: 'private-cli', algorithms: ['HS256'] });
    assert.equal(protectedHeader.alg, 'HS256');
    assert.equal(payload.user, 'alice');
    assert.equal(payload.aud, undefined, 'channel tokens carry no audience (PieSocket-compatible)');
    assert.equal((payload.exp ?? 0) - (payload.iat ?? 0), 3600);
    assert.ok(Math.abs((payload.iat ?? 0) - Date.now() / 1000) < 30);

    const a = track(await TestClient.open(rawUrl(server, 'private-cli', `api_key=${TEST_APP.key}&presence=1&jwt=${token}`)));
    const b = track(await TestClient.open(rawUrl(server, 'private-cli', `api_key=${TEST_APP.key}&jwt=${token}`)));
    b.ws.send('inside');
    await a.until(() => a.received.some((r) => r.text === 'inside'), 'the relayed frame');
    const list = a.events('system:member_list')[0]?.data as { members: Array<{ user: string }> };
    assert.equal(list.members[0]?.user, 'alice', 'the user claim is the presence identity');

    const other = track(new TestClient(rawUrl(server, 'private-other', `api_key=${TEST_APP.key}&jwt=${token}`)));
    assert.equal((await other.closed()).code, 4003, 'a token for another channel is refused');
  });

  it('--user alone mints a v1 connection token (aud chorus:connection, sub = user, --info) that connects', async () => {
    const token = await mint(['--user', 'bob', '--info', '{"name":"Bob"}', '--secret', TEST_APP.secret]);
    const { payload } = await jwtVerify(token, appSecret, { audience: 'chorus:connection', subject: 'bob' });
    assert.deepEqual(payload.info, { name: 'Bob' });
    const client = await V1Client.open(server);
    track(client.raw);
    const reply = await client.command('connect', { token });
    assert.equal(reply.ok, true, JSON.stringify(reply));
    assert.equal(reply.result?.['user'], 'bob');
    const sub = await client.command('subscribe', { channel: 'room', presence: true });
    assert.equal(sub.ok, true);
    const presence = await client.command('presence', { channel: 'room' });
    assert.deepEqual((presence.result?.['members'] as Array<{ info?: unknown }>)[0]?.info, { name: 'Bob' });
  });

  it('a channel token is not a connection token (the server refuses it)', async () => {
    const token = await mint(['--channel', 'bob', '--secret', TEST_APP.secret]);
    const client = await V1Client.open(server);
    track(client.raw);
    const reply = await client.command('connect', { token });
    assert.equal(reply.ok, false);
    assert.equal(reply.error?.code, 101);
  });

  it('--ttl takes seconds or a time span', async () => {
    const spans = [['90', 90], ['15m', 900], ['2h', 7200], ['7d', 604800], ['1 week', 604800]] as const;
    const tokens = await Promise.all(spans.map(([ttl]) => mint(['--channel', 'room', '--ttl', ttl, '--secret', TEST_APP.secret])));
    for (const [index, [ttl, seconds]] of spans.entries()) {
      const payload = decodeJwt(tokens[index] ?? '');
      assert.equal((payload.exp ?? 0) - (payload.iat ?? 0), seconds, ttl);
    }
  });

  it('--kid signs with that key of the config\'s tokenKeys; the server checks it with that key', async () => {
    const config = writeTemp('token-config.json', { apps: [{ ...TEST_APP, tokenKeys: [ROTATED] }] });
    const token = await mint(['--channel', 'private-kid', '--kid', ROTATED.kid, '--config', config]);
    assert.deepEqual(decodeProtectedHeader(token), { alg: 'HS512', typ: 'JWT', kid: ROTATED.kid });
    await jwtVerify(token, createSecretKey(Buffer.from(ROTATED.secret)), { algorithms: ['HS512'] });
    track(await TestClient.open(rawUrl(server, 'private-kid', `api_key=${TEST_APP.key}&jwt=${token}`)));
    const r = run(['token', '--channel', 'x', '--kid', 'nope', '--config', config]);
    assert.equal(await r.exited(), 2);
    assert.match(r.stderr(), /--kid: app "test" has no tokenKeys entry with kid "nope"/);
  });

  it('takes the secret from CHORUS_SECRET or CHORUS_CONFIG; --json prints token, header and payload', async () => {
    const fromEnv = await mint(['--channel', 'room'], { CHORUS_SECRET: TEST_APP.secret });
    await jwtVerify(fromEnv, appSecret);
    const config = writeTemp('token-env.yaml', `apps:\n  - id: test\n    key: ${TEST_APP.key}\n    secret: ${TEST_APP.secret}\n`);
    const r = run(['token', '--user', 'carol', '--json'], { env: { CHORUS_CONFIG: config } });
    assert.equal(await r.exited(), 0, r.stderr());
    const output = JSON.parse(r.stdout()) as { token: string; header: { alg: string }; payload: { sub: string; aud: string } };
    await jwtVerify(output.token, appSecret, { audience: 'chorus:connection' });
    assert.equal(output.header.alg, 'HS256');
    assert.equal(output.payload.sub, 'carol');
    assert.doesNotMatch(r.stdout(), new RegExp(TEST_APP.secret), 'the secret is never printed');
  });

  it('exit 2 for bad usage: no kind, a bad channel, --info with --channel, bad --info or --ttl, no secret', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--secret', TEST_APP.secret], /token needs --channel NAME .* or --user ID/],
      [['--channel', 'bad name', '--secret', TEST_APP.secret], /--channel: "bad name" is not a channel name/],
      [['--channel', 'room', '--info', '{}', '--secret', TEST_APP.secret], /--info is for connection tokens/],
      [['--user', 'u', '--info', '{nope', '--secret', TEST_APP.secret], /--info must be JSON/],
      [['--user', 'u', '--ttl', 'soon', '--secret', TEST_APP.secret], /--ttl takes a positive time span like 90, 30s, 15m, 1h or 7d, got "soon"/],
      [['--user', 'u', '--ttl', '0', '--secret', TEST_APP.secret], /--ttl takes a positive time span/],
      [['--user', 'u'], /token needs the app secret: --secret, CHORUS_SECRET or --config FILE/],
    ];
    const runs = cases.map(([args, message]) => ({ args, message, r: run(['token', ...args]) }));
    for (const { args, message, r } of runs) {
      assert.equal(await r.exited(), 2, args.join(' '));
      assert.match(r.stderr(), message);
      assert.equal(r.stdout(), '');
    }
  });
});
