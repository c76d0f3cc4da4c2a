/**
 * Which connections belong to a signed-in user, per app: what lets the HTTP API end a user's
 * connections (Pusher's terminate_connections) without walking every socket. The API broadcasts
 * the order through the engine, so every node ends its own (server.ts, onControl).
 */
import { CloseCodes } from '@chorus/protocol';
import type { Connection } from './connection.js';

export class UserConnections {
  /** app id → user id → connections. */
  readonly #byApp = new Map<string, Map<string, Set<Connection>>>();

  add(appId: string, userId: string, connection: Connection): void {
    let users = this.#byApp.get(appId);
    if (!users) this.#byApp.set(appId, (users = new Map<string, Set<Connection>>()));
    let connections = users.get(userId);
    if (!connections) users.set(userId, (connections = new Set()));
    connections.add(connection);
  }

  remove(appId: string, userId: string, connection: Connection): void {
    const users = this.#byApp.get(appId);
    const connections = users?.get(userId);
    if (!users || !connections) return;
    connections.delete(connection);
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
