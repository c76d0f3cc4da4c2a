/**
 * The loaded Yjs rooms of one server: loaded on a room's first connection, unloaded
 * yjs.idleUnloadMs after its last one left (the store keeps the document), and all unloaded at
 * shutdown. The store follows the engine: Redis rooms are shared by every node.
 */
import type { Logger } from 'pino';
import type { ChorusConfig } from '../../config.js';
import type { Connection } from '../../connection.js';
import type { Counts } from '../../engine/types.js';
import { Room } from './room.js';
import { MemoryDocumentStore } from './stores/memory.js';
import { RedisDocumentStore } from './stores/redis.js';
import { layoutOf } from '../../engine/redis/layout.js';
import type { DocumentStore } from './stores/types.js';

/** Figures for /health and the metrics. */
export interface YjsStats {
  /** Rooms loaded on this node. */
  readonly rooms: number;
  /** Their documents' encoded bytes (an upper bound between measurements). */
  readonly documentBytes: number;
  /** Updates applied to loaded rooms since start (a rate is its difference over time). */
  readonly updates: number;
}

const keyOf = (appId: string, room: string): string => `${appId}\n${room}`;

/**
 * A room's connections are counted, cluster-wide, as the subscriptions of the channel
 * `yjs:{room}` (no channel name has a colon): webhooks announce it occupied and vacated, and the
 * Pusher HTTP API's channel listing shows it, as for any channel.
 */
export const roomCountName = (room: string): string => `yjs:${room}`;

export class YjsRooms {
  readonly #store: DocumentStore;
  readonly #idleUnloadMs: number;
  readonly #log: Logger;
  readonly #counts: Pick<Counts, 'set'>;
  readonly #rooms = new Map<string, Room>();
  readonly #idleTimers = new Map<Room, NodeJS.Timeout>();
  /** Rooms being unloaded: a joiner waits, then loads the room again from the store. */
  readonly #unloading = new Map<string, Promise<void>>();
  /** Updates of rooms unloaded since start, so the total never goes down. */
  #unloadedUpdates = 0;

  constructor(config: ChorusConfig, log: Logger, counts: Pick<Counts, 'set'>) {
    this.#log = log;
    this.#counts = counts;
    this.#idleUnloadMs = config.yjs.idleUnloadMs;
    this.#store = config.engine.type === 'memory' ? new MemoryDocumentStore(config.yjs.directory, log) : new RedisDocumentStore(layoutOf(config.engine), log);
  }

  get store(): DocumentStore {
    return this.#store;
  }

  /** Adds the connection to the room, loading it first if needed; resolves when the room is ready. */
  async join(appId: string, name: string, peer: Connection): Promise<Room> {
    const key = keyOf(appId, name);
    await this.#unloading.get(key);
    let room = this.#rooms.get(key);
    if (!room) {
      room = new Room({ appId, room: name }, this.#store);
      this.#rooms.set(key, room);
      const loading = room;
      room.ready.catch(() => {
        // A room that could not load is forgotten, so the next joiner tries again.
        if (this.#rooms.get(key) === loading) this.#rooms.delete(key);
      });
    }
    clearTimeout(this.#idleTimers.get(room));
    this.#idleTimers.delete(room);
    room.add(peer);
    this.#counts.set(appId, 'subscriptions', roomCountName(name), room.peerCount);
    try {
      await room.ready;
    } catch (error) {
      this.leave(room, peer);
      throw error;
    }
    return room;
  }

  leave(room: Room, peer: Connection): void {
    room.remove(peer);
    this.#counts.set(room.key.appId, 'subscriptions', roomCountName(room.key.room), room.peerCount);
    if (room.peerCount > 0 || this.#rooms.get(keyOf(room.key.appId, room.key.room)) !== room) return;
    clearTimeout(this.#idleTimers.get(room));
    this.#idleTimers.set(room, setTimeout(() => void this.#unload(room), this.#idleUnloadMs).unref());
  }

  stats(): YjsStats {
    let documentBytes = 0;
    let updates = this.#unloadedUpdates;
    for (const room of this.#rooms.values()) {
      documentBytes += room.documentBytes;
      updates += room.updatesApplied;
    }
    return { rooms: this.#rooms.size, documentBytes, updates };
  }

  /** Unloads every room (each document handed to the store), then closes the store. */
  async close(): Promise<void> {
    await Promise.all([...this.#rooms.values()].map((room) => this.#unload(room)));
    await Promise.all(this.#unloading.values());
    await this.#store.close();
  }

  async #unload(room: Room): Promise<void> {
    this.#idleTimers.delete(room);
    const key = keyOf(room.key.appId, room.key.room);
    if (this.#rooms.get(key) !== room) return;
    this.#rooms.delete(key);
    this.#unloadedUpdates += room.updatesApplied;
    const unloading = room.ready
      .then(() => room.unload())
      .catch((error: unknown) => this.#log.error({ err: error, app: room.key.appId, room: room.key.room }, 'yjs: unloading a room failed'))
      .finally(() => {
        if (this.#unloading.get(key) === unloading) this.#unloading.delete(key);
      });
    this.#unloading.set(key, unloading);
    await unloading;
  }
}
