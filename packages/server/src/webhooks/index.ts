/**
 * Webhooks for every dialect, in Pusher's format (docs/webhooks.md): what happens on channels
 * becomes events for the app's receivers, delivered by WebhookDispatcher.
 *
 * Occupancy and membership come from the cluster-wide counts (engine.counts), whose every change
 * reaches exactly one node. That node decides what to announce, held for removals: a vacated
 * channel or a removed member waits `holdMs`, and is not announced if it is back by then (a
 * page reload is not a leave). What is announced is recorded with counts.mark, which of all nodes
 * lets one announce each transition, so receivers see occupied/vacated and added/removed
 * alternate, once per cluster, and the last one matches the channel's state.
 */
import type { Logger } from 'pino';
import type { App, AppRegistry } from '../apps.js';
import type { WebhookOptions } from '../config.js';
import { parseMemberCountName } from '../engine/member-counts.js';
import type { CountChange, Counts, CountSpace } from '../engine/types.js';
import { WebhookDispatcher, type WebhookEvent, type WebhookStats } from './dispatcher.js';

/** A client-sent event as receivers get it (Pusher's client_event fields). */
export interface ClientEventInfo {
  readonly channel: string;
  readonly event: string;
  /** The event's data as the client sent it: a string, as Pusher's webhooks carry it. */
  readonly data: string;
  readonly socketId: string;
  readonly userId?: string | undefined;
}

/** Checks of a held or immediate transition are retried this many times while Redis is away. */
const CHECK_ATTEMPTS = 5;

export class Webhooks {
  readonly #apps: AppRegistry;
  readonly #counts: Pick<Counts, 'total' | 'mark'>;
  readonly #options: WebhookOptions;
  readonly #log: Logger;
  readonly #dispatcher: WebhookDispatcher;
  readonly #held = new Set<NodeJS.Timeout>();

  constructor(apps: AppRegistry, counts: Pick<Counts, 'total' | 'mark'>, options: WebhookOptions, log: Logger) {
    this.#apps = apps;
    this.#counts = counts;
    this.#options = options;
    this.#log = log;
    this.#dispatcher = new WebhookDispatcher(options, log);
  }

  get stats(): Readonly<WebhookStats> {
    return this.#dispatcher.stats;
  }

  /** The engine's onCountChange, on the one node that saw the change. */
  onCountChange(change: CountChange): void {
    const app = this.#apps.byId(change.appId);
    if (!app || app.webhooks.length === 0) return;
    const { space, name, before, after } = change;
    if (space === 'users') return;
    if (space === 'subscriptions') {
      this.#dispatcher.enqueue(app, { name: 'subscription_count', channel: name, subscription_count: after });
    }
    if (space === 'subscriptions' || space === 'members') {
      if (before === 0 && after > 0) this.#check(app, space, name, 0);
      else if (after === 0) this.#check(app, space, name, this.#options.holdMs);
    }
  }

  clientEvent(app: App, info: ClientEventInfo): void {
    if (app.webhooks.length === 0) return;
    const event: WebhookEvent = { name: 'client_event', channel: info.channel, event: info.event, data: info.data, socket_id: info.socketId };
    this.#dispatcher.enqueue(app, info.userId === undefined ? event : { ...event, user_id: info.userId });
  }

  cacheMiss(app: App, channel: string): void {
    if (app.webhooks.length > 0) this.#dispatcher.enqueue(app, { name: 'cache_miss', channel });
  }

  async close(): Promise<void> {
    for (const timer of this.#held) clearTimeout(timer);
    this.#held.clear();
    await this.#dispatcher.close();
  }

  /** After `delayMs`, announces the name's current state if it is not the state last announced. */
  #check(app: App, space: CountSpace, name: string, delayMs: number, attempt = 1): void {
    const timer = setTimeout(() => {
      this.#held.delete(timer);
      void this.#announce(app, space, name).catch((error: unknown) => {
        if (attempt >= CHECK_ATTEMPTS) return this.#log.warn({ err: error, app: app.id, space, name }, 'webhook occupancy check failed; not announced');
        this.#check(app, space, name, Math.max(1000, delayMs), attempt + 1);
      });
    }, delayMs);
    this.#held.add(timer);
  }

  async #announce(app: App, space: CountSpace, name: string): Promise<void> {
    const present = (await this.#counts.total(app.id, space, name)) > 0;
    if (!(await this.#counts.mark(app.id, space, name, present))) return;
    if (space === 'subscriptions') {
      this.#dispatcher.enqueue(app, { name: present ? 'channel_occupied' : 'channel_vacated', channel: name });
    } else {
      const { channel, userId } = parseMemberCountName(name);
      this.#dispatcher.enqueue(app, { name: present ? 'member_added' : 'member_removed', channel, user_id: userId });
    }
  }
}
