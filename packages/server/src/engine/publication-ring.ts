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
 * tracked by the GC's array-buffer sweeper, which a young ring pays at every growth. A slot is
 * 40 bytes (two numbers, three references; it was 72 with one per field): while thousands of
 * rings fill, what they retain is what the young generation promotes and the major GC marks,
 * which was most of what history cost per message (see docs/benchmarks.md). Publications
 * are built again, as objects, only when history is read (recovery, a history query), which is
 * rare.
 */
import type { MessagePublication } from './types.js';

/**
 * Pages start small (most channels hold a few short messages) and double up to this size, or up
 * to a quarter of what the ring holds when full (see #store), whichever is smaller.
 */
const MIN_PAGE_BYTES = 256;
const MAX_PAGE_BYTES = 16 * 1024;
const PAGES_PER_FULL_RING = 4;
/** A payload larger than this gets a page of its own rather than wasting the rest of a shared one. */
const OWN_PAGE_BYTES = MAX_PAGE_BYTES / 4;
const MIN_CAPACITY = 4;

/**
 * The numbers of a slot, at slot * NUMBERS + field: its accept time, and where its payload is
 * (PLACE = length * 2^17 + start * 4 + flags: a start in a shared page is at most 2^14, the
 * end of a full 16 KiB page, where an empty payload may sit; and the sum stays an exact integer
 * in a double for any length below 2^36).
 */
const NUMBERS = 2;
const TS = 0;
const PLACE = 1;
const LENGTH_UNIT = 2 ** 17;
const START_UNIT = 4;
const BINARY = 1;
const EXCLUDE_ORIGIN = 2;
/**
 * The references of a slot, at slot * REFERENCES + field: its page, its origin, and its details
 * (see Details). Three, not one per field: the garbage collector's marker visits every
 * reference of every retained slot, and most publications have no msgId or userId.
 */
const REFERENCES = 3;
const PAGE = 0;
const ORIGIN = 1;
const DETAILS = 2;

/**
 * A publication's event, msgId and userId, as one reference: nothing for a raw message, the
 * event itself when it is the only one (a Pusher event, a v1 publish without an id), an object
 * only when there are more.
 */
type Details = undefined | string | { readonly event: string | undefined; readonly msgId: string | undefined; readonly userId: string | undefined };

function detailsOf(publication: MessagePublication): Details {
  const { event, msgId, userId } = publication;
  if (msgId === undefined && userId === undefined) return event;
  return { event, msgId, userId };
}

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
  /** Per slot: accept time, and its payload's place and flags (NUMBERS numbers). */
  #numbers: number[] = [];
  /** Per slot: page, origin, details (REFERENCES references). */
  #references: (Buffer | Details)[] = [];
  /** The page new payloads are copied into, and how much of it is used. */
  #page: Buffer | undefined;
  #pageUsed = 0;
  #pageMessages = 0;
  /**
   * No publication held was accepted before this: the oldest's time when it was last read, or
   * the first's when pushed into an empty ring. Accept times grow from oldest to newest, so it
   * stays true as the oldest are dropped.
   */
  #oldestTsAtLeast = Infinity;

  /** Accept time of the oldest publication held; Infinity when empty. */
  get oldestTs(): number {
    return this.length === 0 ? Infinity : (this.#numbers[this.#head * NUMBERS + TS] as number);
  }

  /** Offset of the oldest publication held (newest + 1 when empty). */
  get oldestOffset(): number {
    return this.#newestOffset - this.length + 1;
  }

  /**
   * Drops the publications accepted before `cutoff`. Runs at every publish: it reads the oldest's
   * time from its slot (a line no longer in the CPU cache when thousands of channels take turns)
   * only once the bound kept from the last read is before the cutoff, so a busy channel pays
   * that read about once per TTL rather than once per message.
   */
  dropAcceptedBefore(cutoff: number): void {
    if (this.#oldestTsAtLeast >= cutoff) return;
    while (this.length > 0) {
      const ts = this.oldestTs;
      if (ts >= cutoff) {
        this.#oldestTsAtLeast = ts;
        return;
      }
      this.shift();
    }
  }

  /** Appends a publication (its offset must follow the newest one's), dropping the oldest beyond `size`. */
  push(publication: MessagePublication, size: number): void {
    if (this.length > 0 && publication.offset !== this.#newestOffset + 1) this.clear();
    if (this.length >= size) this.shift(this.length - size + 1);
    if (this.length === this.#capacity) this.#grow(Math.min(size, Math.max(MIN_CAPACITY, this.#capacity * 2)));
    if (this.length === 0) this.#oldestTsAtLeast = publication.ts;
    const index = (this.#head + this.length) % this.#capacity;
    const numbers = this.#numbers;
    const at = index * NUMBERS;
    numbers[at + TS] = publication.ts;
    const references = this.#references;
    const ref = index * REFERENCES;
    references[ref + ORIGIN] = publication.originId;
    references[ref + DETAILS] = detailsOf(publication);
    const flags = (publication.binary ? BINARY : 0) | (publication.excludeOrigin === true ? EXCLUDE_ORIGIN : 0);
    this.#store(at, ref, publication.payload, flags, size);
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
      references[ref + ORIGIN] = references[ref + DETAILS] = undefined;
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
    const place = numbers[at + PLACE] as number;
    const flags = place % START_UNIT;
    const start = Math.floor(place / START_UNIT) % (LENGTH_UNIT / START_UNIT);
    const length = Math.floor(place / LENGTH_UNIT);
    const references = this.#references;
    const ref = index * REFERENCES;
    const details = references[ref + DETAILS] as Details;
    const more = typeof details === 'object' ? details : undefined;
    const event = typeof details === 'object' ? details.event : details;
    return {
      kind: 'message',
      appId,
      channel,
      originId: references[ref + ORIGIN] as string | undefined,
      event,
      payload: (references[ref + PAGE] as Buffer).subarray(start, start + length),
      binary: (flags & BINARY) !== 0,
      msgId: more?.msgId,
      userId: more?.userId,
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
   *
   * The retained publications pin every page they are in, the oldest and the newest only partly
   * used, so a page is kept to a quarter of what the ring holds when full (`size` messages of
   * the average length so far): then the pages pinned are at most ~1.25× the bytes retained.
   * With 16 KiB pages for every ring, 100 messages of 100 bytes pinned ~2.5× their bytes.
   */
  #store(at: number, ref: number, payload: Buffer, flags: number, size: number): void {
    const length = payload.length;
    let page = this.#page;
    let start = 0;
    if (length > OWN_PAGE_BYTES) {
      page = Buffer.allocUnsafeSlow(length);
    } else {
      if (page === undefined || page.length - this.#pageUsed < length) {
        const average = this.#pageMessages > 0 ? this.#pageUsed / this.#pageMessages : length;
        const largest = Math.min(MAX_PAGE_BYTES, Math.max(MIN_PAGE_BYTES, (size * average) / PAGES_PER_FULL_RING));
        const pageBytes = Math.max(length, Math.min(largest, Math.max(MIN_PAGE_BYTES, (page?.length ?? 0) * 2)));
        page = this.#page = Buffer.allocUnsafeSlow(Math.ceil(pageBytes));
        this.#pageUsed = 0;
        this.#pageMessages = 0;
      }
      start = this.#pageUsed;
      this.#pageUsed += length;
      this.#pageMessages++;
    }
    page.set(payload, start); // TypedArray#set: Buffer#copy's copy with less overhead
    this.#references[ref + PAGE] = page;
    this.#numbers[at + PLACE] = length * LENGTH_UNIT + start * START_UNIT + flags;
  }

  /** Reallocates the ring with room for `capacity`, oldest first from slot 0. */
  #grow(capacity: number): void {
    const numbers = newNumbers(capacity * NUMBERS);
    const references = new Array<Buffer | Details>(capacity * REFERENCES).fill(undefined);
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
