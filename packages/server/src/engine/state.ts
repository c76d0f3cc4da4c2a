/**
 * How the engine's link to its backing service stands, for GET /ready, /metrics and the outage
 * watcher (faults.ts). The engine writes it; the HTTP side only reads it, so a readiness probe
 * never waits on a dead Redis. The memory engine leaves it as made: always up, never reconnecting.
 */
export class EngineState {
  #up = true;
  /** When the current outage began (Date.now()), undefined while up. */
  downSince: number | undefined;
  /** Times the engine lost its backing service and got it back. */
  reconnects = 0;
  /** Called with a command's round trip in ms (Redis: the probe and a sample of publishes). */
  commandTimed: ((command: string, ms: number) => void) | undefined;

  /** Commands can be served now (Redis: both connections ready and answering). */
  get up(): boolean {
    return this.#up;
  }

  set up(up: boolean) {
    if (up) this.downSince = undefined;
    else this.downSince ??= Date.now();
    this.#up = up;
  }
}
