/**
 * Delivers webhook events to the receivers: batched, signed as Pusher signs them, retried, never
 * in the way of the hot path.
 *
 * - One queue per (app, receiver). Events within `batchMs` go out as one POST of
 *   `{time_ms, events}` with `X-Pusher-Key` and `X-Pusher-Signature` (HMAC-SHA256 of the body with
 *   the app's secret), so the `pusher` SDK's `webhook(...).isValid()` accepts them.
 * - One request in flight per queue, the next batch after it: a receiver sees a channel's events
 *   in the order they happened on this node.
 * - A failed request (network error, timeout, any status but 2xx) is retried with exponential
 *   backoff and jitter for `retryForMs`, then the batch is dropped with a log line.
 * - All queues together hold at most `maxQueuedEvents`; past it new events are dropped (counted,
 *   logged at most once a minute), so a receiver that is down cannot grow memory without bound.
 */
import type { Logger } from 'pino';
import type { App } from '../apps.js';
import type { WebhookOptions, WebhookTarget } from '../config.js';
import { webhookHeaders } from '../dialects/pusher/signatures.js';

/** One event as Pusher's webhooks carry it (`name` is the event kind, the rest its fields). */
export interface WebhookEvent {
  readonly name: string;
  readonly channel: string;
  readonly [field: string]: unknown;
}

/** Events per request at most: a burst becomes several requests rather than one huge one. */
const MAX_BATCH = 100;
const FIRST_RETRY_MS = 250;
const MAX_RETRY_DELAY_MS = 30_000;
const DROP_LOG_EVERY_MS = 60_000;

interface Batch {
  readonly body: string;
  readonly count: number;
  readonly firstTriedAt: number;
}

class ReceiverQueue {
  readonly pending: WebhookEvent[] = [];
  timer: NodeJS.Timeout | undefined;
  sending = false;

  constructor(
    readonly app: App,
    readonly target: WebhookTarget,
  ) {}
}

/** What the dispatcher has done, for /metrics and tests. */
export interface WebhookStats {
  /** Events delivered (their request answered 2xx). */
  delivered: number;
  /** Requests that failed (each retry counts). */
  failedAttempts: number;
  /** Events dropped: the queue was full, or their batch ran out of retries. */
  dropped: number;
  /** Events waiting now. */
  queued: number;
}

export class WebhookDispatcher {
  readonly stats: WebhookStats = { delivered: 0, failedAttempts: 0, dropped: 0, queued: 0 };
  readonly #options: WebhookOptions;
  readonly #log: Logger;
  readonly #queues = new Map<string, ReceiverQueue>();
  #lastDropLog = 0;
  #closed = false;

  constructor(options: WebhookOptions, log: Logger) {
    this.#options = options;
    this.#log = log.child({ component: 'webhooks' });
  }

  /** Queues the event for every receiver of the app that wants it. Never blocks, never throws. */
  enqueue(app: App, event: WebhookEvent): void {
    for (const [index, target] of app.webhooks.entries()) {
      if (!wants(target, event)) continue;
      if (this.stats.queued >= this.#options.maxQueuedEvents) {
        this.#drop(1, app, target, `the webhook queue is full (webhooks.maxQueuedEvents = ${this.#options.maxQueuedEvents})`);
        continue;
      }
      const queue = this.#queueFor(app, target, index);
      queue.pending.push(event);
      this.stats.queued++;
      if (!queue.sending && queue.timer === undefined) queue.timer = setTimeout(() => void this.#drain(queue), this.#options.batchMs);
    }
  }

  /** Sends what is queued once, without retries, waiting at most timeoutMs; later events are not taken. */
  async close(): Promise<void> {
    this.#closed = true;
    const last: Array<Promise<unknown>> = [];
    for (const queue of this.#queues.values()) {
      clearTimeout(queue.timer);
      queue.timer = undefined;
      if (queue.sending || queue.pending.length === 0) continue;
      const batch = this.#takeBatch(queue);
      last.push(this.#post(queue, batch).then((ok) => (ok ? this.#delivered(batch) : this.#drop(batch.count, queue.app, queue.target, 'the server stopped before the receiver took it'))));
    }
    await Promise.all(last);
  }

  #queueFor(app: App, target: WebhookTarget, index: number): ReceiverQueue {
    const key = `${app.id}\n${index}`;
    let queue = this.#queues.get(key);
    if (!queue || queue.app !== app) this.#queues.set(key, (queue = new ReceiverQueue(app, target)));
    return queue;
  }

  /** Sends the queue's batches one after the other until it is empty. */
  async #drain(queue: ReceiverQueue): Promise<void> {
    queue.timer = undefined;
    queue.sending = true;
    try {
      while (queue.pending.length > 0 && !this.#closed) {
        const batch = this.#takeBatch(queue);
        if (await this.#deliver(queue, batch)) this.#delivered(batch);
      }
    } finally {
      queue.sending = false;
    }
  }

  #takeBatch(queue: ReceiverQueue): Batch {
    const events = queue.pending.splice(0, MAX_BATCH);
    this.stats.queued -= events.length;
    return { body: JSON.stringify({ time_ms: Date.now(), events }), count: events.length, firstTriedAt: Date.now() };
  }

  /** Tries until the receiver takes it or retryForMs has passed; false when dropped. */
  async #deliver(queue: ReceiverQueue, batch: Batch): Promise<boolean> {
    for (let attempt = 0; ; attempt++) {
      if (await this.#post(queue, batch)) return true;
      const delay = Math.min(MAX_RETRY_DELAY_MS, FIRST_RETRY_MS * 2 ** attempt) * (0.5 + Math.random());
      if (this.#closed || Date.now() + delay - batch.firstTriedAt > this.#options.retryForMs) {
        this.#drop(batch.count, queue.app, queue.target, `the receiver did not take them within webhooks.retryForMs (${this.#options.retryForMs} ms, ${attempt + 1} attempts)`, true);
        return false;
      }
      await new Promise((resolve) => setTimeout(resolve, delay).unref());
    }
  }

  async #post(queue: ReceiverQueue, batch: Batch): Promise<boolean> {
    const { app, target } = queue;
    try {
      const response = await fetch(target.url, {
        method: 'POST',
        headers: { ...target.headers, ...webhookHeaders(app.credentials, batch.body) },
        body: batch.body,
        signal: AbortSignal.timeout(this.#options.timeoutMs),
      });
      await response.arrayBuffer().catch(() => undefined); // let the connection be reused
      if (response.ok) return true;
      this.#attemptFailed(app, target, `status ${response.status}`);
    } catch (error) {
      this.#attemptFailed(app, target, (error as Error).name === 'TimeoutError' ? `no answer within webhooks.timeoutMs (${this.#options.timeoutMs} ms)` : String((error as Error).cause ?? error));
    }
    return false;
  }

  #attemptFailed(app: App, target: WebhookTarget, why: string): void {
    this.stats.failedAttempts++;
    this.#log.debug({ app: app.id, url: loggableUrl(target.url), why }, 'webhook request failed; retrying with backoff');
  }

  #delivered(batch: Batch): void {
    this.stats.delivered += batch.count;
  }

  /** Counts dropped events; logs each batch given up, and a full queue at most once a minute. */
  #drop(count: number, app: App, target: WebhookTarget, why: string, always = false): void {
    this.stats.dropped += count;
    const now = Date.now();
    if (!always && now - this.#lastDropLog < DROP_LOG_EVERY_MS) return;
    if (!always) this.#lastDropLog = now;
    this.#log.warn({ app: app.id, url: loggableUrl(target.url), events: count, droppedSoFar: this.stats.dropped }, `webhook events dropped: ${why}`);
  }
}

/** The receiver's URL without credentials or query (a token there must not reach the logs). */
function loggableUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.origin}${parsed.pathname}`;
  } catch {
    return '(unparsable url)';
  }
}

function wants(target: WebhookTarget, event: WebhookEvent): boolean {
  return target.events.includes(event.name as WebhookTarget['events'][number]) && event.channel.startsWith(target.channelPrefix);
}
