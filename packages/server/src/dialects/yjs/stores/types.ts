/**
 * Where Yjs rooms keep their documents and how their updates reach every node: the memory
 * store (this process, optionally a folder of files) or the Redis store (Streams plus pub/sub).
 *
 * Both hand every stored update back through the room's `RoomFeed`, the origin's node included,
 * so a single node and a cluster share one delivery path (as the channel engine does).
 */

/** A room is named by its app and its name; names follow the channel rule. */
export interface RoomKey {
  readonly appId: string;
  readonly room: string;
}

/** What a store calls back into a loaded room. */
export interface RoomFeed {
  /** An update was stored (by any node): apply it and relay it, except to `originId`. */
  storedUpdate(update: Uint8Array, originId: string | undefined): void;
  /** Another node's clients changed their awareness (cursors, names): apply and relay it. */
  remoteAwareness(update: Uint8Array): void;
}

export interface DocumentStore {
  /**
   * Starts delivering the room's updates to `feed` (Redis: SUBSCRIBE) and returns what is stored
   * for it, oldest first (a compacted state, then the updates since).
   */
  open(key: RoomKey, feed: RoomFeed): Promise<Uint8Array[]>;
  /**
   * Stores one update, then hands it to every open room's feed on every node. Resolves once it
   * is stored: a client's update is relayed to others only after it is, so an update anyone has
   * seen is never lost with a node.
   */
  append(key: RoomKey, update: Uint8Array, originId: string): Promise<void>;
  /** Sends an awareness update to the room's feeds on the other nodes (never stored). */
  publishAwareness(key: RoomKey, update: Uint8Array): void;
  /**
   * The room's whole document, encoded, covering every update delivered to its feed so far:
   * the store may replace what it keeps with it.
   */
  compact(key: RoomKey, state: Uint8Array): Promise<void>;
  /** The room was unloaded; `state` is its final encoded document. Stops its deliveries. */
  release(key: RoomKey, state: Uint8Array): Promise<void>;
  close(): Promise<void>;
}
