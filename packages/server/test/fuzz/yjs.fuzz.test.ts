/**
 * Fuzzed Yjs frames (dialects/yjs/wire.ts): y-protocols messages built with lib0's encoders
 * (sync step 1/2/update with real, truncated and random payloads; awareness updates with any
 * entries; lengths that lie), and bytes of any kind. parseMessage never throws and reads every
 * well-formed message back as what was encoded; on a room, each case ends in the server's sync
 * step 2 (the frames were accepted) or a documented close (4020 exactly when a frame is not one
 * message), and a watcher in the room keeps its connection.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import * as encoding from 'lib0/encoding';
import * as Y from 'yjs';
import { CloseCodes } from '@chorus/protocol';
import { parseMessage } from '../../src/dialects/yjs/wire.ts';
import { TEST_APP, TestClient, wsBase } from '../helpers.ts';
import { CHORUS_CLOSE_CODES, fuzz, fuzzParameters, startFuzzServer, wsCase, type FuzzServer } from './harness.ts';

function encode(write: (encoder: encoding.Encoder) => void): Uint8Array {
  const encoder = encoding.createEncoder();
  write(encoder);
  return encoding.toUint8Array(encoder);
}

/** A real Yjs update: a few edits to a fresh document. */
const realUpdate = fc.array(fc.tuple(fc.string({ maxLength: 8 }), fc.nat(5)), { minLength: 1, maxLength: 4 }).map((edits) => {
  const doc = new Y.Doc();
  const text = doc.getText('text');
  for (const [insert, at] of edits) text.insert(Math.min(at, text.length), insert);
  return Y.encodeStateAsUpdate(doc);
});

const payload = fc.oneof(
  { arbitrary: realUpdate, weight: 3 },
  { arbitrary: realUpdate.chain((u) => fc.nat(u.length - 1).map((n) => u.subarray(0, n))), weight: 1 },
  { arbitrary: fc.uint8Array({ maxLength: 30 }), weight: 1 },
  { arbitrary: fc.constant(Uint8Array.of(0, 0)), weight: 1 },
);

const stateVector = fc.oneof(
  fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 3 }).map((pairs) => encode((e) => {
    encoding.writeVarUint(e, pairs.length);
    for (const [client, clock] of pairs) {
      encoding.writeVarUint(e, client);
      encoding.writeVarUint(e, clock);
    }
  })),
  fc.uint8Array({ maxLength: 10 }),
);

const awarenessState = fc.oneof(fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v)), fc.constant('null'), fc.string({ maxLength: 10 }));

const awareness = fc.array(fc.record({ clientId: fc.nat(), clock: fc.nat(), state: awarenessState }), { maxLength: 3 }).map((entries) => encode((e) => {
  encoding.writeVarUint(e, entries.length);
  for (const { clientId, clock, state } of entries) {
    encoding.writeVarUint(e, clientId);
    encoding.writeVarUint(e, clock);
    encoding.writeVarString(e, state);
  }
}));

type Built = { kind: 'sync-step1' | 'update' | 'awareness' | 'query-awareness' | 'invalid'; bytes: Uint8Array };

const message: fc.Arbitrary<Built> = fc.oneof(
  stateVector.map((sv) => ({ kind: 'sync-step1' as const, bytes: encode((e) => { encoding.writeVarUint(e, 0); encoding.writeVarUint(e, 0); encoding.writeVarUint8Array(e, sv); }) })),
  fc.tuple(fc.constantFrom(1, 2), payload).map(([step, p]) => ({ kind: 'update' as const, bytes: encode((e) => { encoding.writeVarUint(e, 0); encoding.writeVarUint(e, step); encoding.writeVarUint8Array(e, p); }) })),
  awareness.map((a) => ({ kind: 'awareness' as const, bytes: encode((e) => { encoding.writeVarUint(e, 1); encoding.writeVarUint8Array(e, a); }) })),
  fc.constant({ kind: 'query-awareness' as const, bytes: Uint8Array.of(3) }),
  // Lengths that lie, trailing bytes, unknown types and steps, bytes of any kind.
  fc.tuple(fc.nat(5), fc.nat(5), fc.integer({ min: 0, max: 2 ** 40 }), fc.uint8Array({ maxLength: 12 })).map(([type, step, length, rest]) => ({ kind: 'invalid' as const, bytes: encode((e) => { encoding.writeVarUint(e, type); encoding.writeVarUint(e, step); encoding.writeVarUint(e, length); encoding.writeUint8Array(e, rest); }) })),
  fc.uint8Array({ maxLength: 40 }).map((bytes) => ({ kind: 'invalid' as const, bytes })),
);

describe('fuzz: Yjs frames', () => {
  let fuzzed: FuzzServer;
  after(() => fuzzed?.stop());

  it('parseMessage never throws and reads well-formed messages back as encoded', () => {
    fc.assert(
      fc.property(message, fc.uint8Array({ maxLength: 3 }), (built, trailing) => {
        const parsed = parseMessage(built.bytes);
        if ('message' in parsed && built.kind !== 'invalid') assert.equal(parsed.message.kind, built.kind);
        // A well-formed message with bytes after it is not one message.
        if (trailing.length > 0 && 'message' in parsed) assert.ok('error' in parseMessage(Uint8Array.of(...built.bytes, ...trailing)));
      }),
      fuzzParameters(0x5eed_000d, 4000),
    );
  });

  it('every frame on a room is accepted (sync step 2 follows) or closed with a documented code', async (t) => {
    fuzzed = await startFuzzServer();
    const room = `${wsBase(fuzzed.server)}/yjs/fuzz-room?key=${TEST_APP.key}`;
    const watcher = await TestClient.open(room);
    const closes = new Map<number, number>();
    const finalStep1 = encode((e) => { encoding.writeVarUint(e, 0); encoding.writeVarUint(e, 0); encoding.writeVarUint8Array(e, Y.encodeStateVector(new Y.Doc())); });
    await fuzz(0x5eed_000e, 500, fc.array(message, { minLength: 1, maxLength: 3 }), async (frames) => {
      const outcome = await wsCase(room, async (ws, received) => {
        for (const f of frames) ws.send(f.bytes, { binary: true });
        ws.send(finalStep1, { binary: true });
        // Sync step 2 starts 0, 1: the server's answer to the last frame, after all the others.
        await new Promise<void>((resolve) => {
          ws.on('message', (data: Buffer) => void (data[0] === 0 && data[1] === 1 && received.length > 0 && resolve()));
          ws.on('close', () => resolve());
        });
      });
      closes.set(outcome.closeCode ?? 0, (closes.get(outcome.closeCode ?? 0) ?? 0) + 1);
      const malformed = frames.some((f) => 'error' in parseMessage(f.bytes));
      if (outcome.closeCode === 1000) assert.ok(!malformed, 'a malformed frame was accepted');
      else {
        assert.ok(CHORUS_CLOSE_CODES.has(outcome.closeCode ?? 0), `documented close ${outcome.closeCode} (${outcome.closeReason})`);
        if (outcome.closeCode === CloseCodes.INVALID_YJS_MESSAGE.code) assert.ok(malformed, 'closed 4020 although every frame was one message');
      }
      assert.equal(watcher.closeCode, undefined, 'the watcher is still connected');
      fuzzed.assertNoErrors();
    });
    t.diagnostic(`closes: ${JSON.stringify(Object.fromEntries(closes))}`);
    watcher.close();
    await fuzzed.finish((line) => t.diagnostic(line));
  });
});
