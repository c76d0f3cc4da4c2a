/** The default engine: one process, no external service. */
import type { Member } from '@chorus/protocol';
import { ChannelMap } from '../channel-map.js';
import type { ChannelRoute } from '../channel-route.js';
import { FileAppStore } from './app-file.js';
import { MemoryStreams } from './memory-history.js';
import type {
  Broker,
  CountChange,
  Counts,
  CountSpace,
  Engine,
  EngineHandlers,
  HistoryPage,
  HistoryPolicyResolver,
  HistoryQuery,
  LocalStats,
  MessageInput,
  MessagePublication,
  PresencePublication,
  PresenceStore,
  PublicationHandler,
  PublishOutcome,
} from './types.js';

const SWEEP_INTERVAL_MS = 60_000;

class MemoryBroker implements Broker {
  readonly #onPublication: PublicationHandler;
  readonly #policy: HistoryPolicyResolver;
  readonly #streams = new MemoryStreams();
  readonly #sweeper: NodeJS.Timeout;

  constructor(onPublication: PublicationHandler, policy: HistoryPolicyResolver) {
    this.#onPublication = onPublication;
    this.#policy = policy;
    this.#sweeper = setInterval(() => this.#streams.sweep(), SWEEP_INTERVAL_MS).unref();
  }

  publish(message: MessageInput): Promise<PublishOutcome> {
    const placed = this.#place(message);
    return Promise.resolve('kind' in placed ? { offset: placed.offset, epoch: placed.epoch, duplicate: false } : placed);
  }

  send(message: MessageInput, _failed: unknown, route?: ChannelRoute): void {
    // Nothing here can fail (no I/O), and the outcome is not wanted: no promise, no outcome object.
    this.#place(message, route);
  }

  /** The publication, delivered; or, for a repeated msgId, the first one's outcome. */
  #place(message: MessageInput, route?: ChannelRoute): MessagePublication | PublishOutcome {
    const placed = this.#streams.append(message, this.#policy(message.appId, message.channel), route);
    // Synchronous hand-back: offsets are assigned and delivered in one step, so delivery order
    // is offset order without any queue of our own.
    if ('kind' in placed) this.#onPublication(placed, route);
    return placed;
  }

  publishPresence(change: PresencePublication): Promise<void> {
    this.#onPublication(change);
    return Promise.resolve();
  }

  history(appId: string, channel: string, query: HistoryQuery): Promise<HistoryPage> {
    return Promise.resolve(this.#streams.read(appId, channel, query, this.#policy(appId, channel)));
  }

  /** One process: every publication is already here. */
  attach(): Promise<void> {
    return Promise.resolve();
  }

  detach(): void {}

  close(): void {
    clearInterval(this.#sweeper);
  }
}

class MemoryPresence implements PresenceStore {
  /** (app, channel) → connection id → member. Insertion order is join order. */
  readonly #rosters = new ChannelMap<Map<string, Member>>();

  join(appId: string, channel: string, connectionId: string, member: Member, maxMembers: number): Promise<Member[] | undefined> {
    let roster = this.#rosters.get(appId, channel);
    if (!roster) this.#rosters.set(appId, channel, (roster = new Map<string, Member>()));
    if (roster.size >= maxMembers && !roster.has(connectionId)) return Promise.resolve(undefined);
    roster.set(connectionId, member);
    return Promise.resolve([...roster.values()]);
  }

  leave(appId: string, channel: string, connectionId: string): Promise<Member[] | undefined> {
    const roster = this.#rosters.get(appId, channel);
    if (!roster?.delete(connectionId)) return Promise.resolve(undefined);
    if (roster.size === 0) this.#rosters.delete(appId, channel);
    return Promise.resolve([...roster.values()]);
  }

  members(appId: string, channel: string): Promise<Member[]> {
    return Promise.resolve([...(this.#rosters.get(appId, channel)?.values() ?? [])]);
  }
}

const COUNT_SPACES: readonly CountSpace[] = ['subscriptions', 'users', 'members'];

function spaces<V>(): Record<CountSpace, ChannelMap<V>> {
  return { subscriptions: new ChannelMap(), users: new ChannelMap(), members: new ChannelMap() };
}

/**
 * One node: the counts are this node's shares. Changes are reported once per turn, after the
 * code that made them has run (a subscriber's own subscription_succeeded goes out first).
 * Nested maps, not joined string keys: nothing is allocated per channel but the map entry.
 */
class MemoryCounts implements Counts {
  readonly #totals = spaces<number>();
  /** Totals before this turn's first change of each, not reported yet. */
  readonly #before = spaces<number>();
  /** Names marked present (see mark). */
  readonly #marked = spaces<true>();
  #reportScheduled = false;
  readonly #onChange: (change: CountChange) => void;

  constructor(onChange: (change: CountChange) => void) {
    this.#onChange = onChange;
  }

  set(appId: string, space: CountSpace, name: string, local: number): void {
    const totals = this.#totals[space];
    const before = totals.get(appId, name) ?? 0;
    if (before === local) return;
    if (local > 0) totals.set(appId, name, local);
    else totals.delete(appId, name);
    const pending = this.#before[space];
    if (pending.get(appId, name) === undefined) pending.set(appId, name, before);
    if (!this.#reportScheduled) {
      this.#reportScheduled = true;
      setImmediate(() => this.#report());
    }
  }

  total(appId: string, space: CountSpace, name: string): Promise<number> {
    return Promise.resolve(this.#totals[space].get(appId, name) ?? 0);
  }

  list(appId: string, space: CountSpace, prefix: string): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    this.#totals[space].forEachOf(appId, (name, total) => {
      if (name.startsWith(prefix)) out.set(name, total);
    });
    return Promise.resolve(out);
  }

  mark(appId: string, space: CountSpace, name: string, present: boolean): Promise<boolean> {
    const marked = this.#marked[space];
    const was = marked.get(appId, name) === true;
    if (present) marked.set(appId, name, true);
    else marked.delete(appId, name);
    return Promise.resolve(was !== present);
  }

  #report(): void {
    this.#reportScheduled = false;
    for (const space of COUNT_SPACES) {
      const pending = this.#before[space];
      for (const [appId, name, before] of pending.entries()) {
        pending.delete(appId, name);
        const after = this.#totals[space].get(appId, name) ?? 0;
        if (after !== before) this.#onChange({ appId, space, name, before, after });
      }
    }
  }
}

/** `appsFile`: where apps managed through the admin API are kept (undefined: this process only). */
export function createMemoryEngine(handlers: EngineHandlers, policy: HistoryPolicyResolver, localStats: LocalStats, appsFile?: string): Engine {
  const broker = new MemoryBroker(handlers.onPublication, policy);
  return {
    broker,
    presence: new MemoryPresence(),
    counts: new MemoryCounts(handlers.onCountChange),
    apps: new FileAppStore(appsFile),
    stats: () => Promise.resolve({ nodes: 1, ...localStats() }),
    broadcast: (message) => {
      handlers.onControl(message);
      return Promise.resolve();
    },
    close: () => {
      broker.close();
      return Promise.resolve();
    },
  };
}
