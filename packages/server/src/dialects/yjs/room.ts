/**
 * One loaded Yjs room: the server's copy of the document (a Y.Doc), the awareness states of the
 * clients on this node and the ones the other nodes relay, and the connections here.
 *
 * Why a server-side Y.Doc rather than a list merged with Y.mergeUpdates: a joiner's sync step 1
 * is answered with `encodeStateAsUpdate(doc, stateVector)`, which only a document answers
 * cheaply; Y.diffUpdate over merged updates re-parses the whole update per joiner. The Y.Doc
 * costs more memory while the room is loaded, so rooms are unloaded when idle and kept as an
 * encoded state (the store's), and a document may not grow past yjs.maxDocumentBytes.
 */
import { Awareness, applyAwarenessUpdate, encodeAwarenessUpdate, removeAwarenessStates } from 'y-protocols/awareness';
import * as Y from 'yjs';
import type { Connection } from '../../connection.js';
import { frame } from '../../frame.js';
import type { DocumentStore, RoomFeed, RoomKey } from './stores/types.js';
import { encodeAwareness, encodeUpdate } from './wire.js';

/** Awareness origins that are not a local connection: nothing to tell the other nodes. */
const FROM_OTHER_NODE = Symbol('other node');
const EXPIRED = 'timeout'; // y-protocols' own origin for states not renewed within 30 s

/** Stored bytes appended since the last compaction that trigger the next one (at least). */
const MIN_COMPACTION_BYTES = 64 * 1024;

export class Room implements RoomFeed {
  readonly key: RoomKey;
  readonly doc = new Y.Doc();
  readonly awareness: Awareness;
  /** Resolves once the stored document is loaded; a room serves no one before. */
  readonly ready: Promise<void>;
  /** Every update applied, for the stats (updates/s). */
  updatesApplied = 0;
  /** Connections here, each with the awareness client ids it announced. */
  readonly #peers = new Map<Connection, Set<number>>();
  readonly #store: DocumentStore;
  /** Encoded size at the last measurement, plus the bytes of the updates applied since. */
  #measuredBytes = 0;
  #bytesSinceMeasure = 0;
  #compacting: Promise<void> | undefined;
  /** Before the stored document is in, a state would not cover what the store holds. */
  #loaded = false;
  /** After unload: the document is destroyed, late deliveries are ignored. */
  #unloaded = false;
  /** Appends not yet stored: the room's final state must wait for them. */
  readonly #appending = new Set<Promise<void>>();

  constructor(key: RoomKey, store: DocumentStore) {
    this.key = key;
    this.#store = store;
    this.awareness = new Awareness(this.doc);
    this.awareness.setLocalState(null); // the server is no participant
    this.doc.on('update', this.#relayUpdate);
    this.awareness.on('update', this.#relayAwareness);
    this.ready = store.open(key, this).then((stored) => {
      Y.transact(this.doc, () => {
        for (const update of stored) Y.applyUpdate(this.doc, update, FROM_OTHER_NODE);
      });
      this.#measure();
      this.#loaded = true;
    });
  }

  get peerCount(): number {
    return this.#peers.size;
  }

  /** The document's encoded size as last measured plus what was applied since: an upper bound. */
  get documentBytes(): number {
    return this.#measuredBytes + this.#bytesSinceMeasure;
  }

  add(peer: Connection): void {
    this.#peers.set(peer, new Set());
  }

  /** Forgets the connection and removes its clients' awareness, here and on every node. */
  remove(peer: Connection): void {
    const clients = this.#peers.get(peer);
    this.#peers.delete(peer);
    if (clients && clients.size > 0) removeAwarenessStates(this.awareness, [...clients], peer);
  }

  /** Stores a client's update; the store then hands it back to storedUpdate, on every node. */
  append(update: Uint8Array, originId: string): Promise<void> {
    const appending = this.#store.append(this.key, update, originId);
    this.#appending.add(appending);
    const settled = (): void => void this.#appending.delete(appending);
    appending.then(settled, settled);
    return appending;
  }

  /** RoomFeed: a stored update, from this node or another. */
  storedUpdate(update: Uint8Array, originId: string | undefined): void {
    if (this.#unloaded) return;
    this.updatesApplied++;
    this.#bytesSinceMeasure += update.length;
    Y.applyUpdate(this.doc, update, originId);
    if (this.#bytesSinceMeasure > Math.max(MIN_COMPACTION_BYTES, this.#measuredBytes)) this.compact();
  }

  /** RoomFeed: another node's awareness update. */
  remoteAwareness(update: Uint8Array): void {
    if (this.#unloaded) return;
    applyAwarenessUpdate(this.awareness, update, FROM_OTHER_NODE);
  }

  /** A local client's awareness update (already validated by wire.ts). */
  applyAwareness(update: Uint8Array, peer: Connection): void {
    applyAwarenessUpdate(this.awareness, update, peer);
  }

  /** How many of these client ids the room's awareness does not list yet. */
  newAwarenessClients(clientIds: readonly number[]): number {
    const states = this.awareness.getStates();
    return clientIds.filter((id) => !states.has(id)).length;
  }

  get awarenessCount(): number {
    return this.awareness.getStates().size;
  }

  /** Every known awareness state as one message, for a joiner (undefined when there are none). */
  awarenessSnapshot(): Buffer | undefined {
    const clients = [...this.awareness.getStates().keys()];
    return clients.length === 0 ? undefined : encodeAwareness(encodeAwarenessUpdate(this.awareness, clients));
  }

  /**
   * Measures the document and hands its encoded state to the store, which may replace the
   * updates it holds with it. One at a time; a request during one is dropped (the next update
   * over the threshold asks again).
   */
  compact(): void {
    if (this.#compacting || !this.#loaded) return;
    const state = this.#measure();
    this.#compacting = this.#store.compact(this.key, state).finally(() => (this.#compacting = undefined));
    this.#compacting.catch(() => undefined); // a failed compaction keeps the updates: nothing is lost
  }

  /** The final state for the store; the room is unusable afterwards. */
  async unload(): Promise<void> {
    await Promise.allSettled([...this.#appending, this.#compacting]);
    // From here to the store's release nothing awaits: the state covers every update delivered.
    this.#unloaded = true;
    const state = Y.encodeStateAsUpdate(this.doc);
    this.awareness.destroy();
    this.doc.destroy();
    await this.#store.release(this.key, state);
  }

  #measure(): Uint8Array {
    const state = Y.encodeStateAsUpdate(this.doc);
    this.#measuredBytes = state.length;
    this.#bytesSinceMeasure = 0;
    return state;
  }

  /** Measures the document again if the estimate says `extra` bytes would pass `limit`. */
  wouldExceed(extra: number, limit: number): boolean {
    if (this.documentBytes + extra <= limit) return false;
    this.#measure();
    return this.documentBytes + extra > limit;
  }

  readonly #relayUpdate = (update: Uint8Array, origin: unknown): void => {
    // While loading, the connections here have not synced yet: their sync step 2 will hold it.
    if (!this.#loaded) return;
    // Framed once, the same bytes queued for every other connection here.
    const bytes = frame(encodeUpdate(update), true);
    for (const peer of this.#peers.keys()) if (peer.id !== origin) peer.send(bytes);
  };

  readonly #relayAwareness = ({ added, updated, removed }: AwarenessChanges, origin: unknown): void => {
    const changed = [...added, ...updated, ...removed];
    const clients = origin instanceof Object ? this.#peers.get(origin as Connection) : undefined;
    if (clients) {
      for (const id of added) clients.add(id);
      for (const id of removed) clients.delete(id);
    }
    const update = encodeAwarenessUpdate(this.awareness, changed);
    const bytes = frame(encodeAwareness(update), true);
    for (const peer of this.#peers.keys()) peer.send(bytes);
    // A local client's change (or its departure) is news to the other nodes; an expiry each
    // node sees on its own, and another node's change came from there.
    if (origin !== FROM_OTHER_NODE && origin !== EXPIRED) this.#store.publishAwareness(this.key, update);
  };
}

interface AwarenessChanges {
  readonly added: number[];
  readonly updated: number[];
  readonly removed: number[];
}
