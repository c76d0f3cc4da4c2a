/**
 * Pusher's HTTP API under `[pathPrefix]/apps/{app_id}/`, signed exactly as the `pusher` server
 * SDKs sign (signatures.ts): trigger events, batches, channel and presence queries, ending a
 * user's connections. Triggers go through the core broker, so raw, v1 and Pusher subscribers
 * all receive them, with history, schemas and the Redis engine as for any publication.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CHANNEL_NAME_RULE } from '@chorus/protocol';
import type { App } from '../../apps.js';
import type { ServerContext } from '../../context.js';
import { EngineUnavailableError } from '../../engine/errors.js';
import { readBody } from '../../http/body.js';
import { sendJson } from '../../http/respond.js';
import { pusherEventOf } from './encoder.js';
import { channelTraits, isValidChannelName, isValidEventName } from './names.js';
import { isSocketId, verifyApiRequest } from './signatures.js';
import { corePayloadOfData } from './wire.js';

/** Pusher's limits on one trigger and one batch. */
const MAX_CHANNELS_PER_EVENT = 100;
const MAX_BATCH_SIZE = 10;
/** Room for the JSON around the data of a full batch of the largest events. */
const BODY_ALLOWANCE = 64 * 1024;

/** A refusal in Pusher's terms: the status the SDKs act on and a message for the developer. */
class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

interface EventInput {
  readonly name: string;
  readonly data: string;
  readonly channels: readonly string[];
  readonly socketId: string | undefined;
  readonly info: readonly string[];
}

/** `/apps/{id}/rest` when the path is the API's (after the prefix), else undefined. */
const API_PATH = /^\/apps\/([^/]+)(\/.*)$/;

export function isPusherApiPath(ctx: ServerContext, pathname: string): boolean {
  const prefix = ctx.config.pusher.pathPrefix;
  return pathname.startsWith(`${prefix}/apps/`) && API_PATH.test(pathname.slice(prefix.length));
}

export async function handlePusherApi(ctx: ServerContext, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  try {
    const body = await answer(ctx, req, url);
    sendJson(res, 200, body);
  } catch (error) {
    if (error instanceof ApiError) return sendJson(res, error.status, { error: error.message }, error.headers);
    if (error instanceof EngineUnavailableError) {
      return sendJson(res, 503, { error: 'The server cannot reach its engine (Redis): nothing was published. Retry shortly.' }, { 'retry-after': '2' });
    }
    throw error;
  }
}

async function answer(ctx: ServerContext, req: IncomingMessage, url: URL): Promise<unknown> {
  const method = req.method ?? 'GET';
  const [, appId = '', rest = ''] = API_PATH.exec(url.pathname.slice(ctx.config.pusher.pathPrefix.length)) ?? [];
  const app = ctx.apps.byId(decodeSegment(appId));
  if (!app) throw new ApiError(404, `Unknown app id ${appId}: the path's app id is the config's apps[].id (PUSHER_APP_ID)`);
  const maxBody = app.pusher.maxEventBytes * MAX_BATCH_SIZE * 2 + BODY_ALLOWANCE;
  const raw = method === 'POST' ? await readBody(req, maxBody) : Buffer.alloc(0);
  if (raw === undefined) throw new ApiError(413, `Request body over ${maxBody} bytes`);
  // SDKs with a path option sign the path as sent (the prefix included). The Node `pusher` SDK
  // has none: it reaches a prefix through `host: 'h:port/prefix'` and signs the path without it.
  // Both are signatures with the app's secret over this one resource. The path is the one sent:
  // url.pathname has `.` segments resolved and some characters escaped, which the client did not
  // sign (fuzzing found `/channels/.` refused); it is tried second.
  const now = Date.now();
  const prefix = ctx.config.pusher.pathPrefix;
  const paths = [...new Set([req.url?.split('?', 1)[0] ?? url.pathname, url.pathname])];
  if (prefix !== '') paths.push(...paths.filter((path) => path.startsWith(prefix)).map((path) => path.slice(prefix.length)));
  let verdict = verifyApiRequest(method, paths[0] ?? url.pathname, url.search, raw, app.credentials, now);
  for (const path of paths.slice(1)) {
    if (verdict.ok) break;
    const other = verifyApiRequest(method, path, url.search, raw, app.credentials, now);
    if (other.ok) verdict = other;
  }
  if (!verdict.ok) throw new ApiError(verdict.status, verdict.message);
  if (!app.enabled) throw new ApiError(403, 'App is disabled ("enabled": false in the server\'s config)');
  const params = verdict.params;

  const route = `${method} ${rest}`;
  if (route === 'POST /events') return triggerEvent(ctx, app, parseJson(raw));
  if (route === 'POST /batch_events') return triggerBatch(ctx, app, parseJson(raw));
  if (route === 'GET /channels') return listChannels(ctx, app, params);
  let match = /^GET \/channels\/([^/]+)$/.exec(route);
  if (match) return channelInfo(ctx, app, decodeSegment(match[1] ?? ''), params);
  match = /^GET \/channels\/([^/]+)\/users$/.exec(route);
  if (match) return channelUsers(ctx, app, decodeSegment(match[1] ?? ''));
  match = /^POST \/users\/([^/]+)\/terminate_connections$/.exec(route);
  if (match) return terminateUser(ctx, app, decodeSegment(match[1] ?? ''));
  throw new ApiError(404, `No such API endpoint: ${method} /apps/${appId}${rest}`);
}

/** A percent-decoded path segment; a malformed escape (`%zz`) is the client's error (fuzzing found a 500). */
function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new ApiError(400, `Malformed percent-encoding in the path: ${segment}`);
  }
}

function parseJson(raw: Buffer): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new ApiError(400, 'Body is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ApiError(400, 'Body must be a JSON object');
  return value as Record<string, unknown>;
}

// ---- events -------------------------------------------------------------------------------------

function parseEvent(app: App, fields: Record<string, unknown>, where: string): EventInput {
  const { name, data, channel, channels, socket_id: socketId, info } = fields;
  if (typeof name !== 'string' || !isValidEventName(name)) throw new ApiError(400, `${where}name must be a string of 1 to 200 characters`);
  if (typeof data !== 'string') throw new ApiError(400, `${where}data must be a string (the SDKs JSON-encode objects)`);
  if (Buffer.byteLength(data) > app.pusher.maxEventBytes) {
    throw new ApiError(413, `${where}data is ${Buffer.byteLength(data)} bytes; this app allows ${app.pusher.maxEventBytes} (pusher.maxEventBytes)`);
  }
  const list = channels ?? (channel === undefined ? undefined : [channel]);
  if (!Array.isArray(list) || list.length === 0) throw new ApiError(400, `${where}channels must be a non-empty array of channel names (or give channel)`);
  if (list.length > MAX_CHANNELS_PER_EVENT) throw new ApiError(400, `${where}at most ${MAX_CHANNELS_PER_EVENT} channels per event, got ${list.length}`);
  for (const c of list) {
    if (typeof c !== 'string' || !isValidChannelName(c)) throw new ApiError(400, `${where}invalid channel name ${JSON.stringify(c)}: ${CHANNEL_NAME_RULE}`);
  }
  if (socketId !== undefined && !isSocketId(socketId)) throw new ApiError(400, `${where}socket_id must look like 123.456`);
  if (info !== undefined && typeof info !== 'string') throw new ApiError(400, `${where}info must be a comma-separated string`);
  return { name, data, channels: list as string[], socketId, info: splitInfo(info) };
}

function splitInfo(info: unknown): string[] {
  return typeof info === 'string' && info !== '' ? info.split(',').map((s) => s.trim()) : [];
}

/** Publishes to every channel (all checked first, so a bad one publishes nothing). */
async function publishEvent(ctx: ServerContext, app: App, event: EventInput): Promise<void> {
  const payload = corePayloadOfData(event.data);
  for (const channel of event.channels) {
    const invalid = app.messageCheck(channel)?.({ event: event.name, payload, binary: false });
    if (invalid !== undefined) {
      ctx.stats.httpPublications(app.id, 'pusher_http').schemaRefused++;
      throw new ApiError(400, `Invalid message for ${channel}: ${invalid}`);
    }
  }
  ctx.stats.httpPublications(app.id, 'pusher_http').published += event.channels.length;
  await Promise.all(
    event.channels.map((channel) =>
      ctx.engine.broker.publish({ appId: app.id, channel, originId: event.socketId, excludeOrigin: true, event: event.name, payload, binary: false }),
    ),
  );
}

async function triggerEvent(ctx: ServerContext, app: App, body: Record<string, unknown>): Promise<unknown> {
  const event = parseEvent(app, body, '');
  await publishEvent(ctx, app, event);
  if (event.info.length === 0) return {};
  const channels = byChannel();
  for (const channel of event.channels) channels[channel] = await attributes(ctx, app, channel, event.info);
  return { channels };
}

async function triggerBatch(ctx: ServerContext, app: App, body: Record<string, unknown>): Promise<unknown> {
  const { batch } = body;
  if (!Array.isArray(batch)) throw new ApiError(400, 'batch must be an array of events');
  if (batch.length > MAX_BATCH_SIZE) throw new ApiError(400, `at most ${MAX_BATCH_SIZE} events per batch, got ${batch.length}`);
  const events = batch.map((item, i) => {
    if (typeof item !== 'object' || item === null) throw new ApiError(400, `batch[${i}] must be an object`);
    const event = parseEvent(app, item as Record<string, unknown>, `batch[${i}].`);
    if (event.channels.length !== 1) throw new ApiError(400, `batch[${i}]: a batch event names exactly one channel`);
    return event;
  });
  for (const event of events) await publishEvent(ctx, app, event);
  if (events.every((e) => e.info.length === 0)) return {};
  return { batch: await Promise.all(events.map((e) => attributes(ctx, app, e.channels[0] ?? '', e.info))) };
}

// ---- queries ------------------------------------------------------------------------------------

/** An object keyed by channel name without a prototype: `__proto__` is a valid channel name. */
function byChannel(): Record<string, unknown> {
  return Object.create(null) as Record<string, unknown>;
}

/** The `info` attributes asked for one channel. */
async function attributes(ctx: ServerContext, app: App, channel: string, info: readonly string[]): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  if (info.includes('subscription_count')) out['subscription_count'] = await subscriptionCount(ctx, app, channel);
  if (info.includes('user_count')) {
    if (channelTraits(channel).auth !== 'presence') throw new ApiError(400, 'info=user_count is only for presence- channels');
    out['user_count'] = await userCount(ctx, app, channel);
  }
  return out;
}

/** Every dialect's subscribers of the channel, on every node. */
function subscriptionCount(ctx: ServerContext, app: App, channel: string): Promise<number> {
  return ctx.engine.counts.total(app.id, 'subscriptions', channel);
}

async function userCount(ctx: ServerContext, app: App, channel: string): Promise<number> {
  const members = await ctx.engine.presence.members(app.id, channel);
  return new Set(members.map((m) => m.user)).size;
}

async function listChannels(ctx: ServerContext, app: App, params: ReadonlyMap<string, string>): Promise<unknown> {
  const prefix = params.get('filter_by_prefix') ?? '';
  const info = splitInfo(params.get('info'));
  if (info.includes('user_count') && !prefix.startsWith('presence-')) {
    throw new ApiError(400, 'info=user_count needs filter_by_prefix=presence-');
  }
  const channels = byChannel();
  for (const channel of (await ctx.engine.counts.list(app.id, 'subscriptions', prefix)).keys()) {
    if (channel.startsWith('#')) continue;
    channels[channel] = info.includes('user_count') ? { user_count: await userCount(ctx, app, channel) } : {};
  }
  return { channels };
}

async function channelInfo(ctx: ServerContext, app: App, channel: string, params: ReadonlyMap<string, string>): Promise<unknown> {
  if (!isValidChannelName(channel)) throw new ApiError(400, `Invalid channel name ${JSON.stringify(channel)}`);
  const info = splitInfo(params.get('info'));
  const count = await subscriptionCount(ctx, app, channel);
  // subscription_count is answered always (as Pusher does for apps with the feature on).
  const out: Record<string, unknown> = { occupied: count > 0, subscription_count: count };
  Object.assign(out, await attributes(ctx, app, channel, info.filter((i) => i !== 'subscription_count')));
  if (info.includes('cache')) {
    if (!channelTraits(channel).cache) throw new ApiError(400, 'info=cache is only for cache- channels');
    const page = await ctx.engine.broker.history(app.id, channel, { limit: 1 });
    const last = page.publications.at(-1);
    const event = last ? pusherEventOf(last) : undefined;
    if (last && event) {
      out['cache'] = { data: event.data, ttl: Math.max(0, Math.round((last.ts + app.historyPolicy(channel).ttlMs - Date.now()) / 1000)) };
    }
  }
  return out;
}

async function channelUsers(ctx: ServerContext, app: App, channel: string): Promise<unknown> {
  if (channelTraits(channel).auth !== 'presence') throw new ApiError(400, 'Users can only be listed for presence- channels');
  const members = await ctx.engine.presence.members(app.id, channel);
  return { users: [...new Set(members.map((m) => m.user))].map((id) => ({ id })) };
}

/** Every node ends the user's connections it holds (engine.broadcast → onControl). */
async function terminateUser(ctx: ServerContext, app: App, userId: string): Promise<unknown> {
  await ctx.engine.broadcast({ kind: 'terminate-user', appId: app.id, userId });
  return {};
}
