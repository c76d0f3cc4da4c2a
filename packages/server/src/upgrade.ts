/**
 * WebSocket upgrades: route by path, check the Origin against the app before accepting, and
 * refuse with a plain HTTP status when the handshake itself is wrong. Dialects decide everything
 * they can (keys, tokens) before the upgrade completes, so no frame a client sends right after
 * `open` can arrive before its connection is fully set up.
 */
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import proxyAddr from 'proxy-addr';
import { WebSocketServer, type WebSocket } from 'ws';
import { HttpErrors, RAW_PATH, V1_PATH, type HttpErrorInfo } from '@chorus/protocol';
import type { App } from './apps.js';
import type { ServerContext } from './context.js';
import { handleRawUpgrade } from './dialects/raw.js';
import { handleV1Upgrade } from './dialects/v1/index.js';

/** Frames a rejected-after-upgrade socket may send before we close it: tiny, nothing is read. */
const REJECTED_SOCKET_MAX_PAYLOAD = 1024;

export class UpgradeHandler {
  readonly #ctx: ServerContext;
  /** One ws server per frame size limit, so each app's limit is enforced by ws itself (close 1009). */
  readonly #wssByLimit = new Map<number, WebSocketServer>();
  /** For sockets accepted only to be told why they are refused (unknown key…). */
  readonly #rejectWss: WebSocketServer;
  /** Which peers may name the client in X-Forwarded-For (none by default: it is just a header). */
  readonly #isTrustedProxy: (address: string, hop: number) => boolean;

  constructor(ctx: ServerContext) {
    this.#ctx = ctx;
    this.#isTrustedProxy = proxyAddr.compile(ctx.config.trustedProxies);
    this.#rejectWss = createWss(REJECTED_SOCKET_MAX_PAYLOAD, ctx.config.closeTimeoutMs);
  }

  /**
   * Checks the per-app and per-IP connection limits; on refusal answers HTTP 429 and returns
   * false. Call right before `accept` so concurrent handshakes cannot overshoot.
   */
  admit(upgrade: PendingUpgrade, app: App): boolean {
    const refusal = this.#ctx.connections.refusal(app, upgrade.ip);
    if (refusal === undefined) return true;
    this.#ctx.log.info({ app: app.id, ip: upgrade.ip, refusal }, 'connection refused');
    refuseHttp(upgrade.socket, HttpErrors.TOO_MANY_CONNECTIONS, `Too many connections: ${refusal}.`);
    return false;
  }

  /**
   * One listener shared by every socket. An arrow function created in `handle` would share
   * `handle`'s closure context (socket, the cleared deadline timer…) and, staying on the socket,
   * keep all of it alive for the connection's whole life.
   */
  readonly #logSocketError = (error: Error): void => this.#ctx.log.debug({ err: error }, 'socket error');

  readonly handle = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on('error', this.#logSocketError);
    if (this.#ctx.shuttingDown) return refuseHttp(socket, HttpErrors.SHUTTING_DOWN);
    const url = new URL(req.url ?? '/', 'http://localhost');
    const upgrade: PendingUpgrade = { req, socket, head, url, ip: this.#clientAddress(req) };
    const raw = RAW_PATH.exec(url.pathname);
    let handled: Promise<void>;
    if (url.pathname === V1_PATH) handled = handleV1Upgrade(this.#ctx, this, upgrade);
    else if (raw) handled = handleRawUpgrade(this.#ctx, this, upgrade, raw[1] ?? '');
    else return refuseHttp(socket, HttpErrors.NOT_FOUND);
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

export interface PendingUpgrade {
  readonly req: IncomingMessage;
  readonly socket: Duplex;
  readonly head: Buffer;
  readonly url: URL;
  /** The client's address, for per-IP limits. */
  readonly ip: string;
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

/** Answers an upgrade request with a plain HTTP error and closes the socket. */
export function refuseHttp(socket: Duplex, error: HttpErrorInfo, message: string = error.message): void {
  if (!socket.writable) return void socket.destroy();
  const body = JSON.stringify({ error: message, code: error.code });
  socket.end(
    `HTTP/1.1 ${error.status} ${STATUS_CODES[error.status] ?? 'Error'}\r\n` +
      'Connection: close\r\nContent-Type: application/json\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}
