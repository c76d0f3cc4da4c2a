/**
 * The admin API under /admin/api/ (docs/admin.md): live counts per app and channel, one
 * channel's subscribers, presence and recent history, a user's connections, disconnecting a
 * connection or a user with a chosen code, publishing a test event, and this node's activity as
 * a Server-Sent Events stream for the dashboard's debug console. Off (404) unless the config sets
 * `admin`; every request needs its credentials. Counts are cluster-wide where the engine keeps
 * them (channels, subscriptions, users), per node where it does not (connections, activity).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpErrors, isValidChannelName, type CloseCodeInfo } from '@chorus/protocol';
import type { App } from '../apps.js';
import type { AdminConfig } from '../config.js';
import type { ServerContext } from '../context.js';
import type { ControlMessage } from '../engine/types.js';
import { readBody } from '../http/body.js';
import { sendError, sendJson } from '../http/respond.js';
import { AppChangeError, createApp, rotateAppSecret, setAppEnabled } from './managed-apps.js';

export const ADMIN_API_PREFIX = '/admin/api/';
const MAX_BODY = 256 * 1024;
const HISTORY_SHOWN = 20;
const PREVIEW_BYTES = 200;

class AdminError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** True when the request carries the admin credentials (compared in constant time). */
export function isAdmin(admin: AdminConfig, req: IncomingMessage): boolean {
  const header = req.headers.authorization ?? '';
  let user = admin.user;
  let password: string;
  if (header.startsWith('Bearer ')) {
    password = header.slice('Bearer '.length);
  } else if (header.startsWith('Basic ')) {
    const decoded = Buffer.from(header.slice('Basic '.length), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return false;
    user = decoded.slice(0, colon);
    password = decoded.slice(colon + 1);
  } else {
    return false;
  }
  return sameText(user, admin.user) && sameText(password, admin.password);
}

function sameText(a: string, b: string): boolean {
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}

/** Answers a request whose path starts with /admin/ (the API, and the credentials the dashboard needs). */
export function refuseAdmin(res: ServerResponse): void {
  sendError(res, HttpErrors.ADMIN_UNAUTHORIZED, undefined, { 'www-authenticate': 'Basic realm="Chorus admin", charset="UTF-8"' });
}

export async function handleAdminApi(ctx: ServerContext, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  try {
    const body = await answer(ctx, req, res, url);
    if (body !== undefined) sendJson(res, 200, body, { 'cache-control': 'no-store' });
  } catch (error) {
    if (error instanceof AdminError) return sendJson(res, error.status, { error: error.message, code: error.status === 404 ? 'not_found' : 'bad_request' });
    throw error;
  }
}

/** The answer's body, or undefined when the handler answered itself (the activity stream). */
async function answer(ctx: ServerContext, req: IncomingMessage, res: ServerResponse, url: URL): Promise<unknown> {
  const method = req.method ?? 'GET';
  const parts = url.pathname.slice(ADMIN_API_PREFIX.length).split('/').map((p) => decodeURIComponent(p));
  const route = `${method} ${parts.map((p, i) => (i % 2 === 1 && parts[i - 1] !== undefined ? ':' : p)).join('/')}`;
  if (route === 'GET stats') return stats(ctx);
  if (route === 'GET apps') return { apps: await Promise.all(ctx.apps.all.map((app) => appSummary(ctx, app))) };
  if (route === 'POST apps') return managed(async () => createApp(ctx, await jsonBody(req)));
  const app = ctx.apps.byId(parts[1] ?? '');
  if (parts[0] !== 'apps' || !app) throw new AdminError(404, `No such admin endpoint or app: ${method} ${url.pathname}`);
  switch (route) {
    case 'GET apps/:':
      return appSummary(ctx, app);
    case 'GET apps/:/channels':
      return channels(ctx, app, url.searchParams.get('prefix') ?? '');
    case 'GET apps/:/channels/:':
      return channel(ctx, app, parts[3] ?? '');
    case 'GET apps/:/users/:':
      return user(ctx, app, parts[3] ?? '');
    case 'POST apps/:/connections/:/disconnect':
      return disconnect(ctx, { kind: 'disconnect-connection', appId: app.id, connectionId: parts[3] ?? '', ...(await closeOf(req)) });
    case 'POST apps/:/users/:/disconnect':
      return disconnect(ctx, { kind: 'terminate-user', appId: app.id, userId: parts[3] ?? '', ...(await closeOf(req)) });
    case 'POST apps/:/publish':
      return publish(ctx, app, await jsonBody(req));
    case 'POST apps/:/disable':
      return managed(() => setAppEnabled(ctx, app, false));
    case 'POST apps/:/enable':
      return managed(() => setAppEnabled(ctx, app, true));
    case 'POST apps/:/rotate-secret':
      return managed(async () => rotateAppSecret(ctx, app, (await jsonBody(req, true))['secret']));
    case 'GET apps/:/activity':
      streamActivity(ctx, app, req, res);
      return undefined;
    default:
      throw new AdminError(404, `No such admin endpoint: ${method} ${url.pathname}`);
  }
}

/** An app change's answer (the app with its secret: the caller needs it), or 400 saying why not. */
async function managed(change: () => Promise<unknown>): Promise<unknown> {
  try {
    return { app: await change() };
  } catch (error) {
    if (error instanceof AppChangeError) throw new AdminError(400, error.message);
    throw error;
  }
}

function stats(ctx: ServerContext): unknown {
  const memory = process.memoryUsage();
  return {
    node: {
      connections: ctx.connections.size,
      channels: ctx.hub.channelCount,
      publications: ctx.activity.publications,
      uptimeSeconds: Math.round((Date.now() - ctx.startedAt) / 1000),
      rssBytes: memory.rss,
      heapUsedBytes: memory.heapUsed,
    },
    webhooks: ctx.webhooks.stats,
    engine: ctx.config.engine.type,
  };
}

async function appSummary(ctx: ServerContext, app: App): Promise<unknown> {
  const channelCounts = await ctx.engine.counts.list(app.id, 'subscriptions', '').catch(() => undefined);
  let subscriptions = 0;
  for (const n of channelCounts?.values() ?? []) subscriptions += n;
  return {
    id: app.id,
    key: app.key,
    enabled: app.enabled,
    connectionsOnThisNode: ctx.connections.perApp().get(app.id) ?? 0,
    channels: channelCounts?.size ?? null,
    subscriptions: channelCounts ? subscriptions : null,
    webhooks: app.webhooks.length,
  };
}

async function channels(ctx: ServerContext, app: App, prefix: string): Promise<unknown> {
  const counts = await ctx.engine.counts.list(app.id, 'subscriptions', prefix);
  const list = [...counts].map(([name, subscriptions]) => ({ name, subscriptions })).sort((a, b) => b.subscriptions - a.subscriptions || a.name.localeCompare(b.name));
  return { channels: list };
}

async function channel(ctx: ServerContext, app: App, name: string): Promise<unknown> {
  if (!isValidChannelName(name)) throw new AdminError(400, `Invalid channel name ${JSON.stringify(name)}`);
  const [subscriptions, members, page] = await Promise.all([
    ctx.engine.counts.total(app.id, 'subscriptions', name),
    ctx.engine.presence.members(app.id, name),
    ctx.engine.broker.history(app.id, name, { limit: HISTORY_SHOWN }),
  ]);
  return {
    name,
    subscriptions,
    subscribersOnThisNode: ctx.hub.subscribersOf(app.id, name).map((s) => ({ connection: s.connection.id })),
    presence: members,
    history: {
      epoch: page.epoch,
      offset: page.offset,
      publications: page.publications.map((p) => ({ offset: p.offset, event: p.event, ts: p.ts, bytes: p.payload.length, preview: p.binary ? `(${p.payload.length} binary bytes)` : p.payload.subarray(0, PREVIEW_BYTES).toString('utf8') })),
    },
  };
}

async function user(ctx: ServerContext, app: App, userId: string): Promise<unknown> {
  const connections = await ctx.engine.counts.total(app.id, 'users', userId);
  return { user: userId, online: connections > 0, connections, connectionsOnThisNode: ctx.users.of(app.id, userId).map((c) => c.id) };
}

/** The close to use: `{code?, reason?}` in the body; 4000–4999 (or 1000/1001), default 4007 "Terminated by the app". */
async function closeOf(req: IncomingMessage): Promise<{ code?: number; reason?: string }> {
  const body = await jsonBody(req, true);
  const { code, reason } = body;
  if (code !== undefined && (typeof code !== 'number' || !Number.isInteger(code) || !(code === 1000 || code === 1001 || (code >= 4000 && code <= 4999)))) {
    throw new AdminError(400, 'code must be 1000, 1001 or 4000–4999');
  }
  if (reason !== undefined && (typeof reason !== 'string' || Buffer.byteLength(reason) > 123)) throw new AdminError(400, 'reason must be a string of at most 123 bytes');
  return { ...(code === undefined ? {} : { code }), ...(reason === undefined ? {} : { reason }) };
}

async function disconnect(ctx: ServerContext, order: ControlMessage): Promise<unknown> {
  // Broadcast: the connection or the user may be on any node; each closes its own.
  await ctx.engine.broadcast(order);
  return { ok: true };
}

async function publish(ctx: ServerContext, app: App, body: Record<string, unknown>): Promise<unknown> {
  const { channel, event, data } = body;
  if (typeof channel !== 'string' || !isValidChannelName(channel)) throw new AdminError(400, 'channel must be a valid channel name');
  if (event !== undefined && (typeof event !== 'string' || event === '' || event.length > 200)) throw new AdminError(400, 'event must be a string of 1 to 200 characters');
  const payload = Buffer.from(typeof data === 'string' ? data : JSON.stringify(data ?? null));
  if (payload.length > app.limits.maxMessageSize) throw new AdminError(400, `data is ${payload.length} bytes; this app allows ${app.limits.maxMessageSize} (limits.maxMessageSize)`);
  const outcome = await ctx.engine.broker.publish({ appId: app.id, channel, originId: undefined, event: event ?? undefined, payload, binary: false });
  return { offset: outcome.offset, epoch: outcome.epoch };
}

/** Server-Sent Events of the app's activity on this node, until the dashboard goes away. */
function streamActivity(ctx: ServerContext, app: App, req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive' });
  res.write(`retry: 2000\n\n`);
  const stop = ctx.activity.watch(app.id, (item) => {
    // A console that cannot keep up loses lines, never the server's memory.
    if (res.writableLength > MAX_BODY) return;
    res.write(`data: ${JSON.stringify(item)}\n\n`);
  });
  const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), 15_000).unref();
  const end = (): void => {
    clearInterval(keepAlive);
    stop();
  };
  req.on('close', end);
  res.on('close', end);
}

async function jsonBody(req: IncomingMessage, allowEmpty = false): Promise<Record<string, unknown>> {
  const raw = await readBody(req, MAX_BODY);
  if (raw === undefined) throw new AdminError(400, `Body over ${MAX_BODY} bytes`);
  if (raw.length === 0 && allowEmpty) return {};
  let value: unknown;
  try {
    value = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new AdminError(400, 'Body is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new AdminError(400, 'Body must be a JSON object');
  return value as Record<string, unknown>;
}

/** How a chosen close reaches a connection (ControlMessage codes are plain numbers). */
export function adminClose(code: number | undefined, reason: string | undefined, fallback: CloseCodeInfo): CloseCodeInfo {
  if (code === undefined) return fallback;
  return { code, reason: reason ?? 'Disconnected by the server\'s admin', reconnect: code < 4000 || code >= 4500, description: 'chosen in the admin API' };
}
