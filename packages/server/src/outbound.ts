/**
 * Coalesces writes: connections that received frames during this event-loop turn are flushed
 * together in the check phase (setImmediate), after every inbound message of the turn has been
 * handled. A socket that gets ten messages in a turn therefore costs one write, not ten.
 *
 * Fan-out gives many connections exactly the same frames in a turn (every subscriber of a channel
 * got the same publications). `join` notices and builds that batch once: every one of those
 * sockets is then written the same buffer, so a turn allocates and copies one batch per channel
 * instead of one per subscriber, and a backlog of unread data is shared rather than duplicated.
 */
export interface Flushable {
  flush(): void;
}

interface JoinedBatch {
  readonly frames: readonly Buffer[];
  readonly joined: Buffer;
}

export class OutboundScheduler {
  #dirty: Flushable[] = [];
  #scheduled = false;
  /**
   * Batches joined during the current flush, keyed by their first frame (a shared, immutable
   * buffer). Only used while flushing, and cleared after, so it never holds buffers longer than
   * the writes that reference them.
   */
  readonly #joinedThisFlush = new Map<Buffer, JoinedBatch>();
  #flushing = false;

  /** Call once per connection per turn, when its queue goes from empty to non-empty. */
  schedule(target: Flushable): void {
    this.#dirty.push(target);
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#flushAll);
    }
  }

  /**
   * One buffer holding `frames` back to back (`bytes` long). During a flush, a connection whose
   * queue holds the same frames as an earlier one gets the earlier connection's buffer.
   */
  join(frames: readonly Buffer[], bytes: number): Buffer {
    const first = frames[0] as Buffer;
    if (frames.length === 1) return first;
    if (!this.#flushing) return Buffer.concat(frames, bytes);
    const earlier = this.#joinedThisFlush.get(first);
    if (earlier && sameFrames(earlier.frames, frames)) return earlier.joined;
    const joined = Buffer.concat(frames, bytes);
    this.#joinedThisFlush.set(first, { frames, joined });
    return joined;
  }

  readonly #flushAll = (): void => {
    this.#scheduled = false;
    const dirty = this.#dirty;
    this.#dirty = [];
    this.#flushing = true;
    try {
      for (const target of dirty) target.flush();
    } finally {
      this.#flushing = false;
      this.#joinedThisFlush.clear();
    }
  };
}

/** Same buffers in the same order (identity, not content: frames are shared, never copied). */
function sameFrames(a: readonly Buffer[], b: readonly Buffer[]): boolean {
  if (a.length !== b.length) return false;
  for (let index = 0; index < a.length; index++) if (a[index] !== b[index]) return false;
  return true;
}
