/**
 * Every open connection, counted per app and per client IP so connection limits can be checked
 * before an upgrade is accepted. A connection leaves the registry by itself when its socket closes.
 * The registry is also who listens to each connection's WebSocket errors (ws throws an 'error'
 * nobody listens to): logged at debug level, with the connection's id.
 */
import type { Logger } from 'pino';
import type { WebSocket } from 'ws';
import type { ActivityFeed } from './admin/activity.js';
import type { App } from './apps.js';
import type { Connection } from './connection.js';

export class ConnectionRegistry implements Iterable<Connection> {
  /** Each connection by its WebSocket, which is what the shared 'close' listener is called on. */
  readonly #byWs = new Map<WebSocket, Connection>();
  readonly #perApp = new Map<string, number>();
  readonly #perIp = new Map<string, number>();
  readonly #activity: ActivityFeed | undefined;

  /**
   * The 'close' and 'error' listeners every connection shares (`this` is its WebSocket): a
   * closure per connection, and its context, would sit in memory for the connection's whole life.
   */
  readonly #closed: (this: WebSocket, code: number) => void;
  readonly #errored: (this: WebSocket, error: Error) => void;

  constructor(log: Logger, activity?: ActivityFeed) {
    this.#activity = activity;
    const byWs = this.#byWs;
    const remove = (connection: Connection, code: number): void => this.#remove(connection, code);
    this.#closed = function (this: WebSocket, code: number): void {
      const connection = byWs.get(this);
      if (!connection) return;
      remove(connection, code);
      connection.closed();
    };
    this.#errored = function (this: WebSocket, error: Error): void {
      log.debug({ err: error, connection: byWs.get(this)?.id }, 'connection error');
    };
  }

  get size(): number {
    return this.#byWs.size;
  }

  [Symbol.iterator](): Iterator<Connection> {
    return this.#byWs.values();
  }

  /**
   * Why one more connection for this app from this IP must be refused, or undefined when it
   * fits. Check right before accepting the upgrade and `add` right after, in the same turn, so
   * concurrent handshakes cannot overshoot.
   */
  refusal(app: App, ip: string): string | undefined {
    const { maxConnections, maxConnectionsPerIp } = app.limits;
    if ((this.#perApp.get(app.id) ?? 0) >= maxConnections) return `this app allows ${maxConnections} connections`;
    if ((this.#perIp.get(ip) ?? 0) >= maxConnectionsPerIp) return `this app allows ${maxConnectionsPerIp} connections per IP address`;
    return undefined;
  }

  add(connection: Connection, app: App): void {
    this.#byWs.set(connection.ws, connection);
    increment(this.#perApp, app.id, 1);
    increment(this.#perIp, connection.ip, 1);
    connection.traffic.opened++;
    // 'close' is emitted once; `on` spares the wrapper objects `once` keeps per connection.
    connection.ws.on('close', this.#closed);
    connection.ws.on('error', this.#errored);
  }

  /** This node's connection with that id (the admin API's disconnect). */
  byId(id: string): { connection: Connection; appId: string } | undefined {
    for (const connection of this.#byWs.values()) if (connection.id === id) return { connection, appId: connection.traffic.appId };
    return undefined;
  }

  /** How many connections each app has on this node. */
  perApp(): ReadonlyMap<string, number> {
    return this.#perApp;
  }

  #remove(connection: Connection, code: number): void {
    this.#byWs.delete(connection.ws);
    const { appId } = connection.traffic;
    if (this.#activity?.watched(appId)) this.#activity.emit(appId, { type: 'disconnected', connection: connection.id, code });
    increment(this.#perApp, appId, -1);
    increment(this.#perIp, connection.ip, -1);
    connection.traffic.closed++;
    connection.settleBytes();
  }
}

function increment(counts: Map<string, number>, key: string, by: number): void {
  const next = (counts.get(key) ?? 0) + by;
  if (next === 0) counts.delete(key);
  else counts.set(key, next);
}
