/**
 * What a server counts about itself, as plain integer fields. The hot paths (every message,
 * every flush) only ever increment a field of an object they already hold; nothing is labelled,
 * hashed or allocated there. /metrics reads these objects when it is scraped (see
 * prometheus.ts), so counting costs the same whether anyone scrapes or not.
 */

/** Where a publication came from. Every WebSocket dialect counts as `websocket`. */
export type PublicationSource = 'websocket' | 'rest' | 'pusher_http';

/**
 * One app's connections of one dialect. Every connection holds its own app and dialect's
 * object (Connection.traffic) and increments it directly.
 */
export class Traffic {
  readonly appId: string;
  readonly dialect: string;
  /** Connections admitted, and those that closed since (connected = opened − closed). */
  opened = 0;
  closed = 0;
  /** WebSocket messages received from clients, and frames written to them. */
  messagesIn = 0;
  messagesOut = 0;
  /**
   * Socket bytes, counted as they flow (each read, each flush; the handshake at open). What ws
   * writes itself (pings, close frames) is added when the connection closes, from the socket's
   * own counts. Counted here rather than summed over every open socket at scrape time: that
   * walk took ~5 ms per scrape at 9,000 connections, a stall on the event loop every scrape.
   */
  bytesIn = 0;
  bytesOut = 0;
  /** Messages the connections handed to the engine to publish. */
  published = 0;
  /** Messages refused by the app's message rate (limits.messagesPerSecond, Pusher client events). */
  rateLimited = 0;
  /** Messages refused by a channel's JSON Schema. */
  schemaRefused = 0;
  /** Connections cut for reading too slowly (maxPendingBytes). */
  slowConsumers = 0;

  constructor(appId: string, dialect: string) {
    this.appId = appId;
    this.dialect = dialect;
  }
}

/** Publications of one app through an HTTP API (REST publish, the Pusher HTTP API). */
export interface HttpPublications {
  published: number;
  schemaRefused: number;
}

/** HTTP requests other than WebSocket upgrades, by route. Body bytes, as Content-Length says. */
export interface HttpCalls {
  calls: number;
  bytesIn: number;
  bytesOut: number;
}

export class ServerStats {
  readonly #traffic = new Map<string, Traffic>();
  readonly #httpPublications = new Map<string, HttpPublications>();
  /** Refused WebSocket upgrades by dialect and code (a close code, or an HTTP status). */
  readonly refusals = new Map<string, { dialect: string; code: number; count: number }>();
  readonly http = new Map<string, HttpCalls>();

  /** The counters of this app's connections of this dialect (made on first use). */
  traffic(appId: string, dialect: string): Traffic {
    const key = `${appId}\n${dialect}`;
    let traffic = this.#traffic.get(key);
    if (!traffic) this.#traffic.set(key, (traffic = new Traffic(appId, dialect)));
    return traffic;
  }

  get allTraffic(): IterableIterator<Traffic> {
    return this.#traffic.values();
  }

  httpPublications(appId: string, source: Exclude<PublicationSource, 'websocket'>): HttpPublications {
    const key = `${appId}\n${source}`;
    let counts = this.#httpPublications.get(key);
    if (!counts) this.#httpPublications.set(key, (counts = { published: 0, schemaRefused: 0 }));
    return counts;
  }

  /** [appId, source, counts] of every app that published through an HTTP API. */
  *allHttpPublications(): IterableIterator<[string, string, HttpPublications]> {
    for (const [key, counts] of this.#httpPublications) {
      const [appId = '', source = ''] = key.split('\n');
      yield [appId, source, counts];
    }
  }

  refused(dialect: string, code: number): void {
    const key = `${dialect}\n${code}`;
    const entry = this.refusals.get(key);
    if (entry) entry.count++;
    else this.refusals.set(key, { dialect, code, count: 1 });
  }

  httpCall(route: string, bytesIn: number, bytesOut: number): void {
    let calls = this.http.get(route);
    if (!calls) this.http.set(route, (calls = { calls: 0, bytesIn: 0, bytesOut: 0 }));
    calls.calls++;
    calls.bytesIn += bytesIn;
    calls.bytesOut += bytesOut;
  }
}
