/**
 * A tiny typed event emitter (no Node `events` import: the SDK runs in browsers). A listener that
 * throws does not break the SDK: its error is rethrown asynchronously, where the host's
 * uncaught-error reporting sees it.
 */
type Listener = (...args: never[]) => unknown;

export class Emitter {
  readonly #listeners = new Map<string, Set<Listener>>();

  /** Adds a listener; returns a function that removes it. */
  protected addListener(event: string, listener: Listener): () => void {
    let set = this.#listeners.get(event);
    if (!set) this.#listeners.set(event, (set = new Set()));
    set.add(listener);
    return () => this.removeListener(event, listener);
  }

  protected removeListener(event: string, listener: Listener): void {
    const set = this.#listeners.get(event);
    if (!set) return;
    set.delete(listener);
    if (set.size === 0) this.#listeners.delete(event);
  }

  protected hasListeners(event: string): boolean {
    return this.#listeners.has(event);
  }

  protected emit(event: string, ...args: unknown[]): void {
    const set = this.#listeners.get(event);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        (listener as (...a: unknown[]) => unknown)(...args);
      } catch (error) {
        setTimeout(() => {
          throw error;
        }, 0);
      }
    }
  }
}
