/**
 * A token bucket per connection: `rate` messages per second on average, bursts up to `burst`.
 * A rate of 0 disables the limit.
 */
export class TokenBucket {
  readonly #rate: number;
  readonly #burst: number;
  #tokens: number;
  #last = performance.now();

  constructor(rate: number, burst: number) {
    this.#rate = rate;
    this.#burst = Math.max(burst, 1);
    this.#tokens = this.#burst;
  }

  /** Takes one token; false when the bucket is empty (the message is over the limit). */
  take(): boolean {
    if (this.#rate === 0) return true;
    const now = performance.now();
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#last) / 1000) * this.#rate);
    this.#last = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}
