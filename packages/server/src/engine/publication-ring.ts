/**
 * One channel's retained publications, stored so that keeping them costs the garbage collector
 * (almost) nothing.
 *
 * Why not an array of publication objects: a chat server keeps up to `history.size` messages in
 * each of thousands of channels, all long-lived. Kept as objects, every publication (and its
 * payload Buffer) survives the young generation and is copied and later marked by the GC: on
 * 9,500 two-member channels that was ~40 % of the CPU spent per message in memory (measured with
 * an in-process publish loop, full history vs none). Here a publication's fields live in
 * parallel arrays of a ring (numbers in typed arrays; strings by reference, and raw messages have
 * none of their own), and its payload is copied into pages shared by many messages, so a
 * retained raw message allocates no object at all. Publications are built again, as objects,
 * only when history is read (recovery, a history query), which is rare.
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
  #ts = new Float64Array(0);
  #starts = new Uint32Array(0);
  #lengths = new Uint32Array(0);
  #flags = new Uint8Array(0);
  #pages: Buffer[] = [];
  #origins: (string | undefined)[] = [];
  #events: (string | undefined)[] = [];
  #msgIds: (string | undefined)[] = [];
  #userIds: (string | undefined)[] = [];
  /** The page new payloads are copied into, and how much of it is used. */
  #page: Buffer | undefined;
  #pageUsed = 0;

  /** Accept time of the oldest publication held; Infinity when empty. */
  get oldestTs(): number {
    return this.length === 0 ? Infinity : (this.#ts[this.#head] as number);
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
    this.#ts[index] = publication.ts;
    this.#flags[index] = (publication.binary ? BINARY : 0) | (publication.excludeOrigin === true ? EXCLUDE_ORIGIN : 0);
    this.#origins[index] = publication.originId;
    this.#events[index] = publication.event;
    this.#msgIds[index] = publication.msgId;
    this.#userIds[index] = publication.userId;
    this.#store(index, publication.payload);
    this.#newestOffset = publication.offset;
    this.length++;
  }

  /** Drops the `count` oldest publications. */
  shift(count = 1): void {
    for (let dropped = 0; dropped < count && this.length > 0; dropped++) {
      const index = this.#head;
      // Let go of references, so a page and strings are freed once no retained message uses them.
      this.#pages[index] = EMPTY;
      this.#origins[index] = this.#events[index] = this.#msgIds[index] = this.#userIds[index] = undefined;
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
    const start = this.#starts[index] as number;
    const flags = this.#flags[index] as number;
    return {
      kind: 'message',
      appId,
      channel,
      originId: this.#origins[index],
      event: this.#events[index],
      payload: (this.#pages[index] as Buffer).subarray(start, start + (this.#lengths[index] as number)),
      binary: (flags & BINARY) !== 0,
      msgId: this.#msgIds[index],
      userId: this.#userIds[index],
      excludeOrigin: (flags & EXCLUDE_ORIGIN) !== 0 ? true : undefined,
      offset: this.oldestOffset + position,
      epoch,
      ts: this.#ts[index] as number,
    };
  }

  /**
   * Copies the payload into the current page (or a new one), never into bytes a retained
   * publication still uses: pages are only ever appended to, and a full page is left to the GC
   * once its last publication is dropped. The copy also means a retained message never pins the
   * (possibly much larger) socket read its payload arrived in.
   */
  #store(index: number, payload: Buffer): void {
    const length = payload.length;
    let page = this.#page;
    if (length > OWN_PAGE_BYTES) {
      page = Buffer.allocUnsafeSlow(length);
      this.#pages[index] = page;
      this.#starts[index] = 0;
    } else {
      if (page === undefined || page.length - this.#pageUsed < length) {
        const size = Math.min(MAX_PAGE_BYTES, Math.max(MIN_PAGE_BYTES, (page?.length ?? 0) * 2, length));
        page = this.#page = Buffer.allocUnsafeSlow(size);
        this.#pageUsed = 0;
      }
      this.#pages[index] = page;
      this.#starts[index] = this.#pageUsed;
      this.#pageUsed += length;
    }
    page.set(payload, this.#starts[index]); // TypedArray#set: Buffer#copy's copy with less overhead
    this.#lengths[index] = length;
  }

  /** Reallocates the ring with room for `capacity`, oldest first from index 0. */
  #grow(capacity: number): void {
    const order = (array: { [index: number]: unknown }, target: { [index: number]: unknown }): void => {
      for (let position = 0; position < this.length; position++) target[position] = array[(this.#head + position) % this.#capacity];
    };
    const ts = new Float64Array(capacity);
    const starts = new Uint32Array(capacity);
    const lengths = new Uint32Array(capacity);
    const flags = new Uint8Array(capacity);
    const pages: Buffer[] = new Array<Buffer>(capacity).fill(EMPTY);
    const origins = new Array<string | undefined>(capacity).fill(undefined);
    const events = new Array<string | undefined>(capacity).fill(undefined);
    const msgIds = new Array<string | undefined>(capacity).fill(undefined);
    const userIds = new Array<string | undefined>(capacity).fill(undefined);
    order(this.#ts, ts);
    order(this.#starts, starts);
    order(this.#lengths, lengths);
    order(this.#flags, flags);
    order(this.#pages, pages);
    order(this.#origins, origins);
    order(this.#events, events);
    order(this.#msgIds, msgIds);
    order(this.#userIds, userIds);
    [this.#ts, this.#starts, this.#lengths, this.#flags, this.#pages] = [ts, starts, lengths, flags, pages];
    [this.#origins, this.#events, this.#msgIds, this.#userIds] = [origins, events, msgIds, userIds];
    this.#head = 0;
    this.#capacity = capacity;
  }
}

/** What a free slot of the ring points at instead of a page. */
const EMPTY: Buffer = Buffer.alloc(0);
