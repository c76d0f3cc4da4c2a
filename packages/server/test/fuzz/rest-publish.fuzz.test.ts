/**
 * Fuzzed REST publish bodies (`POST /api/publish`, PieSocket's `{key, secret, channelId|roomId,
 * message}`): each body is built from fields whose verdict is known, plus JSON and text of any
 * shape, and gets the documented status and code (docs/codes.md): 400 bad_request, 401
 * unauthorized, 413 payload_too_large, or 200 with the message delivered to a subscriber.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { isValidChannelName } from '@chorus/protocol';
import { TEST_APP, TestClient, rawUrl } from '../helpers.ts';
import { assertCodedHttpError, deeplyNested, fuzz, httpRequest, startFuzzServer, type FuzzServer } from './harness.ts';

const MAX_MESSAGE_SIZE = 64 * 1024;
const anything = fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.string({ maxLength: 30 }));
const field = <T>(value: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.option(value, { nil: undefined, freq: 8 });

const publishBody = fc.record({
  key: field(fc.oneof({ arbitrary: fc.constant(TEST_APP.key), weight: 6 }, { arbitrary: fc.constant('nobody-key'), weight: 1 }, { arbitrary: anything, weight: 1 })),
  secret: field(fc.oneof({ arbitrary: fc.constant(TEST_APP.secret), weight: 6 }, { arbitrary: fc.constant('wrong-secret-0123456789'), weight: 1 }, { arbitrary: anything, weight: 1 })),
  channelId: field(fc.oneof(fc.constantFrom('fuzz', 'fuzz', 'fuzz', '', 'a b', 'x'.repeat(201), 'é'), fc.integer({ min: -10, max: 1000 }), anything)),
  roomId: field(fc.constantFrom('fuzz', 'other', '')),
  message: field(
    fc.oneof(
      { arbitrary: anything, weight: 6 },
      { arbitrary: fc.constant('m'.repeat(MAX_MESSAGE_SIZE + 1)), weight: 1 },
      // Text standing for JSON nested thousands of levels deep (spliced in below).
      { arbitrary: fc.integer({ min: 3000, max: 20_000 }).map((depth) => ({ nested: depth })), weight: 1 },
    ),
  ),
});
type PublishBody = typeof publishBody extends fc.Arbitrary<infer T> ? T : never;

const restCase = fc.oneof(
  { arbitrary: publishBody.map((fields) => ({ fields, text: undefined })), weight: 8 },
  { arbitrary: fc.oneof(fc.json({ maxDepth: 2 }), fc.string({ maxLength: 40 }), fc.constant(deeplyNested(50_000))).map((text) => ({ fields: undefined, text })), weight: 1 },
);

/** The body's text: a nested-depth marker becomes that deep a JSON array. */
function textOf(fields: PublishBody): string {
  const { message } = fields;
  if (typeof message === 'object' && message !== null && !Array.isArray(message) && typeof (message as { nested?: unknown }).nested === 'number' && Object.keys(message).length === 1) {
    return JSON.stringify({ ...fields, message: '<nested>' }).replace('"<nested>"', deeplyNested((message as { nested: number }).nested));
  }
  return JSON.stringify(fields);
}

/** The status a publish body must get, in the order the server checks; undefined: any documented one. */
function expectedStatus(fields: PublishBody, text: string): number | undefined {
  const { key, secret, message } = fields;
  const channel = fields.channelId ?? fields.roomId;
  if (Buffer.byteLength(text) > MAX_MESSAGE_SIZE * 2 + 4096) return 413;
  if (typeof key !== 'string' || typeof secret !== 'string') return 400;
  const name = typeof channel === 'number' ? String(channel) : channel;
  if (typeof name !== 'string' || !isValidChannelName(name)) return 400;
  if (message === undefined) return 400;
  if (key !== TEST_APP.key || secret !== TEST_APP.secret) return 401;
  if (typeof message === 'string' && Buffer.byteLength(message) > MAX_MESSAGE_SIZE) return 413;
  return undefined;
}

describe('fuzz: REST publish bodies', () => {
  let fuzzed: FuzzServer;
  after(() => fuzzed?.stop());

  it('every body gets its documented status, and accepted messages are delivered once', async (t) => {
    fuzzed = await startFuzzServer();
    const subscriber = await TestClient.open(rawUrl(fuzzed.server, 'fuzz'));
    const statuses = new Map<number, number>();
    let published = 0;
    await fuzz(
      0x5eed_0008,
      1000,
      restCase,
      async ({ fields, text }) => {
        const body = text ?? textOf(fields ?? {});
        const { status, text: answer } = await httpRequest(fuzzed.server.port, 'POST', '/api/publish', body);
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        if (status === 200) {
          assert.equal((JSON.parse(answer) as { success?: unknown }).success, true);
          if ((fields?.channelId ?? fields?.roomId) === 'fuzz') published++;
        } else {
          assertCodedHttpError(status, answer);
        }
        const expected = fields ? expectedStatus(fields, body) : undefined;
        if (expected !== undefined) assert.equal(status, expected, answer);
        fuzzed.assertNoErrors();
      },
      [
        // Found by this fuzz: JSON.stringify of a deeply nested message threw (a 500).
        { fields: { key: TEST_APP.key, secret: TEST_APP.secret, channelId: 'fuzz', roomId: undefined, message: { nested: 10_000 } }, text: undefined },
      ],
    );
    await subscriber.until(() => subscriber.received.length >= published, `${published} published messages`);
    assert.equal(subscriber.received.length, published, 'every accepted publish was delivered once');
    subscriber.close();
    t.diagnostic(`statuses: ${JSON.stringify(Object.fromEntries(statuses))}; delivered: ${published}`);
    await fuzzed.finish((line) => t.diagnostic(line));
  });
});
