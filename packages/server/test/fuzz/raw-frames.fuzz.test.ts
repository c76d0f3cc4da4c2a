/**
 * Fuzzed raw-dialect frames. A raw frame is relayed verbatim, but v1 and Pusher subscribers of
 * the same channel get it through encoders that parse it (the PieSocket envelope `{event, data}`
 * is unpacked for them): every frame a raw client sends must reach the raw, v1 and Pusher
 * subscribers of the channel, once each, as a frame their clients can parse, and the sender
 * must stay connected.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { TEST_APP, TestClient, rawUrl, wsBase } from '../helpers.ts';
import { deeplyNested, fuzz, startFuzzServer, type FuzzServer } from './harness.ts';

const CHANNEL = 'fuzz-fanout';

type RawFrame = { text: string } | { binary: Buffer };

const envelope = fc.record({ event: fc.oneof(fc.string({ maxLength: 20 }), fc.jsonValue({ maxDepth: 1 })), data: fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.string({ maxLength: 30 })), meta: fc.option(fc.jsonValue({ maxDepth: 2 }), { nil: undefined }) }, { requiredKeys: ['event'] });

const rawFrame: fc.Arbitrary<RawFrame> = fc.oneof(
  { arbitrary: envelope.map((e) => ({ text: JSON.stringify(e) })), weight: 5 },
  // An envelope whose data is thousands of levels deep: too deep for JSON.stringify.
  { arbitrary: fc.tuple(fc.string({ minLength: 1, maxLength: 10 }), fc.integer({ min: 3000, max: 20_000 }), fc.constantFrom('data', 'meta')).map(([event, depth, field]) => ({ text: `{"event":${JSON.stringify(event)},"${field}":${deeplyNested(depth)}${field === 'meta' ? ',"data":1' : ''}}` })), weight: 1 },
  { arbitrary: fc.oneof(fc.json({ maxDepth: 3 }), fc.string({ maxLength: 40 }), fc.constant('{"event":')).map((text) => ({ text })), weight: 3 },
  { arbitrary: fc.uint8Array({ minLength: 1, maxLength: 30 }).map((bytes) => ({ binary: Buffer.from(bytes) })), weight: 1 },
);

describe('fuzz: raw frames fanned out to every dialect', () => {
  let fuzzed: FuzzServer;
  after(() => fuzzed?.stop());

  it('every raw frame reaches the raw, v1 and Pusher subscribers once, as frames they can parse', async (t) => {
    fuzzed = await startFuzzServer();
    const { server } = fuzzed;
    const sender = await TestClient.open(rawUrl(server, CHANNEL));
    const raw = await TestClient.open(rawUrl(server, CHANNEL));
    const v1 = await TestClient.open(`${wsBase(server)}/v1/connect?key=${TEST_APP.key}`);
    v1.ws.send(JSON.stringify({ id: 1, type: 'connect' }));
    v1.ws.send(JSON.stringify({ id: 2, type: 'subscribe', channel: CHANNEL }));
    await v1.messages(2);
    const pusher = await TestClient.open(`${wsBase(server)}/app/${TEST_APP.key}?protocol=7`);
    pusher.ws.send(JSON.stringify({ event: 'pusher:subscribe', data: { channel: CHANNEL } }));
    await pusher.messages(2);
    let sent = 0;

    await fuzz(0x5eed_0009, 400, rawFrame, async (f) => {
      // Each case waits for all its deliveries, so the subscribers start it with nothing pending:
      // emptied, so a long run neither keeps every frame nor copies them (npm run fuzz).
      for (const client of [raw, v1, pusher]) client.received.length = 0;
      const before = { raw: 0, v1: 0, pusher: 0 };
      if ('text' in f) sender.ws.send(f.text);
      else sender.ws.send(f.binary, { binary: true });
      sent++;
      await raw.until(() => raw.received.length > before.raw, 'the raw subscriber\'s frame');
      await v1.until(() => v1.received.length > before.v1, 'the v1 subscriber\'s frame');
      // Pusher has no binary frames: a binary publication is not sent to its clients (docs/pusher.md).
      if ('binary' in f) {
        assert.equal(v1.received.length, before.v1 + 1);
        return fuzzed.assertNoErrors();
      }
      await pusher.until(() => pusher.received.length > before.pusher, 'the Pusher subscriber\'s frame');
      const [gotRaw, gotV1, gotPusher] = [raw.received.at(-1), v1.received.at(-1), pusher.received.at(-1)];
      assert.deepEqual(gotRaw?.data, Buffer.from(f.text), 'relayed verbatim');
      const push = JSON.parse(gotV1?.text ?? '') as { type?: string; channel?: string };
      assert.equal(push.type, 'pub', gotV1?.text);
      const event = JSON.parse(gotPusher?.text ?? '') as { event?: unknown; channel?: string; data?: unknown };
      assert.equal(event.channel, CHANNEL, gotPusher?.text);
      assert.equal(typeof event.event, 'string');
      assert.equal(sender.closeCode, undefined, 'the sender is still connected');
      fuzzed.assertNoErrors();
    }, [
      // Found by this fuzz: the Pusher encoder re-encoded an envelope's data with JSON.stringify,
      // which threw for data thousands of levels deep: no subscriber of the channel got the frame.
      { text: `{"event":"deep","data":${deeplyNested(10_000)}}` },
    ]);
    t.diagnostic(`frames fanned out: ${sent}`);
    for (const client of [sender, raw, v1, pusher]) client.close();
    await fuzzed.finish((line) => t.diagnostic(line));
  });
});
