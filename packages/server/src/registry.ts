/**
 * Every open connection, counted per app and per client IP so connection limits can be checked
 * before an upgrade is accepted. A connection leaves the registry by itself when its socket closes.
 */
import type { ActivityFeed } from './admin/activity.js';
import type { App } from './apps.js';
import type { Connection } from './connection.js';

interface Entry {
  readonly appId: string;
  readonly ip: string;
}

export class ConnectionRegistry implements Iterable<Connection> {
  readonly #entries = new Map<Connection, Entry>();
  readonly #perApp = new Map<string, number>();
  readonly #perIp = new Map<string, number>();
  readonly #activity: ActivityFeed | undefined;

  constructor(activity?: ActivityFeed) {
    this.#activity = activity;
  }

  get size(): number {
    return this.#entries.size;
  }

  [Symbol.iterator](): Iterator<Connection> {
    return this.#entries.keys();
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

  add(connection: Connection, app: App, ip: string): void {
    this.#entries.set(connection, { appId: app.id, ip });
    increment(this.#perApp, app.id, 1);
    increment(this.#perIp, ip, 1);
    connection.traffic.opened++;
    // 'close' is emitted once; `on` spares the wrapper objects `once` keeps per connection.
    connection.ws.on('close', (code: number) => this.#remove(connection, code));
  }

  /** This node's connection with that id (the admin API's disconnect). */
  byId(id: string): { connection: Connection; appId: string } | undefined {
    for (const [connection, entry] of this.#entries) if (connection.id === id) return { connection, appId: entry.appId };
    return undefined;
  }

  /** How many connections each app has on this node. */
  perApp(): ReadonlyMap<string, number> {
    return this.#perApp;
  }

  #remove(connection: Connection, code: number): void {
    const entry = this.#entries.get(connection);
    if (!entry) return;
    this.#entries.delete(connection);
    if (this.#activity?.watched(entry.appId)) this.#activity.emit(entry.appId, { type: 'disconnected', connection: connection.id, code });
    increment(this.#perApp, entry.appId, -1);
    increment(this.#perIp, entry.ip, -1);
    // From now on /metrics no longer reads this socket's byte counts: they go to its totals.
    const { traffic } = connection;
    traffic.closed++;
    traffic.closedBytesIn += connection.bytesIn;
    traffic.closedBytesOut += connection.bytesOut;
  }
}

function increment(counts: Map<string, number>, key: string, by: number): void {
  const next = (counts.get(key) ?? 0) + by;
  if (next === 0) counts.delete(key);
  else counts.set(key, next);
}
