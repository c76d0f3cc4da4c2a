/**
 * Which connections belong to a signed-in user, per app: what lets the HTTP API end a user's
 * connections (Pusher's terminate_connections) without walking every socket. The API broadcasts
 * the order through the engine, so every node ends its own (server.ts, onControl). Each user's
 * number of connections here is this node's share of a cluster-wide count (engine.counts), which
 * says whether the user is online anywhere (Pusher watchlists).
 */
import { CloseCodes } from '@chorus/protocol';
import type { Connection } from './connection.js';
import type { Counts } from './engine/types.js';

export class UserConnections {
  /** app id → user id → connections. */
  readonly #byApp = new Map<string, Map<string, Set<Connection>>>();
  /** Where each user's number of connections on this node goes: the cluster-wide count is the user's online state. */
  #counts: Pick<Counts, 'set'> | undefined;

  bind(counts: Pick<Counts, 'set'>): void {
    this.#counts = counts;
  }

  add(appId: string, userId: string, connection: Connection): void {
    let users = this.#byApp.get(appId);
    if (!users) this.#byApp.set(appId, (users = new Map<string, Set<Connection>>()));
    let connections = users.get(userId);
    if (!connections) users.set(userId, (connections = new Set()));
    connections.add(connection);
    this.#counts?.set(appId, 'users', userId, connections.size);
  }

  remove(appId: string, userId: string, connection: Connection): void {
    const users = this.#byApp.get(appId);
    const connections = users?.get(userId);
    if (!users || !connections) return;
    if (!connections.delete(connection)) return;
    this.#counts?.set(appId, 'users', userId, connections.size);
    if (connections.size === 0) users.delete(userId);
    if (users.size === 0) this.#byApp.delete(appId);
  }

  /** Closes every connection of the user on this node. */
  terminate(appId: string, userId: string): void {
    for (const connection of this.of(appId, userId)) connection.close(CloseCodes.TERMINATED);
  }

  /** A copy: closing a connection removes it while the caller iterates. */
  of(appId: string, userId: string): Connection[] {
    return [...(this.#byApp.get(appId)?.get(userId) ?? [])];
  }
}
