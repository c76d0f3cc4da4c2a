/**
 * The Pusher events that follow cluster-wide counts (engine.counts): a channel's
 * `pusher_internal:subscription_count` and watchlists' online/offline. The node whose change
 * moved a count (exactly one per change) broadcasts the news; every node tells its own
 * connections. With the memory engine the broadcast is a local call, so one node and a cluster
 * run the same code.
 */
import type { Connection } from '../../connection.js';
import type { ServerContext } from '../../context.js';
import type { ControlMessage, CountChange } from '../../engine/types.js';
import type { Subscriber } from '../../hub.js';
import { pusherEncoder } from './encoder.js';
import { channelTraits } from './names.js';
import { eventFrame } from './wire.js';

/** The watchlist's length Pusher allows; more is refused with pusher:error 4302. */
export const MAX_WATCHLIST = 100;

/** On the node that changed a count: tells every node what follows from it. */
export function onCountChange(ctx: ServerContext, change: CountChange): void {
  const { appId, name, before, after } = change;
  let message: ControlMessage | undefined;
  if (change.space === 'subscriptions') {
    // Opt-in per app, and never for presence channels (their member events say more), as at Pusher.
    if (ctx.apps.byId(appId)?.subscriptionCount && countsSubscriptions(name)) message = { kind: 'subscription-count', appId, channel: name, count: after };
  } else if ((before === 0) !== (after === 0)) {
    message = { kind: 'user-presence', appId, userId: name, online: after > 0 };
  }
  if (message) ctx.engine.broadcast(message).catch((error: unknown) => ctx.log.warn({ err: error, kind: message.kind }, 'pusher count news not broadcast'));
}

/** On every node: the news reaches this node's Pusher connections. */
export function onControl(ctx: ServerContext, message: ControlMessage): void {
  if (message.kind === 'subscription-count') deliverSubscriptionCount(ctx, message.appId, message.channel, message.count);
  else if (message.kind === 'user-presence') watchlistsOf(ctx).notify(message.appId, message.userId, message.online);
}

function countsSubscriptions(channel: string): boolean {
  const { auth } = channelTraits(channel);
  return auth !== 'presence' && auth !== 'user';
}

// ---- subscription_count ----------------------------------------------------------------------

/** The latest count for subscribers still setting up: sent after their subscription_succeeded. */
const pendingCounts = new WeakMap<Subscriber, Buffer>();

function deliverSubscriptionCount(ctx: ServerContext, appId: string, channel: string, count: number): void {
  const frame = eventFrame('pusher_internal:subscription_count', channel, JSON.stringify({ subscription_count: count }));
  for (const subscriber of ctx.hub.subscribersOf(appId, channel)) {
    if (subscriber.encoder !== pusherEncoder) continue;
    if (subscriber.held === undefined) subscriber.connection.send(frame);
    else pendingCounts.set(subscriber, frame);
  }
}

/** The count frame that arrived while the subscriber was setting up, if any (taken once). */
export function takePendingCount(subscriber: Subscriber): Buffer | undefined {
  const frame = pendingCounts.get(subscriber);
  pendingCounts.delete(subscriber);
  return frame;
}

// ---- watchlists ------------------------------------------------------------------------------

/** Per server: which local connections watch which users (pusher:signin's `watchlist`). */
class Watchlists {
  /** app id → watched user id → the connections watching. */
  readonly #watchers = new Map<string, Map<string, Set<Connection>>>();

  watch(appId: string, userIds: readonly string[], connection: Connection): void {
    let users = this.#watchers.get(appId);
    if (!users) this.#watchers.set(appId, (users = new Map<string, Set<Connection>>()));
    for (const userId of userIds) {
      let watchers = users.get(userId);
      if (!watchers) users.set(userId, (watchers = new Set()));
      watchers.add(connection);
    }
  }

  unwatch(appId: string, userIds: readonly string[], connection: Connection): void {
    const users = this.#watchers.get(appId);
    if (!users) return;
    for (const userId of userIds) {
      const watchers = users.get(userId);
      watchers?.delete(connection);
      if (watchers?.size === 0) users.delete(userId);
    }
    if (users.size === 0) this.#watchers.delete(appId);
  }

  notify(appId: string, userId: string, online: boolean): void {
    const watchers = this.#watchers.get(appId)?.get(userId);
    if (!watchers) return;
    const frame = watchlistFrame(online ? 'online' : 'offline', [userId]);
    for (const connection of watchers) connection.send(frame);
  }
}

const watchlists = new WeakMap<ServerContext, Watchlists>();

export function watchlistsOf(ctx: ServerContext): Watchlists {
  let lists = watchlists.get(ctx);
  if (!lists) watchlists.set(ctx, (lists = new Watchlists()));
  return lists;
}

export function watchlistFrame(name: 'online' | 'offline', userIds: readonly string[]): Buffer {
  return eventFrame('pusher_internal:watchlist_events', undefined, JSON.stringify({ events: [{ name, user_ids: userIds }] }));
}
