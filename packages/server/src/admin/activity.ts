/**
 * What happens on the cluster, per app, for the dashboard's debug console (Pusher's Debug
 * Console, Ably's dev console): connections, subscriptions, publications with their payloads
 * truncated, refusals with their codes, webhooks sent. Nothing is built or kept unless a console
 * watches the app somewhere: every tap first asks `watched(appId)`, a Map lookup or two, so the
 * hot path pays nothing while no console is open.
 *
 * A console on one node sees every node: while it watches, its node announces the watch every
 * WATCH_RENEW_MS (engine.broadcast), and each node forwards its own items of that app to all
 * nodes, at most FORWARD_PER_SECOND a second (the console learns how many were left out). A watch
 * not renewed (its node died) lapses after WATCH_TTL_MS.
 */
import type { ControlMessage } from '../engine/types.js';
import type { MessagePublication, Publication } from '../engine/types.js';

/** Payload bytes shown per publication; a console is for looking, not for copying data out. */
const PREVIEW_BYTES = 200;

export type ActivityItem =
  | { readonly type: 'connected'; readonly connection: string; readonly dialect: string; readonly ip: string }
  | { readonly type: 'disconnected'; readonly connection: string; readonly code: number }
  | { readonly type: 'refused'; readonly dialect: string; readonly code: number; readonly reason: string; readonly ip: string }
  | { readonly type: 'subscribed' | 'unsubscribed'; readonly connection: string; readonly channel: string }
  | { readonly type: 'publication'; readonly channel: string; readonly event: string | undefined; readonly offset: number; readonly origin: string | undefined; readonly bytes: number; readonly preview: string; readonly binary: boolean }
  | { readonly type: 'presence'; readonly channel: string; readonly action: 'joined' | 'left'; readonly user: string }
  | { readonly type: 'webhook'; readonly url: string; readonly events: readonly string[]; readonly ok: boolean }

  | { readonly type: 'skipped'; readonly count: number };

/** An item as consoles get it: when, and on which node. */
export type StampedItem = ActivityItem & { readonly at: number; readonly node: string };
export type ActivityListener = (item: StampedItem) => void;

const WATCH_RENEW_MS = 10_000;
const WATCH_TTL_MS = 3 * WATCH_RENEW_MS;
/** Items one node forwards to other nodes' consoles per second, at most (the rest is counted). */
const FORWARD_PER_SECOND = 200;

export class ActivityFeed {
  /** Consoles on this node, by app. */
  readonly #listeners = new Map<string, Set<ActivityListener>>();
  /** Apps watched by consoles on other nodes, and until when (ms). */
  readonly #remote = new Map<string, number>();
  readonly #renewals = new Map<string, NodeJS.Timeout>();
  #node = 'local';
  #broadcast: ((message: ControlMessage) => Promise<void>) | undefined;
  #forwardWindow = 0;
  #forwarded = 0;
  #skipped = 0;
  /** Publications delivered on this node since start (the dashboard's messages per second). */
  publications = 0;

  /** Connects the feed to the other nodes (engine.broadcast), once the engine exists. */
  bind(node: string, broadcast: (message: ControlMessage) => Promise<void>): void {
    this.#node = node;
    this.#broadcast = broadcast;
  }

  watched(appId: string): boolean {
    if (this.#listeners.size === 0 && this.#remote.size === 0) return false;
    return this.#listeners.has(appId) || this.#watchedElsewhere(appId);
  }

  /** Starts receiving the app's items, from every node; returns the function that stops it. */
  watch(appId: string, listener: ActivityListener): () => void {
    let listeners = this.#listeners.get(appId);
    if (!listeners) {
      this.#listeners.set(appId, (listeners = new Set()));
      this.#announceWatch(appId);
      this.#renewals.set(appId, setInterval(() => this.#announceWatch(appId), WATCH_RENEW_MS).unref());
    }
    listeners.add(listener);
    return () => {
      listeners.delete(listener);
      if (listeners.size > 0) return;
      this.#listeners.delete(appId);
      clearInterval(this.#renewals.get(appId));
      this.#renewals.delete(appId);
    };
  }

  emit(appId: string, item: ActivityItem): void {
    const stamped: StampedItem = { ...item, at: Date.now(), node: this.#node };
    this.#deliver(appId, stamped);
    if (this.#watchedElsewhere(appId)) this.#forward(appId, stamped);
  }

  /** The engine's control messages about consoles (server.ts hands them all here). */
  onControl(message: ControlMessage): void {
    if (message.kind === 'activity-watch' && message.node !== this.#node) this.#remote.set(message.appId, message.until);
    else if (message.kind === 'activity' && message.node !== this.#node) this.#deliver(message.appId, message.item as StampedItem);
  }

  #deliver(appId: string, item: StampedItem): void {
    const listeners = this.#listeners.get(appId);
    if (listeners) for (const listener of listeners) listener(item);
  }

  #watchedElsewhere(appId: string): boolean {
    const until = this.#remote.get(appId);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    this.#remote.delete(appId);
    return false;
  }

  #announceWatch(appId: string): void {
    void this.#broadcast?.({ kind: 'activity-watch', appId, node: this.#node, until: Date.now() + WATCH_TTL_MS }).catch(() => undefined);
  }

  /** To the consoles of other nodes, within FORWARD_PER_SECOND; what is left out is told as one 'skipped' item. */
  #forward(appId: string, item: StampedItem): void {
    const broadcast = this.#broadcast;
    if (!broadcast) return;
    const second = Math.floor(Date.now() / 1000);
    if (second !== this.#forwardWindow) {
      if (this.#skipped > 0) {
        const skipped: StampedItem = { type: 'skipped', count: this.#skipped, at: Date.now(), node: this.#node };
        void broadcast({ kind: 'activity', appId, node: this.#node, item: skipped }).catch(() => undefined);
      }
      this.#forwardWindow = second;
      this.#forwarded = 0;
      this.#skipped = 0;
    }
    if (this.#forwarded >= FORWARD_PER_SECOND) {
      this.#skipped++;
      return;
    }
    this.#forwarded++;
    void broadcast({ kind: 'activity', appId, node: this.#node, item }).catch(() => undefined);
  }

  /** The hub's tap: every publication delivered on this node. */
  publication(publication: Publication): void {
    this.publications++;
    if (!this.watched(publication.appId)) return;
    if (publication.kind === 'presence') {
      this.emit(publication.appId, { type: 'presence', channel: publication.channel, action: publication.action, user: publication.member.user });
      return;
    }
    this.emit(publication.appId, describePublication(publication));
  }
}

function describePublication(publication: MessagePublication): ActivityItem {
  const { payload, binary } = publication;
  const shown = payload.subarray(0, PREVIEW_BYTES);
  const preview = binary ? shown.toString('hex') : shown.toString('utf8');
  return {
    type: 'publication',
    channel: publication.channel,
    event: publication.event,
    offset: publication.offset,
    origin: publication.originId,
    bytes: payload.length,
    preview: payload.length > PREVIEW_BYTES ? `${preview}…` : preview,
    binary,
  };
}
