/**
 * Bad binary input on Yjs rooms: every malformed frame gets the coded close 4020, never a crash
 * or an allocation by a declared length, and the server keeps serving everyone else.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import * as encoding from 'lib0/encoding';
import * as Y from 'yjs';
import { TEST_APP, TestClient, closeAfterwards, wsBase } from './helpers.ts';
import { editor, eventually, synced } from './yjs-helpers.ts';

const { serverWith, track } = closeAfterwards();
process.setMaxListeners(100);

function message(write: (encoder: encoding.Encoder) => void): Buffer {
  const encoder = encoding.createEncoder();
  write(encoder);
  return Buffer.from(encoding.toUint8Array(encoder));
}

/** A real update: some text typed into a fresh document. */
function realUpdate(): Uint8Array {
  const doc = new Y.Doc();
  doc.getText('text').insert(0, 'fuzz me');
  return Y.encodeStateAsUpdate(doc);
}

const syncUpdate = (update: Uint8Array): Buffer => message((e) => {
  encoding.writeVarUint(e, 0);
  encoding.writeVarUint(e, 2);
  encoding.writeVarUint8Array(e, update);
});

const CRAFTED: Array<[string, Buffer]> = [
  ['an empty frame', Buffer.alloc(0)],
  ['an unknown message type', Buffer.of(9)],
  ['a truncated varint', Buffer.of(0x80)],
  ['a varint of ten continuation bytes', Buffer.alloc(10, 0xff)],
  ['a sync message without a step', Buffer.of(0)],
  ['an unknown sync step', Buffer.of(0, 7, 0)],
  ['a sync update declaring 4 GiB', Buffer.of(0, 2, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3)],
  ['a sync update declaring 2^53 bytes', Buffer.of(0, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f)],
  ['a state vector declaring 2^40 entries', message((e) => {
    encoding.writeVarUint(e, 0);
    encoding.writeVarUint(e, 0);
    encoding.writeVarUint8Array(e, message((sv) => encoding.writeVarUint(sv, 2 ** 40)));
  })],
  ['a truncated update', syncUpdate(realUpdate().subarray(0, 6))],
  ['an update of garbage', syncUpdate(Buffer.from('not a yjs update at all'))],
  ['an update declaring a billion structs', syncUpdate(message((u) => {
    encoding.writeVarUint(u, 1);
    encoding.writeVarUint(u, 1e9);
    encoding.writeVarUint(u, 1);
    encoding.writeVarUint(u, 0);
  }))],
  ['an awareness update declaring 2^40 clients', message((e) => {
    encoding.writeVarUint(e, 1);
    encoding.writeVarUint8Array(e, message((a) => encoding.writeVarUint(a, 2 ** 40)));
  })],
  ['an awareness state that is not JSON', message((e) => {
    encoding.writeVarUint(e, 1);
    encoding.writeVarUint8Array(e, message((a) => {
      encoding.writeVarUint(a, 1);
      encoding.writeVarUint(a, 7);
      encoding.writeVarUint(a, 1);
      encoding.writeVarString(a, '{"cursor":');
    }));
  })],
  ['trailing bytes after a message', Buffer.of(3, 0)],
];

describe('yjs bad input', () => {
  it('closes each crafted frame with 4020 and keeps serving the room', async () => {
    const server = await serverWith();
    const url = `${wsBase(server)}/yjs/target?key=${TEST_APP.key}`;
    const good = editor(`${wsBase(server)}/yjs`, 'target');
    after(() => good.destroy());
    await synced(good);
    good.text.insert(0, 'intact');
    for (const [what, frame] of CRAFTED) {
      const client = track(await TestClient.open(url));
      client.ws.send(frame, { binary: true });
      const { code, reason } = await client.closed();
      assert.equal(code, 4020, `${what}: ${code} ${reason}`);
      assert.equal(reason, 'Invalid Yjs message');
    }
    const text = track(await TestClient.open(url));
    text.ws.send('{"hello":"world"}');
    assert.equal((await text.closed()).code, 4020, 'a text frame');
    good.text.insert(6, '!');
    const late = editor(`${wsBase(server)}/yjs`, 'target');
    after(() => late.destroy());
    await synced(late);
    await eventually(() => late.text.toJSON() === 'intact!', 'the room still serves its document');
  });

  it('survives random mutations of real messages: each connection stays or gets 4020, nothing else', async () => {
    const server = await serverWith({ apps: [{ ...TEST_APP, limits: { messagesPerSecond: 0 } }] });
    const url = `${wsBase(server)}/yjs/fuzz?key=${TEST_APP.key}`;
    const seeds = [
      syncUpdate(realUpdate()),
      message((e) => {
        encoding.writeVarUint(e, 0);
        encoding.writeVarUint(e, 0);
        encoding.writeVarUint8Array(e, Y.encodeStateVector(new Y.Doc()));
      }),
      message((e) => {
        encoding.writeVarUint(e, 1);
        encoding.writeVarUint8Array(e, message((a) => {
          encoding.writeVarUint(a, 1);
          encoding.writeVarUint(a, 3);
          encoding.writeVarUint(a, 4);
          encoding.writeVarString(a, '{"user":{"name":"fuzz"}}');
        }));
      }),
    ];
    let random = 12345;
    const next = (): number => (random = (random * 1103515245 + 12345) % 2 ** 31);
    const codes = new Map<number | undefined, number>();
    for (let round = 0; round < 150; round++) {
      const seed = seeds[round % seeds.length] as Buffer;
      const mutated = Buffer.from(seed);
      for (let flips = 1 + (next() % 4); flips > 0; flips--) mutated[next() % mutated.length] = next() % 256;
      const cut = next() % 5 === 0 ? mutated.subarray(0, next() % mutated.length) : mutated;
      const client = track(await TestClient.open(url));
      client.ws.send(cut, { binary: true });
      // Either the server closes with 4020 or the frame was valid: a ping round-trip proves it is still talking.
      await Promise.race([client.closed(2000).catch(() => undefined), new Promise((resolve) => client.ws.ping(undefined, undefined, () => setTimeout(resolve, 30)))]);
      const code = client.closeCode;
      codes.set(code, (codes.get(code) ?? 0) + 1);
      assert.ok(code === undefined || code === 4020, `round ${round}: closed with ${code} (${client.closeReason ?? ''})`);
      client.ws.terminate();
    }
    assert.ok((codes.get(4020) ?? 0) > 10, `some mutations are invalid: ${JSON.stringify([...codes])}`);
    const probe = editor(`${wsBase(server)}/yjs`, 'fuzz');
    after(() => probe.destroy());
    await synced(probe);
  });

  it('a frame over yjs.maxMessageSize is refused by ws with 1009', async () => {
    const server = await serverWith({ yjs: { maxMessageSize: 2048 } });
    const client = track(await TestClient.open(`${wsBase(server)}/yjs/big?key=${TEST_APP.key}`));
    client.ws.send(Buffer.alloc(4096), { binary: true });
    assert.equal((await client.closed()).code, 1009);
  });
});
