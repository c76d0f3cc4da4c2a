/**
 * Coalesces writes: connections that received frames during this event-loop turn are flushed
 * together in the check phase (setImmediate), after every inbound message of the turn has been
 * handled. A socket that gets ten messages in a turn therefore costs one write, not ten.
 *
 * Fan-out gives many connections exactly the same frames in a turn (every subscriber of a channel
 * gets the same publications). A `SharedRun` holds those frames once: the hub appends each frame
 * to the run instead of to every subscriber's queue, and every socket holding the run is written
 * the same joined buffer. So a turn costs one step per subscriber, not one per subscriber and
 * message, allocates one batch per channel, and a backlog of unread data is shared rather than
 * duplicated. `join` does the same for queues that are not a single run but hold the same frames.
 */
export interface Flushable {
  flush(): void;
}

/**
 * Frames one channel publishes within one event-loop turn, shared by every connection that gets
 * all of them. Sealed at the end of the turn, or earlier as soon as one of its connections must
 * get something else in between (then the channel's next frame starts a new run); a sealed run
 * never changes again.
 */
export class SharedRun {
  frames: Buffer[] = [];
  bytes = 0;
  #open = true;
  #joined: Buffer | undefined;

  constructor(first: Buffer) {
    this.append(first);
  }

  get open(): boolean {
    return this.#open;
  }

  append(frame: Buffer): void {
    this.frames.push(frame);
    this.bytes += frame.length;
    this.#joined = undefined;
  }

  seal(): void {
    this.#open = false;
  }

  /** After the turn's writes: the frames are the sockets' now, the run must not keep them alive. */
  release(): void {
    this.#open = false;
    this.frames = [];
    this.#joined = undefined;
  }

  /** The frames as one buffer, built once for all the connections that write it. */
  joined(): Buffer {
    const first = this.frames[0];
    this.#joined ??= this.frames.length === 1 && first ? first : Buffer.concat(this.frames, this.bytes);
    return this.#joined;
  }
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
  /** Runs started this turn; sealed before the connections are flushed. */
  #openRuns: SharedRun[] = [];

  /** Call once per connection per turn, when its queue goes from empty to non-empty. */
  schedule(target: Flushable): void {
    this.#dirty.push(target);
    this.#flushThisTurn();
  }

  /** A run for the frames of one channel in this turn, sealed at the latest when the turn's writes go out. */
  startRun(first: Buffer): SharedRun {
    const run = new SharedRun(first);
    this.#openRuns.push(run);
    this.#flushThisTurn();
    return run;
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

  #flushThisTurn(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(this.#flushAll);
  }

  readonly #flushAll = (): void => {
    this.#scheduled = false;
    const runs = this.#openRuns;
    this.#openRuns = [];
    for (const run of runs) run.seal();
    const dirty = this.#dirty;
    this.#dirty = [];
    this.#flushing = true;
    try {
      for (const target of dirty) target.flush();
    } finally {
      this.#flushing = false;
      this.#joinedThisFlush.clear();
      // Every connection holding one of these runs was due in this flush.
      for (const run of runs) run.release();
    }
  };
}

/** Same buffers in the same order (identity, not content: frames are shared, never copied). */
function sameFrames(a: readonly Buffer[], b: readonly Buffer[]): boolean {
  if (a.length !== b.length) return false;
  for (let index = 0; index < a.length; index++) if (a[index] !== b[index]) return false;
  return true;
}
