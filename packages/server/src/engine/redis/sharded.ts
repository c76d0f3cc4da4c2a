/**
 * Following moved slots on Redis Cluster without losing a publication silently.
 *
 * A shard channel lives in its slot: when the slot migrates (a reshard) or its primary fails
 * over, the old owner drops the subscribers (a SUNSUBSCRIBE it sends by itself, which ioredis
 * reports as a "Command queue state error") and ioredis subscribes again at the new owner after
 * its next slot refresh. What was published in between never reached this node. A busy channel
 * shows that by an offset gap (index.ts), a quiet one would not: so after any such change, every
 * attached channel is fenced. The node SPUBLISHes a marker on it, and when the marker comes back
 * through its own subscription (which is therefore live at the owner now), the engine declares a
 * gap: v1 subscribers resume from history, which moved with the slot. Until it comes back the
 * marker is sent again every interval.
 */
import type { Cluster } from 'ioredis';
import type { Logger } from 'pino';

export interface SlotFenceOptions {
  readonly sub: Cluster;
  readonly nodeId: string;
  readonly log: Logger;
  readonly intervalMs: number;
  /** The pub/sub channels this node is subscribed to now. */
  readonly channels: () => Iterable<string>;
  readonly publish: (channel: string, message: string) => Promise<unknown>;
  /** The channel's subscription is live again: whatever it missed meanwhile is recovered from history. */
  readonly onFenced: (channel: string) => void;
}

export class SlotFence {
  readonly #options: SlotFenceOptions;
  /** No newline: every node's codec ignores it (decodePublication), only its sender reads it. */
  readonly #marker: string;
  /** Channels whose subscription may have been dropped, until their marker comes back. */
  readonly #unsure = new Set<string>();
  readonly #timer: NodeJS.Timeout;

  constructor(options: SlotFenceOptions) {
    this.#options = options;
    this.#marker = `fence:${options.nodeId}`;
    const { sub } = options;
    sub.on('nodeError', (error: Error) => {
      if (!/sunsubscribe/i.test(error.message)) return;
      options.log.warn('redis cluster: a slot moved away under a subscription; resubscribing at its new owner');
      this.#suspectAll();
      sub.refreshSlotsCache();
    });
    // The subscribers were rebuilt for a new slot map, or one was lost with its node.
    for (const event of ['subscribersReady', '-subscriber', '-node']) sub.on(event, () => this.#suspectAll());
    this.#timer = setInterval(() => this.#sendMarkers(), options.intervalMs).unref();
  }

  /** True when `message` was this node's marker (consumed here). */
  received(channel: string, message: Buffer): boolean {
    if (message.length !== this.#marker.length || message.toString() !== this.#marker) return false;
    if (this.#unsure.delete(channel)) this.#options.onFenced(channel);
    return true;
  }

  forget(channel: string): void {
    this.#unsure.delete(channel);
  }

  close(): void {
    clearInterval(this.#timer);
  }

  #suspectAll(): void {
    for (const channel of this.#options.channels()) this.#unsure.add(channel);
  }

  #sendMarkers(): void {
    if (this.#unsure.size === 0) return;
    for (const channel of this.#unsure) this.#options.publish(channel, this.#marker).catch(() => undefined);
  }
}
