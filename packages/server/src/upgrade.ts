/**
 * WebSocket upgrades, the transport side: find the dialect by path (the table the server passes
 * in), run the admission pipeline (admission.ts) and complete handshakes with `ws`. Dialects
 * decide everything they can (keys, tokens) before the upgrade completes, so no frame a client
 * sends right after `open` can arrive before its connection is fully set up.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import proxyAddr from 'proxy-addr';
import { WebSocketServer, type WebSocket } from 'ws';
import { HttpErrors } from '@chorus/protocol';
import { admit, noteRefusal, routeUpgrade, type Acceptor, type Dialect, type PendingUpgrade } from './admission.js';
import type { App } from './apps.js';
import type { ServerContext } from './context.js';
import { refuseHttp } from './http/refuse.js';
import { requestUrl } from './http/request-url.js';

/** Frames a rejected-after-upgrade socket may send before we close it: tiny, nothing is read. */
const REJECTED_SOCKET_MAX_PAYLOAD = 1024;

export class UpgradeHandler implements Acceptor {
  readonly #ctx: ServerContext;
  readonly #dialects: readonly Dialect[];
  /** One ws server per frame size limit, so each app's limit is enforced by ws itself (close 1009). */
  readonly #wssByLimit = new Map<number, WebSocketServer>();
  /** For sockets accepted only to be told why they are refused (unknown key…). */
  readonly #rejectWss: WebSocketServer;
  /** Which peers may name the client in X-Forwarded-For (none by default: it is just a header). */
  readonly #isTrustedProxy: (address: string, hop: number) => boolean;

  constructor(ctx: ServerContext, dialects: readonly Dialect[]) {
    this.#ctx = ctx;
    this.#dialects = dialects;
    this.#isTrustedProxy = proxyAddr.compile(ctx.config.trustedProxies);
    this.#rejectWss = createWss(REJECTED_SOCKET_MAX_PAYLOAD, ctx.config.closeTimeoutMs);
  }

  /**
   * One listener shared by every socket. An arrow function created in `handle` would share
   * `handle`'s closure context (socket, the cleared deadline timer…) and, staying on the socket,
   * keep all of it alive for the connection's whole life.
   */
  readonly #logSocketError = (error: Error): void => this.#ctx.log.debug({ err: error }, 'socket error');

  readonly handle = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on('error', this.#logSocketError);
    const url = requestUrl(req);
    if (!url) return refuseHttp(socket, HttpErrors.BAD_REQUEST, 'The request target is not a path.');
    const routed = routeUpgrade(this.#dialects, url, this.#ctx.config);
    const dialect = routed?.dialect.name ?? 'none';
    if (this.#ctx.shuttingDown) {
      noteRefusal(this.#ctx, dialect, HttpErrors.SHUTTING_DOWN.status, 'shutting down');
      // Retry-After: a client that comes back through the load balancer lands on another node.
      return refuseHttp(socket, HttpErrors.SHUTTING_DOWN, undefined, { 'Retry-After': '1' });
    }
    if (this.#ctx.outage?.refusing) {
      noteRefusal(this.#ctx, dialect, HttpErrors.ENGINE_UNAVAILABLE.status, 'engine unavailable');
      return refuseHttp(socket, HttpErrors.ENGINE_UNAVAILABLE, this.#ctx.outage.message, { 'Retry-After': '1' });
    }
    if (!routed) {
      // The path only: the query string may carry a token.
      noteRefusal(this.#ctx, dialect, HttpErrors.NOT_FOUND.status, 'no WebSocket endpoint at this path', { path: url.pathname });
      return refuseHttp(socket, HttpErrors.NOT_FOUND);
    }
    const upgrade: PendingUpgrade = { req, socket, head, url, ip: this.#clientAddress(req) };
    const handled = admit(this.#ctx, this, routed.dialect, routed.route, upgrade);
    // After 'upgrade' fires no HTTP timeout applies any more: bound the time to decide.
    const deadline = setTimeout(() => socket.destroy(), this.#ctx.config.handshakeTimeoutMs);
    handled
      .catch((error: unknown) => {
        this.#ctx.log.error({ err: error }, 'upgrade failed');
        socket.destroy();
      })
      .finally(() => clearTimeout(deadline));
  };

  /**
   * The client's address: the socket's peer, or behind trusted proxies the right-most
   * X-Forwarded-For entry that is not itself a trusted proxy (entries left of it are whatever the
   * client chose to send).
   */
  #clientAddress(req: IncomingMessage): string {
    if (req.socket.remoteAddress === undefined) return 'unknown'; // already closed
    return proxyAddr(req, this.#isTrustedProxy);
  }

  /**
   * Completes the handshake, or resolves undefined when ws refused it (the socket is closed).
   * Frames are limited to `frameLimit` bytes (default: the app's maxMessageSize); `app`
   * undefined means "accept only to tell the client why it is refused".
   */
  accept(upgrade: PendingUpgrade, app: App | undefined, frameLimit = app?.limits.maxMessageSize): Promise<WebSocket | undefined> {
    let wss = this.#rejectWss;
    if (app && frameLimit !== undefined) {
      wss = this.#wssByLimit.get(frameLimit) ?? createWss(frameLimit, this.#ctx.config.closeTimeoutMs);
      this.#wssByLimit.set(frameLimit, wss);
    }
    // ws answers a malformed handshake (400/405) itself and never calls back: settle on close.
    // The close listener goes once the handshake is done: left attached, it would keep the
    // upgrade request alive for the connection's whole life (~2 KB each).
    return new Promise((resolve) => {
      const refused = (): void => resolve(undefined);
      upgrade.socket.once('close', refused);
      wss.handleUpgrade(upgrade.req, upgrade.socket, upgrade.head, (ws) => {
        upgrade.socket.off('close', refused);
        resolve(ws);
      });
    });
  }

  close(): void {
    for (const wss of this.#wssByLimit.values()) wss.close();
    this.#rejectWss.close();
  }
}

function createWss(maxPayload: number, closeTimeout: number): WebSocketServer {
  // A variable, not a literal: @types/ws does not know closeTimeout (ws >= 8.19) yet.
  const options = {
    noServer: true,
    maxPayload,
    closeTimeout,
    // Chorus defines no subprotocol: never echo one back (a client may have put a token there).
    handleProtocols: () => false as const,
    // Compression costs ~300 KB per connection and breaks frame-once fan-out (see docs).
    perMessageDeflate: false,
    clientTracking: false,
  };
  return new WebSocketServer(options);
}
