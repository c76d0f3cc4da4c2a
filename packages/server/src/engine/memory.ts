/** The default engine: one process, no dependencies. */
import type { Member } from '@chorus/protocol';
import type { Broker, Engine, PresenceStore, Publication, PublicationHandler } from './types.js';

class MemoryBroker implements Broker {
  readonly #onPublication: PublicationHandler;

  constructor(onPublication: PublicationHandler) {
    this.#onPublication = onPublication;
  }

  publish(publication: Publication): Promise<void> {
    // Synchronous hand-back keeps per-channel order without any queue of our own.
    this.#onPublication(publication);
    return Promise.resolve();
  }
}

class MemoryPresence implements PresenceStore {
  /** `${appId}\0${channel}` → connection id → member. Insertion order is join order. */
  readonly #rosters = new Map<string, Map<string, Member>>();

  join(appId: string, channel: string, connectionId: string, member: Member): Promise<Member[]> {
    const key = rosterKey(appId, channel);
    let roster = this.#rosters.get(key);
    if (!roster) this.#rosters.set(key, (roster = new Map<string, Member>()));
    roster.set(connectionId, member);
    return Promise.resolve([...roster.values()]);
  }

  leave(appId: string, channel: string, connectionId: string): Promise<Member[]> {
    const key = rosterKey(appId, channel);
    const roster = this.#rosters.get(key);
    if (!roster) return Promise.resolve([]);
    roster.delete(connectionId);
    if (roster.size === 0) this.#rosters.delete(key);
    return Promise.resolve([...roster.values()]);
  }

  members(appId: string, channel: string): Promise<Member[]> {
    return Promise.resolve([...(this.#rosters.get(rosterKey(appId, channel))?.values() ?? [])]);
  }
}

function rosterKey(appId: string, channel: string): string {
  return `${appId}\0${channel}`;
}

export function createMemoryEngine(onPublication: PublicationHandler): Engine {
  return {
    broker: new MemoryBroker(onPublication),
    presence: new MemoryPresence(),
    close: () => Promise.resolve(),
  };
}
