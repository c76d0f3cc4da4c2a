/**
 * How the engine's link to its backing service stands, for GET /ready and /metrics. The engine
 * writes it; the HTTP side only reads it, so a readiness probe never waits on a dead Redis.
 * The memory engine leaves it as made: always up, never reconnecting.
 */
export class EngineState {
  /** Commands can be served now (Redis: both connections ready). */
  up = true;
  /** Times the engine lost its backing service and got it back. */
  reconnects = 0;
  /** Called with a command's round trip in ms (Redis: the probe and a sample of publishes). */
  commandTimed: ((command: string, ms: number) => void) | undefined;
}
