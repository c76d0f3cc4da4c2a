/**
 * Errors an engine raises that callers answer differently from a bug: the caller tells its
 * client "not accepted, try again later" (raw `{"error"}` frame, REST 503 + Retry-After) instead
 * of an internal error.
 */

/**
 * Replies and client errors that mean "Redis is not there to take it right now", not a bug: the
 * connection went away under the command (it may be back already when the error arrives, as
 * after a Sentinel failover), the server is a replica or still loading, or no primary is known.
 */
const UNAVAILABLE_REPLY = /^(READONLY|LOADING|MASTERDOWN|TRYAGAIN|CLUSTERDOWN)\b/;
/** ioredis Cluster giving up: redirected until its limit while a slot had no primary, or no node answers. */
const CLUSTER_GAVE_UP = /^(Too many Cluster redirections|Cluster isn't ready|Failed to refresh slots cache)/;
const UNAVAILABLE_CODE = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH']);

export function isUnavailableError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if (error instanceof EngineUnavailableError) return true;
  // 'Command timed out': no reply within the engine's commandTimeoutMs (a partition, or Redis
  // stalled). Redis may still have run it; the caller only knows it was not acknowledged.
  if (error.name === 'MaxRetriesPerRequestError' || error.message === 'Connection is closed.' || error.message === 'Command timed out' || error.message.startsWith("Stream isn't writeable")) return true;
  return UNAVAILABLE_REPLY.test(error.message) || CLUSTER_GAVE_UP.test(error.message) || error.name === 'ClusterAllFailedError' || UNAVAILABLE_CODE.has((error as NodeJS.ErrnoException).code ?? '');
}

/** The engine's backing store (Redis) cannot be reached: nothing was stored or published. */
export class EngineUnavailableError extends Error {
  override name = 'EngineUnavailableError';
  constructor(message = 'the engine (Redis) is not connected', options?: ErrorOptions) {
    super(message, options);
  }
}

/**
 * For `.catch(…)` on an engine call: a failure that means Redis is away becomes
 * EngineUnavailableError (callers answer it with their dialect's coded "try again"), anything
 * else (a bug) is rethrown as it is. `connectionLost` covers errors ioredis raises without a
 * recognisable message while the connection is going down.
 */
export function rethrowUnavailable(what: string, connectionLost: () => boolean = () => false): (error: unknown) => never {
  return (error: unknown): never => {
    if (error instanceof EngineUnavailableError) throw error;
    if (connectionLost() || isUnavailableError(error)) throw new EngineUnavailableError(`redis unavailable during ${what}`, { cause: error });
    throw error;
  };
}
