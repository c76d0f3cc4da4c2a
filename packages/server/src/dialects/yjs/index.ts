/**
 * Yjs rooms: `{yjs.path}/{room}?key={app key}[&token={JWT}]`, the URL y-websocket's
 * WebsocketProvider builds from `new WebsocketProvider(serverUrl, room, doc, { params })`. An
 * adapter on the admission pipeline (admission.ts); one connection is a YjsSession; the rooms
 * and their documents are YjsRooms. docs/collaboration.md.
 *
 * Access: the app key, and a channel token naming the room (`sub`) on `private-` rooms, or
 * whenever one is given. Its `access` claim is "read-write" (the default) or "read-only".
 */
import { CloseCodes, PRIVATE_CHANNEL_PREFIX, isValidChannelName } from '@chorus/protocol';
import { refusal, type Dialect } from '../../admission.js';
import type { ChorusConfig } from '../../config.js';
import type { ServerContext } from '../../context.js';
import { TokenExpiry } from '../../expiry.js';
import { YjsRooms, type YjsStats } from './rooms.js';
import { YjsSession, type YjsGrant } from './session.js';

const pathPatterns = new WeakMap<ChorusConfig, RegExp>();

function roomPath(config: ChorusConfig): RegExp {
  let pattern = pathPatterns.get(config);
  if (!pattern) {
    pattern = new RegExp(`^${config.yjs.path.replace(/[.]/g, '\\.')}/([^/]+)$`);
    pathPatterns.set(config, pattern);
  }
  return pattern;
}

/** One set of rooms per running server (the context is the server). */
const roomsByServer = new WeakMap<ServerContext, YjsRooms>();

/** The server's Yjs rooms, created on first use; server.ts closes them at shutdown. */
export function yjsRooms(ctx: ServerContext): YjsRooms {
  let rooms = roomsByServer.get(ctx);
  if (!rooms) {
    rooms = new YjsRooms(ctx.config, ctx.log, ctx.engine.counts);
    roomsByServer.set(ctx, rooms);
  }
  return rooms;
}

/** Closes the server's rooms if it ever had any (each document is handed to its store). */
export async function closeYjsRooms(ctx: ServerContext): Promise<void> {
  await roomsByServer.get(ctx)?.close();
}

/** This node's Yjs figures for /health: loaded rooms, their document bytes, updates applied. */
export function yjsStats(ctx: ServerContext): YjsStats {
  return roomsByServer.get(ctx)?.stats() ?? { rooms: 0, documentBytes: 0, updates: 0 };
}

const ACCESS_CLAIM = 'access';

export const yjsDialect: Dialect<{ segment: string }, YjsGrant & { expiresAt: number | undefined }> = {
  name: 'yjs',
  match(url, config) {
    const match = roomPath(config).exec(url.pathname);
    return match?.[1] ? { segment: match[1] } : undefined;
  },
  appKey: (_route, upgrade) => upgrade.url.searchParams.get('key'),
  unknownApp: refusal(CloseCodes.UNKNOWN_API_KEY),
  frameLimit: (_app, config) => config.yjs.maxMessageSize,
  async authorize(ctx, app, { segment }, upgrade) {
    let room: string;
    try {
      room = decodeURIComponent(segment);
    } catch {
      return { refusal: refusal(CloseCodes.INVALID_CHANNEL) };
    }
    if (!isValidChannelName(room)) return { refusal: refusal(CloseCodes.INVALID_CHANNEL) };
    const token = upgrade.url.searchParams.get('token') ?? undefined;
    if (!token && !room.startsWith(PRIVATE_CHANNEL_PREFIX)) return { grant: { room, readOnly: false, expiresAt: undefined } };
    const auth = await app.tokens.verifyChannel(room, token);
    const access = auth.ok ? (auth.payload[ACCESS_CLAIM] ?? 'read-write') : undefined;
    if (!auth.ok || (access !== 'read-write' && access !== 'read-only')) {
      ctx.log.debug({ app: app.id, room, reason: auth.ok ? `access claim ${JSON.stringify(access)}` : auth.reason }, 'yjs token refused');
      return { refusal: refusal(CloseCodes.AUTHENTICATION_FAILED) };
    }
    return { grant: { room, readOnly: access === 'read-only', expiresAt: (auth.payload.exp ?? 0) * 1000 } };
  },
  refuse(ws, refused) {
    // y-websocket shows no error frame; the close code and reason are what it (and its app) see.
    ws.close(refused.close.code, refused.close.reason);
  },
  open(ctx, app, connection, grant) {
    if (grant.expiresAt !== undefined) new TokenExpiry(connection, ctx.config.tokenGraceMs).arm(grant.expiresAt);
    new YjsSession(ctx, app, connection, grant, yjsRooms(ctx));
  },
};
