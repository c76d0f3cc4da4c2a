/**
 * How the raw dialect refuses: every 4xxx close is preceded by PieSocket's `{"error"}` frame
 * (the only thing its SDKs' message listeners see), nothing a connection sends after its refusal
 * is published, and a frame the engine could not take is answered instead of dropped.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SignJWT } from 'jose';
import { TEST_APP, TestClient, closeAfterwards, rawUrl, settle, wsBase } from './helpers.ts';
import { Opcode, RawSocket, encodeFrame } from './raw-socket.ts';
import { TestRedis } from './redis.ts';

const { serverWith, track } = closeAfterwards();

/** The frames a refused client saw, and its close code. */
async function refusal(client: TestClient): Promise<{ error: string | undefined; code: number }> {
  const { code } = await client.closed();
  const last = client.received.at(-1);
  const error = last && !last.binary ? (JSON.parse(last.text) as { error?: string }).error : undefined;
  return { error, code };
}

describe('raw dialect: every 4xxx close comes after an {"error"} frame', () => {
  it('4001 unknown key, 4002 bad channel, 4003 bad token, 4004 bad parameter', async () => {
    const server = await serverWith();
    const cases: Array<[string, number, RegExp]> = [
      [`${wsBase(server)}/v4/ch?api_key=nope`, 4001, /^Unknown api key$/],
      [`${wsBase(server)}/v4/${'x'.repeat(300)}?api_key=${TEST_APP.key}`, 4002, /^Invalid channel name$/],
      [rawUrl(server, 'private-a'), 4003, /^Authentication failed/],
      [rawUrl(server, 'ch', `api_key=${TEST_APP.key}&user=${'u'.repeat(2000)}`), 4004, /^Invalid user or uuid parameter$/],
    ];
    for (const [url, code, text] of cases) {
      const outcome = await refusal(track(new TestClient(url)));
      assert.equal(outcome.code, code, url.slice(0, 80));
      assert.match(outcome.error ?? '(no error frame)', text, `${code}`);
    }
  });

  it('4005 presence full', async () => {
    const server = await serverWith({ apps: [{ ...TEST_APP, limits: { maxPresenceMembers: 1 } }] });
    track(await TestClient.open(rawUrl(server, 'room', `api_key=${TEST_APP.key}&presence=1&user=a`)));
    const outcome = await refusal(track(new TestClient(rawUrl(server, 'room', `api_key=${TEST_APP.key}&presence=1&user=b`))));
    assert.deepEqual(outcome, { error: 'Presence is full on this channel', code: 4005 });
  });

  it('4502 rate limited: the frame names the limit and how to raise it', async () => {
    const server = await serverWith({ apps: [{ ...TEST_APP, limits: { messagesPerSecond: 5, messageBurst: 5 } }] });
    const client = track(await TestClient.open(rawUrl(server, 'rl')));
    for (let i = 0; i < 10; i++) client.ws.send(`m${i}`);
    const outcome = await refusal(client);
    assert.equal(outcome.code, 4502);
    assert.match(outcome.error ?? '(no error frame)', /^Rate limit exceeded: this app allows 5 messages per second per connection \(bursts of 5\).*limits\.messagesPerSecond/);
  });

  it('4503 token expired', async () => {
    const server = await serverWith({ tokenGraceMs: 0 });
    const token = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('private-t')
      .setExpirationTime(Math.floor(Date.now() / 1000) + 2).sign(new TextEncoder().encode(TEST_APP.secret));
    const client = track(await TestClient.open(rawUrl(server, 'private-t', `api_key=${TEST_APP.key}&jwt=${token}`)));
    const outcome = await refusal(client);
    assert.equal(outcome.code, 4503);
    assert.match(outcome.error ?? '(no error frame)', /^Token expired/);
  });
});

describe('raw dialect: nothing is published after a refusal', () => {
  it('a flooder closed with 4502 that keeps sending: its channel gets exactly the burst, no gap, nothing later', async () => {
    // One token a second: reading the 2,000 frames can take a few turns on a loaded machine, and
    // at 100/s a token refilled meanwhile would let frame 200 through before the refusal.
    const server = await serverWith({ apps: [{ ...TEST_APP, limits: { messagesPerSecond: 1, messageBurst: 200 } }] });
    const listener = track(await TestClient.open(rawUrl(server, 'flood')));
    // A hand-written client: ws would stop sending once it sees the close frame, this one doesn't.
    const flooder = await RawSocket.upgrade(server.port, `/v4/flood?api_key=${TEST_APP.key}`);
    try {
      const frames = Array.from({ length: 2000 }, (_, i) => encodeFrame({ opcode: Opcode.TEXT, payload: Buffer.from(String(i)) }));
      flooder.write(Buffer.concat(frames));
      await flooder.closeFrame();
      // Long after the close, with the bucket refilled many times over, it goes on sending.
      for (let round = 0; round < 6; round++) {
        await settle(250);
        if (flooder.isClosed) break;
        flooder.write(encodeFrame({ opcode: Opcode.TEXT, payload: Buffer.from(`late-${round}`) }));
      }
      await settle(200);
      const texts = listener.received.map((r) => r.text);
      assert.deepEqual(texts, Array.from({ length: 200 }, (_, i) => String(i)), 'exactly the burst, in order');
    } finally {
      flooder.destroy();
    }
  });
});

describe('raw dialect and REST with Redis unreachable', () => {
  it('a raw sender gets {"error": "Message not delivered…"} and stays open; REST answers 503 with Retry-After', async () => {
    const redis = await TestRedis.start();
    try {
      const server = await serverWith({ engine: { type: 'redis', url: redis.url } });
      const sender = track(await TestClient.open(rawUrl(server, 'down')));
      const receiver = track(await TestClient.open(rawUrl(server, 'down')));
      // Raw subscriptions attach to Redis asynchronously after open: send until one arrives.
      for (let i = 0; i < 50 && receiver.received.length === 0; i++) {
        sender.ws.send('before');
        await settle(100);
      }
      await receiver.messages(1);

      await redis.stop();
      sender.ws.send('while-down');
      await sender.until(() => sender.received.some((r) => r.text.includes('Message not delivered')), 'not-delivered error', 10_000);
      assert.match((JSON.parse(sender.received.at(-1)?.text ?? '{}') as { error?: string }).error ?? '', /^Message not delivered: the server cannot reach its engine \(Redis\)/);
      assert.equal(sender.ws.readyState, sender.ws.OPEN, 'the sender stays connected');

      const response = await fetch(`http://127.0.0.1:${server.port}/api/publish`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ key: TEST_APP.key, secret: TEST_APP.secret, channelId: 'down', message: 'rest' }),
      });
      assert.equal(response.status, 503);
      assert.equal(response.headers.get('retry-after'), '2');
      assert.equal(((await response.json()) as { code: string }).code, 'engine_unavailable');
      assert.deepEqual(new Set(receiver.received.map((r) => r.text)), new Set(['before']), 'nothing half-delivered');
    } finally {
      await redis.stop();
    }
  });
});
