/**
 * What happens on this node, per app, for the dashboard's debug console (Pusher's Debug Console,
 * Ably's dev console): connections, subscriptions, publications with their payloads truncated,
 * refusals with their codes, webhooks sent. Nothing is built or kept unless a console is
 * watching the app: every tap first asks `watched(appId)`, one Map lookup, so the hot path pays
 * nothing while no console is open. Per node: a console sees the node that serves it.
 */
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
  | { readonly type: 'webhook'; readonly url: string; readonly events: readonly string[]; readonly ok: boolean };

export type ActivityListener = (item: ActivityItem & { readonly at: number }) => void;

export class ActivityFeed {
  readonly #listeners = new Map<string, Set<ActivityListener>>();
  /** Publications delivered on this node since start (the dashboard's messages per second). */
  publications = 0;

  watched(appId: string): boolean {
    return this.#listeners.size > 0 && this.#listeners.has(appId);
  }

  /** Starts receiving the app's items; returns the function that stops it. */
  watch(appId: string, listener: ActivityListener): () => void {
    let listeners = this.#listeners.get(appId);
    if (!listeners) this.#listeners.set(appId, (listeners = new Set()));
    listeners.add(listener);
    return () => {
      listeners.delete(listener);
      if (listeners.size === 0) this.#listeners.delete(appId);
    };
  }

  emit(appId: string, item: ActivityItem): void {
    const listeners = this.#listeners.get(appId);
    if (!listeners) return;
    const stamped = { ...item, at: Date.now() };
    for (const listener of listeners) listener(stamped);
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
