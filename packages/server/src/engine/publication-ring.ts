/**
 * One channel's retained publications, stored so that keeping them costs the garbage collector
 * (almost) nothing.
 *
 * Why not an array of publication objects: a chat server keeps up to `history.size` messages in
 * each of thousands of channels, all long-lived. Kept as objects, every publication (and its
 * payload Buffer) survives the young generation and is copied and later marked by the GC: on
 * 9,500 two-member channels that was ~40 % of the CPU spent per message in memory (measured with
 * an in-process publish loop, full history vs none). Here a publication's fields live in two
 * strided arrays of a ring (its numbers in one array of unboxed doubles, its page and strings by
 * reference in one array), and its payload is copied into pages shared by many messages, so a
 * retained raw message allocates no object at all. Two arrays, not one per field: a chat server
 * appends to thousands of rings in turn, each cold in the CPU cache, and every array is one more
 * miss (and one more allocation each time a young ring grows). A plain array, not a
 * Float64Array: a typed array's zeroed memory is allocated outside the JS heap (calloc) and
 * tracked by the GC's array-buffer sweeper, which a young ring pays at every growth. Publications
 * are built again, as objects, only when history is read (recovery, a history query), which is
 * rare.
 */
import type { MessagePublication } from './types.js';

/** Pages start small (most channels hold a few short messages) and double up to this size. */
const MIN_PAGE_BYTES = 256;
const MAX_PAGE_BYTES = 16 * 1024;
/** A payload larger than this gets a page of its own rather than wasting the rest of a shared one. */
const OWN_PAGE_BYTES = MAX_PAGE_BYTES / 4;
const MIN_CAPACITY = 4;

const BINARY = 1;
const EXCLUDE_ORIGIN = 2;

/** The numbers of a slot, at slot * NUMBERS + field. */
const NUMBERS = 4;
const TS = 0;
const START = 1;
const LENGTH = 2;
const FLAGS = 3;
/** The references of a slot, at slot * REFERENCES + field. */
const REFERENCES = 5;
const PAGE = 0;
const ORIGIN = 1;
const EVENT = 2;
const MSG_ID = 3;
const USER_ID = 4;

/** The channel-wide fields every retained publication of the ring shares. */
export interface RingIdentity {
  readonly appId: string;
  readonly channel: string;
  readonly epoch: string;
}

export class PublicationRing {
  /** Publications held. The oldest has offset `newestOffset - length + 1`: offsets are consecutive. */
  length = 0;
  #head = 0;
  #capacity = 0;
  #newestOffset = 0;
  /** Per slot: accept time, payload start in its page, payload length, flags (NUMBERS numbers). */
  #numbers: number[] = [];
  /** Per slot: page, origin, event, msgId, userId (REFERENCES references). */
  #references: (Buffer | string | undefined)[] = [];
  /** The page new payloads are copied into, and how much of it is used. */
  #page: Buffer | undefined;
  #pageUsed = 0;

  /** Accept time of the oldest publication held; Infinity when empty. */
  get oldestTs(): number {
    return this.length === 0 ? Infinity : (this.#numbers[this.#head * NUMBERS + TS] as number);
  }

  /** Offset of the oldest publication held (newest + 1 when empty). */
  get oldestOffset(): number {
    return this.#newestOffset - this.length + 1;
  }

  /** Appends a publication (its offset must follow the newest one's), dropping the oldest beyond `size`. */
  push(publication: MessagePublication, size: number): void {
    if (this.length > 0 && publication.offset !== this.#newestOffset + 1) this.clear();
    if (this.length >= size) this.shift(this.length - size + 1);
    if (this.length === this.#capacity) this.#grow(Math.min(size, Math.max(MIN_CAPACITY, this.#capacity * 2)));
    const index = (this.#head + this.length) % this.#capacity;
    const numbers = this.#numbers;
    const at = index * NUMBERS;
    numbers[at + TS] = publication.ts;
    numbers[at + FLAGS] = (publication.binary ? BINARY : 0) | (publication.excludeOrigin === true ? EXCLUDE_ORIGIN : 0);
    const references = this.#references;
    const ref = index * REFERENCES;
    references[ref + ORIGIN] = publication.originId;
    references[ref + EVENT] = publication.event;
    references[ref + MSG_ID] = publication.msgId;
    references[ref + USER_ID] = publication.userId;
    this.#store(at, ref, publication.payload);
    this.#newestOffset = publication.offset;
    this.length++;
  }

  /** Drops the `count` oldest publications. */
  shift(count = 1): void {
    const references = this.#references;
    for (let dropped = 0; dropped < count && this.length > 0; dropped++) {
      const ref = this.#head * REFERENCES;
      // Let go of references, so a page and strings are freed once no retained message uses them.
      references[ref + PAGE] = EMPTY;
      references[ref + ORIGIN] = references[ref + EVENT] = references[ref + MSG_ID] = references[ref + USER_ID] = undefined;
      this.#head = (this.#head + 1) % this.#capacity;
      this.length--;
    }
  }

  clear(): void {
    this.shift(this.length);
    this.#head = 0;
  }

  /** Publications from position `start` (0 = oldest) up to `end` (exclusive), rebuilt as objects. */
  slice(identity: RingIdentity, start: number, end: number): MessagePublication[] {
    const out: MessagePublication[] = [];
    for (let position = Math.max(0, start); position < Math.min(end, this.length); position++) out.push(this.#at(identity, position));
    return out;
  }

  #at({ appId, channel, epoch }: RingIdentity, position: number): MessagePublication {
    const index = (this.#head + position) % this.#capacity;
    const numbers = this.#numbers;
    const at = index * NUMBERS;
    const start = numbers[at + START] as number;
    const flags = numbers[at + FLAGS] as number;
    const references = this.#references;
    const ref = index * REFERENCES;
    return {
      kind: 'message',
      appId,
      channel,
      originId: references[ref + ORIGIN] as string | undefined,
      event: references[ref + EVENT] as string | undefined,
      payload: (references[ref + PAGE] as Buffer).subarray(start, start + (numbers[at + LENGTH] as number)),
      binary: (flags & BINARY) !== 0,
      msgId: references[ref + MSG_ID] as string | undefined,
      userId: references[ref + USER_ID] as string | undefined,
      excludeOrigin: (flags & EXCLUDE_ORIGIN) !== 0 ? true : undefined,
      offset: this.oldestOffset + position,
      epoch,
      ts: numbers[at + TS] as number,
    };
  }

  /**
   * Copies the payload into the current page (or a new one), never into bytes a retained
   * publication still uses: pages are only ever appended to, and a full page is left to the GC
   * once its last publication is dropped. The copy also means a retained message never pins the
   * (possibly much larger) socket read its payload arrived in.
   */
  #store(at: number, ref: number, payload: Buffer): void {
    const length = payload.length;
    let page = this.#page;
    let start = 0;
    if (length > OWN_PAGE_BYTES) {
      page = Buffer.allocUnsafeSlow(length);
    } else {
      if (page === undefined || page.length - this.#pageUsed < length) {
        const size = Math.min(MAX_PAGE_BYTES, Math.max(MIN_PAGE_BYTES, (page?.length ?? 0) * 2, length));
        page = this.#page = Buffer.allocUnsafeSlow(size);
        this.#pageUsed = 0;
      }
      start = this.#pageUsed;
      this.#pageUsed += length;
    }
    page.set(payload, start); // TypedArray#set: Buffer#copy's copy with less overhead
    this.#references[ref + PAGE] = page;
    this.#numbers[at + START] = start;
    this.#numbers[at + LENGTH] = length;
  }

  /** Reallocates the ring with room for `capacity`, oldest first from slot 0. */
  #grow(capacity: number): void {
    const numbers = newNumbers(capacity * NUMBERS);
    const references = new Array<Buffer | string | undefined>(capacity * REFERENCES).fill(undefined);
    for (let position = 0; position < this.length; position++) {
      const from = (this.#head + position) % this.#capacity;
      for (let field = 0; field < NUMBERS; field++) numbers[position * NUMBERS + field] = this.#numbers[from * NUMBERS + field] as number;
      for (let field = 0; field < REFERENCES; field++) references[position * REFERENCES + field] = this.#references[from * REFERENCES + field];
    }
    for (let slot = this.length; slot < capacity; slot++) references[slot * REFERENCES + PAGE] = EMPTY;
    this.#numbers = numbers;
    this.#references = references;
    this.#head = 0;
    this.#capacity = capacity;
  }
}

/** An array of doubles, unboxed in V8 (filled with a double, not a small integer). */
function newNumbers(length: number): number[] {
  return new Array<number>(length).fill(0.5);
}

/** What a free slot of the ring points at instead of a page. */
const EMPTY: Buffer = Buffer.alloc(0);
