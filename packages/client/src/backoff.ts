/**
 * Reconnect delays: exponential growth with full jitter above the floor. The delay before
 * reconnect attempt n (1, 2, …) is uniformly random in [minDelayMs, min(maxDelayMs, minDelayMs·2ⁿ)],
 * so a server that drops all its clients at once does not get them all back at the same instant.
 */
export interface BackoffOptions {
  readonly minDelayMs: number;
  readonly maxDelayMs: number;
}

export function backoffCeiling(attempt: number, { minDelayMs, maxDelayMs }: BackoffOptions): number {
  return Math.min(maxDelayMs, minDelayMs * 2 ** Math.min(Math.max(attempt, 1), 40));
}

export function backoffDelay(attempt: number, options: BackoffOptions, random: () => number = Math.random): number {
  const ceiling = backoffCeiling(attempt, options);
  return Math.round(options.minDelayMs + random() * (ceiling - options.minDelayMs));
}
