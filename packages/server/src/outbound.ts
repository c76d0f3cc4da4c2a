/**
 * Coalesces writes: connections that received frames during this event-loop turn are flushed
 * together in the check phase (setImmediate), after every inbound message of the turn has been
 * handled. A socket that gets ten messages in a turn therefore costs one write, not ten.
 */
export interface Flushable {
  flush(): void;
}

export class OutboundScheduler {
  #dirty: Flushable[] = [];
  #scheduled = false;

  /** Call once per connection per turn, when its queue goes from empty to non-empty. */
  schedule(target: Flushable): void {
    this.#dirty.push(target);
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#flushAll);
    }
  }

  readonly #flushAll = (): void => {
    this.#scheduled = false;
    const dirty = this.#dirty;
    this.#dirty = [];
    for (const target of dirty) target.flush();
  };
}
