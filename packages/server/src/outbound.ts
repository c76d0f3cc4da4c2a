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
  /**
   * Past this many bytes the turn's writes go out early (see OutboundScheduler.flushSoon): the
   * smallest threshold of the connections holding the run, which they set when they attach it.
   */
  flushAt = Infinity;
  /** Connections that queued the run: each frame appended reaches all of them (counted as deliveries). */
  holders = 0;
  #open = true;
  #joined: Buffer | undefined;
  readonly #grew: ((run: SharedRun) => void) | undefined;

  constructor(first: Buffer, grew?: (run: SharedRun) => void) {
    this.#grew = grew;
    this.append(first);
  }

  get open(): boolean {
    return this.#open;
  }

  append(frame: Buffer): void {
    this.frames.push(frame);
    this.bytes += frame.length;
    this.#joined = undefined;
    if (this.bytes > this.flushAt) this.#grew?.(this);
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
  /**
   * How long a connection cut for being slow may take to read its close frame before its TCP
   * connection is reset (the server's closeTimeoutMs; see Connection).
   */
  readonly closeTimeoutMs: number;
  #dirty: Flushable[] = [];
  #scheduled = false;
  #flushSoonPending = false;
  /**
   * Batches joined during the current flush, keyed by their first frame (a shared, immutable
   * buffer). Only used while flushing, and cleared after, so it never holds buffers longer than
   * the writes that reference them.
   */
  readonly #joinedThisFlush = new Map<Buffer, JoinedBatch>();
  #flushing = false;
  /** Runs started this turn; sealed before the connections are flushed. */
  #openRuns: SharedRun[] = [];

  constructor(closeTimeoutMs: number) {
    this.closeTimeoutMs = closeTimeoutMs;
  }

  /** Call once per connection per turn, when its queue goes from empty to non-empty. */
  schedule(target: Flushable): void {
    this.#dirty.push(target);
    this.#flushThisTurn();
  }

  /** A run for the frames of one channel in this turn, sealed at the latest when the turn's writes go out. */
  startRun(first: Buffer): SharedRun {
    const run = new SharedRun(first, this.#runGrew);
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

  /**
   * Flushes as soon as the code now running returns (a microtask), instead of in the check phase.
   * One turn can read megabytes from a fast publisher (libuv reads a socket up to 32 times in a
   * row): queued until the turn ends, that would exceed maxPendingBytes for subscribers that keep
   * up. Written early, it goes to their kernel buffers, and only the socket's own backlog, which
   * grows when its peer does not read, counts against the cap. A microtask, not a call from
   * here: the hub may be midway through a channel's subscribers.
   */
  flushSoon(): void {
    if (this.#flushSoonPending) return;
    this.#flushSoonPending = true;
    queueMicrotask(this.#flushEarly);
  }

  readonly #flushEarly = (): void => {
    this.#flushSoonPending = false;
    if (!this.#flushing) this.#flushAll();
  };

  readonly #runGrew = (): void => this.flushSoon();

  #flushThisTurn(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(this.#flushImmediate);
  }

  readonly #flushImmediate = (): void => {
    this.#scheduled = false;
    this.#flushAll();
  };

  #flushAll(): void {
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
  }
}

/** Same buffers in the same order (identity, not content: frames are shared, never copied). */
function sameFrames(a: readonly Buffer[], b: readonly Buffer[]): boolean {
  if (a.length !== b.length) return false;
  for (let index = 0; index < a.length; index++) if (a[index] !== b[index]) return false;
  return true;
}
