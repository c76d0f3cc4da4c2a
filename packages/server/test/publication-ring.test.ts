/**
 * The compact history ring (engine/publication-ring.ts): what goes in comes out, field by field
 * and byte by byte, across wrap-arounds, growth, shared and own payload pages, a smaller size and
 * an offset gap. The engine contract suite covers the same store through the broker.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PublicationRing } from '../src/engine/publication-ring.ts';
import type { MessagePublication } from '../src/engine/types.ts';

const identity = { appId: 'app', channel: 'room', epoch: 'e1' };

function publication(offset: number, bytes: number, extra: Partial<MessagePublication> = {}): MessagePublication {
  return {
    kind: 'message',
    ...identity,
    originId: `conn-${offset % 3}`,
    event: offset % 2 === 0 ? `event-${offset}` : undefined,
    payload: Buffer.alloc(bytes, offset % 251),
    binary: offset % 5 === 0,
    msgId: offset % 4 === 0 ? `m${offset}` : undefined,
    userId: offset % 7 === 0 ? `user-${offset}` : undefined,
    excludeOrigin: offset % 6 === 0 ? true : undefined,
    offset,
    ts: 1_000_000 + offset,
    ...extra,
  };
}

describe('PublicationRing', () => {
  it('returns every retained publication as it was pushed, through wrap-arounds, growth and mixed payload sizes', () => {
    const ring = new PublicationRing();
    const size = 37;
    const pushed: MessagePublication[] = [];
    // Sizes from empty to larger than a shared page, so both kinds of page are used and reused.
    const sizes = [0, 1, 10, 100, 1000, 3000, 4097, 9000, 20_000];
    for (let offset = 1; offset <= 500; offset++) {
      const p = publication(offset, sizes[offset % sizes.length] as number);
      ring.push(p, size);
      pushed.push(p);
      if (offset % 50 === 0 || offset < size + 3) {
        const expected = pushed.slice(-size);
        assert.equal(ring.length, expected.length);
        assert.equal(ring.oldestOffset, expected[0]?.offset);
        assert.deepEqual(ring.slice(identity, 0, ring.length), expected, `after offset ${offset}`);
      }
    }
    assert.deepEqual(ring.slice(identity, size - 5, size + 10), pushed.slice(-5), 'a slice past the end stops at the newest');
    assert.deepEqual(ring.slice(identity, -3, 2), pushed.slice(-size, -size + 2), 'a slice before the start starts at the oldest');
  });

  it('drops the oldest beyond a smaller size and starts over after an offset gap', () => {
    const ring = new PublicationRing();
    for (let offset = 1; offset <= 10; offset++) ring.push(publication(offset, 8), 10);
    ring.push(publication(11, 8), 4);
    assert.deepEqual(ring.slice(identity, 0, 10).map((p) => p.offset), [8, 9, 10, 11]);
    assert.equal(ring.oldestTs, 1_000_008);
    ring.shift(2);
    assert.deepEqual(ring.slice(identity, 0, 10).map((p) => p.offset), [10, 11]);
    ring.push(publication(20, 8), 4);
    assert.deepEqual(ring.slice(identity, 0, 10).map((p) => p.offset), [20], 'offsets 12–19 were never retained: the older ones cannot sit next to 20');
    ring.clear();
    assert.equal(ring.length, 0);
    assert.equal(ring.oldestTs, Infinity);
  });

  it('keeps its own copy of the bytes: the buffer a payload arrived in may be reused', () => {
    const ring = new PublicationRing();
    const read = Buffer.alloc(64 * 1024, 0x61);
    ring.push(publication(1, 0, { payload: read.subarray(100, 110) }), 5);
    read.fill(0x62);
    const [kept] = ring.slice(identity, 0, 1);
    assert.equal(kept?.payload.toString(), 'a'.repeat(10));
    assert.ok((kept?.payload.buffer.byteLength ?? Infinity) <= 16 * 1024, 'a small message does not pin a large buffer');
  });

  it('pins pages of at most ~1.25x the bytes it retains, for short and long messages alike', () => {
    for (const bytes of [100, 1000]) {
      const ring = new PublicationRing();
      const size = 100;
      for (let offset = 1; offset <= 3 * size; offset++) ring.push(publication(offset, bytes), size);
      const retained = ring.slice(identity, 0, size);
      const pages = new Set(retained.map((p) => p.payload.buffer));
      const pinned = [...pages].reduce((sum, page) => sum + page.byteLength, 0);
      // With 16 KiB pages for every ring: 16,384 bytes pinned for 10,000 here (1.64x).
      assert.ok(pinned <= 1.35 * size * bytes, `${bytes}-byte messages: ${pinned} bytes of pages pinned for ${size * bytes} retained`);
    }
  });

  it('drops by accept time, after the oldest were dropped for size and after the ring was empty', () => {
    const ring = new PublicationRing();
    for (let offset = 1; offset <= 10; offset++) ring.push(publication(offset, 8), 5);
    ring.dropAcceptedBefore(1_000_008);
    assert.deepEqual(ring.slice(identity, 0, 10).map((p) => p.offset), [8, 9, 10]);
    ring.dropAcceptedBefore(1_000_008);
    assert.equal(ring.length, 3, 'nothing more is older than the cutoff');
    ring.dropAcceptedBefore(2_000_000);
    assert.equal(ring.length, 0);
    ring.push(publication(11, 8, { ts: 3_000_000 }), 5);
    ring.push(publication(12, 8, { ts: 3_000_010 }), 5);
    ring.dropAcceptedBefore(3_000_005);
    assert.deepEqual(ring.slice(identity, 0, 10).map((p) => p.offset), [12], 'a ring filled again after it was empty still expires');
  });

  it('keeps an empty payload stored right at the end of a full 16 KiB page empty', () => {
    const ring = new PublicationRing();
    // Pages of 4, 8 and 16 KiB, each filled exactly by 4,096-byte messages; then nothing is left
    // of the last page, and the empty message is placed at byte 16,384 of it.
    for (let offset = 1; offset <= 7; offset++) ring.push(publication(offset, 4096), 100);
    ring.push(publication(8, 0), 100);
    const [kept] = ring.slice(identity, 7, 8);
    assert.equal(kept?.offset, 8);
    assert.equal(kept?.payload.length, 0);
  });
});
