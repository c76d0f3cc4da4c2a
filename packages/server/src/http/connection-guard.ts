/**
 * Every accepted TCP connection either sends a complete request head (an HTTP request, or an
 * upgrade that upgrade.ts then bounds with handshakeTimeoutMs) within headersTimeoutMs, or is
 * destroyed; and every connection the server has ended is destroyed closeTimeoutMs later, whether
 * or not the peer closes its side.
 *
 * Node's own headersTimeout is kept (it also covers later requests on a keep-alive connection),
 * but it does not close anything by itself: it emits 'clientError', and the HTTP server is
 * half-open (allowHalfOpen), so answering with `socket.end()` leaves the socket, and its file
 * descriptor, open for as long as the peer does not close its side. A client that ignores the
 * server's FIN (a raw socket that never reads, most non-Node clients) therefore stayed connected
 * for good after its 408 (a silent connection, a slowloris), 431 or 400, and a refused upgrade.
 *
 * Over TLS the deadline starts when the TLS handshake is done; the handshake itself is bounded
 * by the server's handshakeTimeout, whose expiry Node also only reports ('tlsClientError').
 *
 * On the plain port it also recognises a TLS ClientHello (a wss:// or https:// URL pointed at
 * ws://), which Node only reports as an invalid method, and says so in the log.
 */
import type { Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';

export interface ConnectionGuardOptions {
  /** The request head must be complete this long after the connection is accepted. */
  readonly headersTimeoutMs: number;
  /** After the server ends a connection, how long the peer gets to close its side. */
  readonly closeTimeoutMs: number;
  /** Served over TLS: the deadline starts once the TLS handshake is done (see server.ts). */
  readonly tls: boolean;
  readonly log: Logger;
}

/** A peer address is told about wss:// on the plain port at most once per this long. */
const TLS_WARNING_INTERVAL_MS = 60_000;
/** Addresses remembered for that; past this many, the oldest are forgotten. */
const TLS_WARNING_MAX_ADDRESSES = 1000;

export class ConnectionGuard {
  readonly #options: ConnectionGuardOptions;
  /**
   * Connections still waiting for their first request head, with their deadlines. All get the
   * same timeout, so insertion order is deadline order and a sweep stops at the first one not due.
   */
  readonly #waiting = new Map<Duplex, number>();
  readonly #sweeper: NodeJS.Timeout;
  /**
   * Listeners every connection carries for its whole life, shared by all of them (a closure per
   * socket would be kept alive as long as the socket): `this` is the socket.
   */
  readonly #forget: (this: Duplex) => void;
  readonly #ended: (this: Duplex) => void;
  /**
   * The destroy timers of connections the server has ended, cleared when the socket closes first
   * (as nearly all do): a pending timer holds its socket, and with it the WebSocket and
   * everything the connection had, for the whole closeTimeoutMs. Under churn that kept the last
   * 5 s of closed connections alive (bench:soak: 1,129 dead sockets, their Timeouts and buffers,
   * in a heap snapshot taken after every client had gone).
   */
  readonly #closeTimers = new Map<Duplex, NodeJS.Timeout>();
  /** When each address was last warned about TLS on the plain port. */
  readonly #tlsWarnedAt = new Map<string, number>();

  constructor(server: Server, options: ConnectionGuardOptions) {
    this.#options = options;
    const waiting = this.#waiting;
    const closeTimers = this.#closeTimers;
    this.#forget = function (this: Duplex): void {
      waiting.delete(this);
      const timer = closeTimers.get(this);
      if (timer === undefined) return;
      clearTimeout(timer);
      closeTimers.delete(this);
    };
    // The server sent its FIN (an error answer, a refused upgrade, a closed WebSocket): the peer
    // gets closeTimeoutMs to close its side, then the socket is destroyed anyway.
    this.#ended = function (this: Duplex): void {
      if (this.destroyed || closeTimers.has(this)) return;
      closeTimers.set(this, setTimeout(destroy, options.closeTimeoutMs, this).unref());
    };
    server.on(options.tls ? 'secureConnection' : 'connection', this.#accepted);
    // A TLS handshake that fails or outlasts handshakeTimeout is only reported, not ended.
    if (options.tls) server.on('tlsClientError', this.#tlsClientError);
    server.on('request', this.#headComplete);
    server.on('upgrade', this.#headComplete);
    const interval = Math.min(1000, Math.max(100, Math.floor(options.headersTimeoutMs / 4)));
    this.#sweeper = setInterval(this.#sweep, interval);
    this.#sweeper.unref();
  }

  close(): void {
    clearInterval(this.#sweeper);
  }

  /**
   * The server's 'clientError' handler: Node's parser refused the request (too slow, too large,
   * malformed). Answers with the matching status and ends the connection (destroyed after
   * closeTimeoutMs if the peer keeps it).
   */
  readonly clientError = (error: NodeJS.ErrnoException & { rawPacket?: Buffer }, socket: Duplex): void => {
    const headIncomplete = this.#waiting.delete(socket);
    if (!this.#options.tls && isTlsHandshake(error.rawPacket)) {
      this.#warnTls(socket);
      return void socket.destroy();
    }
    this.#options.log.debug({ err: error }, 'bad HTTP request');
    if (error.code === 'ECONNRESET' || !socket.writable) return void socket.destroy();
    // Node's own headersTimeout (the same setting) can fire before this guard's sweep: the 408
    // names the setting either way. (With the head complete, it was Node's requestTimeout.)
    if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT' && headIncomplete) return void socket.end(this.#headersTimeoutResponse());
    socket.end(`HTTP/1.1 ${clientErrorStatus(error.code)}\r\nConnection: close\r\n\r\n`);
  };

  readonly #accepted = (socket: Duplex): void => {
    this.#waiting.set(socket, performance.now() + this.#options.headersTimeoutMs);
    socket.on('close', this.#forget);
    socket.on('finish', this.#ended);
  };

  readonly #tlsClientError = (error: Error, socket: Duplex): void => {
    this.#options.log.debug({ err: error }, 'TLS handshake failed');
    socket.destroy();
  };

  readonly #headComplete = (req: { socket: Duplex }): void => {
    this.#waiting.delete(req.socket);
  };

  readonly #sweep = (): void => {
    const now = performance.now();
    for (const [socket, deadline] of this.#waiting) {
      if (deadline > now) break;
      this.#waiting.delete(socket);
      this.#expire(socket);
    }
  };

  #expire(socket: Duplex): void {
    const { headersTimeoutMs } = this.#options;
    this.#options.log.debug({ headersTimeoutMs }, 'request head not complete in time');
    if (!socket.writable) return void socket.destroy();
    socket.end(this.#headersTimeoutResponse());
  }

  #headersTimeoutResponse(): string {
    const body = `No complete request head within headersTimeoutMs (${this.#options.headersTimeoutMs} ms); the server's headersTimeoutMs setting changes it.\n`;
    return `HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
  }

  #warnTls(socket: Duplex): void {
    const { remoteAddress, localPort } = socket as Duplex & { remoteAddress?: string; localPort?: number };
    const address = remoteAddress ?? 'unknown';
    const now = Date.now();
    const last = this.#tlsWarnedAt.get(address);
    if (last !== undefined && now - last < TLS_WARNING_INTERVAL_MS) return;
    this.#tlsWarnedAt.delete(address);
    if (this.#tlsWarnedAt.size >= TLS_WARNING_MAX_ADDRESSES) {
      const oldest = this.#tlsWarnedAt.keys().next().value;
      if (oldest !== undefined) this.#tlsWarnedAt.delete(oldest);
    }
    this.#tlsWarnedAt.set(address, now);
    this.#options.log.warn(
      { ip: address },
      `a TLS (wss:// or https://) connection reached this plain ws:// port from ${address}: use ws://HOST:${localPort ?? 'PORT'}, or start Chorus with --tls-cert and --tls-key`,
    );
  }
}

function destroy(socket: Duplex): void {
  socket.destroy();
}

/** A TLS record of type handshake (22) and major version 3: what every ClientHello starts with. */
function isTlsHandshake(bytes: Buffer | undefined): boolean {
  return bytes !== undefined && bytes.length >= 2 && bytes[0] === 0x16 && bytes[1] === 0x03;
}

/** The status for a request Node's parser refused: too slow, too large, or malformed. */
function clientErrorStatus(code: string | undefined): string {
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return '408 Request Timeout';
  if (code === 'HPE_HEADER_OVERFLOW') return '431 Request Header Fields Too Large';
  return '400 Bad Request';
}
