/**
 * Closes a connection whose token has expired, unless the token is replaced in time.
 * `onExpired` runs at expiry (v1 tells its client to refresh); the close follows `graceMs`
 * later. Timers are capped at setTimeout's ~24.8-day maximum and simply re-armed.
 */
import { CloseCodes } from '@chorus/protocol';
import type { Connection } from './connection.js';

const MAX_TIMER_MS = 2 ** 31 - 1;

export class TokenExpiry {
  readonly #connection: Connection;
  readonly #graceMs: number;
  readonly #onExpired: (graceMs: number) => void;
  #timer: NodeJS.Timeout | undefined;

  constructor(connection: Connection, graceMs: number, onExpired: (graceMs: number) => void = () => undefined) {
    this.#connection = connection;
    this.#graceMs = graceMs;
    this.#onExpired = onExpired;
    connection.ws.once('close', () => this.cancel());
  }

  /** (Re)arms the deadline for a token expiring at `expiresAtMs`. */
  arm(expiresAtMs: number): void {
    this.cancel();
    const delay = expiresAtMs - Date.now();
    if (delay > MAX_TIMER_MS) {
      this.#timer = setTimeout(() => this.arm(expiresAtMs), MAX_TIMER_MS);
      return;
    }
    this.#timer = setTimeout(() => {
      this.#onExpired(this.#graceMs);
      this.#timer = setTimeout(() => this.#connection.close(CloseCodes.TOKEN_EXPIRED), this.#graceMs);
    }, Math.max(0, delay));
  }

  cancel(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
