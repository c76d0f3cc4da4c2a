/**
 * Presence members counted over the cluster: a decorator on any engine's PresenceStore that sets
 * this node's share of each (channel, user) count in engine.counts (space 'members', name
 * `channel\nuser id`) as its connections join and leave. One user in two tabs, on two nodes, is
 * one member: the count's 0 → n and n → 0 are when a user joins and leaves a channel, seen once
 * per cluster (webhooks' member_added and member_removed), and a crashed node's members stop
 * counting when its share is swept.
 */
import type { Member } from '@chorus/protocol';
import { ChannelMap } from '../channel-map.js';
import type { Counts, Engine, PresenceStore } from './types.js';

/** The count's name for one user of one channel (channel names have no newline). */
export function memberCountName(channel: string, userId: string): string {
  return `${channel}\n${userId}`;
}

/** The channel and user of a member count's name. */
export function parseMemberCountName(name: string): { channel: string; userId: string } {
  const cut = name.indexOf('\n');
  return { channel: name.slice(0, cut), userId: name.slice(cut + 1) };
}

class CountingPresence implements PresenceStore {
  readonly #inner: PresenceStore;
  readonly #counts: Counts;
  /** (app, channel) → connection id → user id, for the members joined through this node. */
  readonly #users = new ChannelMap<Map<string, string>>();
  /** (app, member count name) → this node's connections of that user in that channel. */
  readonly #local = new ChannelMap<number>();

  constructor(inner: PresenceStore, counts: Counts) {
    this.#inner = inner;
    this.#counts = counts;
  }

  async join(appId: string, channel: string, connectionId: string, member: Member, maxMembers: number): Promise<Member[] | undefined> {
    const roster = await this.#inner.join(appId, channel, connectionId, member, maxMembers);
    if (roster) {
      this.#untrack(appId, channel, connectionId); // a rejoin may change the user
      let users = this.#users.get(appId, channel);
      if (!users) this.#users.set(appId, channel, (users = new Map<string, string>()));
      users.set(connectionId, member.user);
      this.#add(appId, memberCountName(channel, member.user), 1);
    }
    return roster;
  }

  leave(appId: string, channel: string, connectionId: string): Promise<Member[] | undefined> {
    // The connection is gone from this node whatever Redis answers: its share goes now.
    this.#untrack(appId, channel, connectionId);
    return this.#inner.leave(appId, channel, connectionId);
  }

  members(appId: string, channel: string): Promise<Member[]> {
    return this.#inner.members(appId, channel);
  }

  #untrack(appId: string, channel: string, connectionId: string): void {
    const users = this.#users.get(appId, channel);
    const userId = users?.get(connectionId);
    if (!users || userId === undefined) return;
    users.delete(connectionId);
    if (users.size === 0) this.#users.delete(appId, channel);
    this.#add(appId, memberCountName(channel, userId), -1);
  }

  #add(appId: string, name: string, delta: number): void {
    const local = (this.#local.get(appId, name) ?? 0) + delta;
    if (local > 0) this.#local.set(appId, name, local);
    else this.#local.delete(appId, name);
    this.#counts.set(appId, 'members', name, local);
  }
}

/** The engine with its presence members counted (see above); everything else is the engine's own. */
export function withMemberCounts(engine: Engine): Engine {
  const presence = new CountingPresence(engine.presence, engine.counts);
  return {
    broker: engine.broker,
    presence,
    counts: engine.counts,
    apps: engine.apps,
    stats: () => engine.stats(),
    broadcast: (message) => engine.broadcast(message),
    close: () => engine.close(),
  };
}
