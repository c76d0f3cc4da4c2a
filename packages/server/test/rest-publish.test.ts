/** POST /api/publish, PieSocket-compatible. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ChorusServer } from '../src/index.ts';
import { OTHER_APP, TEST_APP, TestClient, rawUrl, settle, startTestServer } from './helpers.ts';

let server: ChorusServer;
let listener: TestClient;

function publish(body: unknown, init: RequestInit = {}): Promise<Response> {
  return fetch(`http://127.0.0.1:${server.port}/api/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    ...init,
  });
}

before(async () => {
  server = await startTestServer({ limits: { maxMessageSize: 1024 } });
  listener = await TestClient.open(rawUrl(server, 'news'));
});
after(async () => {
  listener.ws.terminate();
  await server.close();
});

describe('REST publish', () => {
  it('delivers a string as is and an object as JSON text, in order', async () => {
    const event = { event: 'new_message', data: { text: 'hi' }, meta: { from: 'backend' } };
    let res = await publish({ key: TEST_APP.key, secret: TEST_APP.secret, channelId: 'news', message: 'plain text' });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { success: boolean; offset: number; epoch: string };
    assert.deepEqual(body, { success: true, offset: 1, epoch: body.epoch });
    assert.equal(typeof body.epoch, 'string');
    res = await publish({ key: TEST_APP.key, secret: TEST_APP.secret, roomId: 'news', message: event });
    assert.equal(res.status, 200);
    const got = await listener.messages(2);
    assert.equal(got[0]?.text, 'plain text');
    assert.equal(got[0]?.binary, false);
    assert.deepEqual(JSON.parse(got[1]?.text ?? ''), event);
  });

  it('refuses a wrong secret, an unknown key and another app\'s secret with 401', async () => {
    const before = listener.received.length;
    for (const body of [
      { key: TEST_APP.key, secret: 'wrong', channelId: 'news', message: 'x' },
      { key: 'unknown-key', secret: TEST_APP.secret, channelId: 'news', message: 'x' },
      { key: TEST_APP.key, secret: OTHER_APP.secret, channelId: 'news', message: 'x' },
    ]) {
      const res = await publish(body);
      assert.equal(res.status, 401);
      assert.deepEqual(await res.json(), { error: 'Unknown key or wrong secret.', code: 'unauthorized' });
    }
    await settle();
    assert.equal(listener.received.length, before, 'nothing was delivered');
  });

  const malformed: Array<[string, unknown]> = [
    ['invalid JSON', '{"key": '],
    ['an array', '[1,2]'],
    ['missing secret', { key: TEST_APP.key, channelId: 'news', message: 'x' }],
    ['missing message', { key: TEST_APP.key, secret: TEST_APP.secret, channelId: 'news' }],
    ['a bad channel name', { key: TEST_APP.key, secret: TEST_APP.secret, channelId: 'bad name', message: 'x' }],
  ];
  for (const [name, body] of malformed) {
    it(`answers 400 to ${name}`, async () => {
      const res = await publish(body);
      assert.equal(res.status, 400);
      const json = (await res.json()) as { code: string; error: string };
      assert.equal(json.code, 'bad_request');
      assert.ok(json.error.length > 0);
    });
  }

  it('answers 413 to a message over the app limit and to an oversized body', async () => {
    let res = await publish({ key: TEST_APP.key, secret: TEST_APP.secret, channelId: 'news', message: 'x'.repeat(1025) });
    assert.equal(res.status, 413);
    res = await publish(JSON.stringify({ pad: 'y'.repeat(100_000) }));
    assert.equal(res.status, 413);
  });

  it('answers 405 to GET and keeps serving afterwards', async () => {
    const res = await fetch(`http://127.0.0.1:${server.port}/api/publish`);
    assert.equal(res.status, 405);
    const ok = await publish({ key: TEST_APP.key, secret: TEST_APP.secret, channelId: 'news', message: 'still alive' });
    assert.equal(ok.status, 200);
    await listener.until(() => listener.received.some((m) => m.text === 'still alive'), 'still alive');
  });
});

describe('health', () => {
  it('GET /health answers ok with counts', async () => {
    const res = await fetch(`http://127.0.0.1:${server.port}/health`);
    assert.equal(res.status, 200);
    const body = (await res.json()) as { status: string; connections: number };
    assert.equal(body.status, 'ok');
    assert.equal(body.connections, 1);
  });
});
