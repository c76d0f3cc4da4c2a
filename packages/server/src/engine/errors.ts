/**
 * Errors an engine raises that callers answer differently from a bug: the caller tells its
 * client "not accepted, try again later" (raw `{"error"}` frame, REST 503 + Retry-After) instead
 * of an internal error.
 */

/** The engine's backing store (Redis) cannot be reached: nothing was stored or published. */
export class EngineUnavailableError extends Error {
  override name = 'EngineUnavailableError';
  constructor(message = 'the engine (Redis) is not connected', options?: ErrorOptions) {
    super(message, options);
  }
}
