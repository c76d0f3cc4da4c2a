/**
 * The admission pipeline every WebSocket upgrade goes through, whatever its dialect:
 *
 *   route → app → origin → credentials → connection limits → accept → session
 *
 * A dialect is an adapter (see `Dialect`) that supplies only what differs: where the app key and
 * the credentials are in the request, what it checks before accepting, how it tells a client it
 * is refused, and the session that runs once the socket is open. The limits come right before
 * the accept, after any asynchronous credential check, so that the check and the registration
 * of the connection happen in one turn and concurrent handshakes cannot overshoot a limit.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import { HttpErrors, type CloseCodeInfo } from '@chorus/protocol';
import type { App } from './apps.js';
import type { ChorusConfig } from './config.js';
import { Connection } from './connection.js';
import type { ServerContext } from './context.js';
import type { ControlMessage, CountChange } from './engine/types.js';
import { refuseHttp } from './http/refuse.js';

export interface PendingUpgrade {
  readonly req: IncomingMessage;
  readonly socket: Duplex;
  readonly head: Buffer;
  readonly url: URL;
  /** The client's address, for per-IP limits. */
  readonly ip: string;
}

/** Why a connection is refused after the upgrade: a close code and the text the dialect shows. */
export interface Refusal {
  readonly close: CloseCodeInfo;
  /** For the dialect's error frame; the close frame carries `close.reason`. */
  readonly message: string;
}

export function refusal(close: CloseCodeInfo, message: string = close.reason): Refusal {
  return { close, message };
}

/** What a dialect's credential check decided. */
export type Verdict<Grant> = { readonly grant: Grant } | { readonly refusal: Refusal };

/**
 * One wire dialect. `Route` is what the path told (the raw dialect's channel, the Pusher key);
 * `Grant` is what the credential check established (a channel, a user) for the session.
 */
export interface Dialect<Route = unknown, Grant = unknown> {
  readonly name: string;
  /** The route when the request's path is this dialect's, else undefined. */
  match(url: URL, config: ChorusConfig): Route | undefined;
  appKey(route: Route, upgrade: PendingUpgrade): string | null | undefined;
  readonly unknownApp: Refusal;
  /** How a disabled app is refused (default: as an unknown key). */
  readonly appDisabled?: Refusal;
  /** How an app over its connection limits refuses, given the reason; undefined → HTTP 429. */
  overLimit?(reason: string): Refusal | undefined;
  /** Largest inbound frame for this app's connections. */
  frameLimit(app: App, config: ChorusConfig): number;
  /** Checks what can be checked before accepting (channel, parameters, tokens). */
  authorize(ctx: ServerContext, app: App, route: Route, upgrade: PendingUpgrade): Verdict<Grant> | Promise<Verdict<Grant>>;
  /** Tells an accepted socket why it is refused (an error frame in the dialect's form), then closes it. */
  refuse(ws: WebSocket, refusal: Refusal): void;
  /** The connection's id, unique across nodes (default: the server's). Pusher clients see theirs as socket_id. */
  newConnectionId?(): string;
  /** Runs the session of an admitted connection. */
  open(ctx: ServerContext, app: App, connection: Connection, grant: Grant, upgrade: PendingUpgrade): void;
  /** A cluster-wide count changed, reported on this node only (engine.counts): news to broadcast. */
  onCountChange?(ctx: ServerContext, change: CountChange): void;
  /** A control message every node receives (engine.broadcast). */
  onControl?(ctx: ServerContext, message: ControlMessage): void;
}

/** What the pipeline needs from the transport (UpgradeHandler): completing a handshake. */
export interface Acceptor {
  /** Completes the handshake; undefined when ws refused it. `app` undefined: accept only to refuse. */
  accept(upgrade: PendingUpgrade, app: App | undefined, frameLimit?: number): Promise<WebSocket | undefined>;
}

/** The dialect whose path this is, with its route. */
export function routeUpgrade(dialects: readonly Dialect[], url: URL, config: ChorusConfig): { dialect: Dialect; route: unknown } | undefined {
  for (const dialect of dialects) {
    const route = dialect.match(url, config);
    if (route !== undefined) return { dialect, route };
  }
  return undefined;
}

/**
 * One log line (info) and one count (/metrics) per refused upgrade: the code (a close code or an
 * HTTP status) and why. Never the URL or headers: a query string may carry a token.
 */
export function noteRefusal(ctx: ServerContext, dialect: string, code: number, reason: string, details: { app?: string | undefined; ip?: string; [detail: string]: unknown } = {}): void {
  ctx.stats.refused(dialect, code);
  ctx.log.info({ dialect, code, reason, ...details }, 'connection refused');
  const { app, ip } = details;
  if (app !== undefined && ctx.activity.watched(app)) ctx.activity.emit(app, { type: 'refused', dialect, code, reason, ip: ip ?? '' });
}

export async function admit<Route, Grant>(ctx: ServerContext, acceptor: Acceptor, dialect: Dialect<Route, Grant>, route: Route, upgrade: PendingUpgrade): Promise<void> {
  const app = ctx.apps.byKey(dialect.appKey(route, upgrade));
  const refuseAfterAccept = async (refused: Refusal, appId?: string): Promise<void> => {
    noteRefusal(ctx, dialect.name, refused.close.code, refused.message, { app: appId, ip: upgrade.ip });
    const ws = await acceptor.accept(upgrade, undefined);
    if (!ws) return;
    ws.on('error', () => undefined);
    dialect.refuse(ws, refused);
  };

  if (!app) return refuseAfterAccept(dialect.unknownApp);
  if (!app.enabled) return refuseAfterAccept(dialect.appDisabled ?? dialect.unknownApp, app.id);
  if (!app.allowsOrigin(upgrade.req.headers.origin)) {
    noteRefusal(ctx, dialect.name, HttpErrors.ORIGIN_NOT_ALLOWED.status, 'origin not allowed (allowedOrigins)', { app: app.id, ip: upgrade.ip, origin: upgrade.req.headers.origin });
    return refuseHttp(upgrade.socket, HttpErrors.ORIGIN_NOT_ALLOWED);
  }
  const verdict = await dialect.authorize(ctx, app, route, upgrade);
  if ('refusal' in verdict) return refuseAfterAccept(verdict.refusal, app.id);
  if (upgrade.socket.destroyed) return;

  const limited = ctx.connections.refusal(app, upgrade.ip);
  if (limited !== undefined) {
    const refused = dialect.overLimit?.(limited);
    if (refused) return refuseAfterAccept(refused, app.id);
    noteRefusal(ctx, dialect.name, HttpErrors.TOO_MANY_CONNECTIONS.status, `too many connections: ${limited}`, { app: app.id, ip: upgrade.ip });
    return refuseHttp(upgrade.socket, HttpErrors.TOO_MANY_CONNECTIONS, `Too many connections: ${limited}.`);
  }

  const maxMessageBytes = dialect.frameLimit(app, ctx.config);
  const ws = await acceptor.accept(upgrade, app, maxMessageBytes);
  if (!ws) return;
  const id = dialect.newConnectionId?.() ?? ctx.newConnectionId();
  const limits = { maxPendingBytes: app.limits.maxPendingBytes, maxMessageBytes, warn: (message: string) => ctx.log.warn(message) };
  const connection = new Connection(id, ws, upgrade.socket, ctx.scheduler, limits, ctx.stats.traffic(app.id, dialect.name), upgrade.ip);
  ctx.connections.add(connection, app);
  if (ctx.activity.watched(app.id)) ctx.activity.emit(app.id, { type: 'connected', connection: id, dialect: dialect.name, ip: upgrade.ip });
  dialect.open(ctx, app, connection, verdict.grant, upgrade);
}
