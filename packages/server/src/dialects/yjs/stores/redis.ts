/**
 * The Redis engine's document store: any node serves any room, and a node's death loses nothing
 * it acknowledged.
 *
 * Per room (keys share a hash tag, so they sit in one Redis Cluster slot):
 *   {chorus:yjs:app:room}:updates   a Stream of updates (field `u`), one entry per client update
 *   {chorus:yjs:app:room}:snapshot  a hash: `state` (a compacted document) and `id`, the last
 *                                   stream entry it covers
 *   {chorus:yjs:app:room}           the pub/sub channel every node with the room loaded hears
 *
 * An update is XADDed and PUBLISHed by one script, so pub/sub order is stream order and a node
 * that subscribed before reading the stream misses nothing. A node compacts with a state that
 * covers every entry up to the last one it applied: the script stores it only if that is newer
 * than the stored snapshot, then trims the stream up to it. When the subscriber reconnects
 * (messages may have been missed), each loaded room re-reads the snapshot and the entries after
 * the last one it applied; Yjs updates are idempotent, so reading one twice is harmless.
 *
 * These are the store's own two connections (commands, subscriber), beside the channel engine's.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { DocumentStore, RoomFeed, RoomKey } from './types.js';
import type { PubSubClient, RedisClient, RedisLayout } from '../../../engine/redis/layout.js';
import { withPublishCommand } from '../../../engine/redis/scripts.js';

const KIND_UPDATE = 0x75; // 'u'
const KIND_AWARENESS = 0x61; // 'a'

/** XADD + PUBLISH in one step. The message: 'u', id length, id, origin length, origin, update. */
const APPEND = `
local id = redis.call('XADD', KEYS[1], '*', 'u', ARGV[1])
redis.call('PUBLISH', KEYS[2], 'u' .. string.char(#id) .. id .. string.char(#ARGV[2]) .. ARGV[2] .. ARGV[1])
return id`;

/** Stores the snapshot if it covers more than the stored one, then trims what it covers. */
const COMPACT = `
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local ms, seq = parse(ARGV[2])
local stored = redis.call('HGET', KEYS[1], 'id')
if stored then
  local sms, sseq = parse(stored)
  if sms > ms or (sms == ms and sseq >= seq) then return 0 end
end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'id', ARGV[2])
redis.call('XTRIM', KEYS[2], 'MINID', ms .. '-' .. (seq + 1))
return 1`;

interface RoomKeys {
  readonly updates: string;
  readonly snapshot: string;
  readonly channel: string;
}

/** One hash tag for a room's keys and its pub/sub channel: one slot on Redis Cluster (scripts publish in their slot). */
function keysOf({ appId, room }: RoomKey): RoomKeys {
  const tag = `{chorus:yjs:${appId}:${room}}`;
  return { updates: `${tag}:updates`, snapshot: `${tag}:snapshot`, channel: tag };
}

interface OpenRoom {
  readonly key: RoomKey;
  readonly feed: RoomFeed;
  /** The last stream entry applied ('0-0': none). */
  lastId: string;
}

type ChorusYjsRedis = RedisClient & {
  chorusYjsAppend(updates: string, channel: string, update: Buffer, originId: string): Promise<string>;
  chorusYjsCompact(snapshot: string, updates: string, state: Buffer, id: string): Promise<number>;
};

export class RedisDocumentStore implements DocumentStore {
  readonly #cmd: ChorusYjsRedis;
  readonly #sub: PubSubClient;
  readonly #layout: RedisLayout;
  readonly #log: Logger;
  /** Open rooms by pub/sub channel. */
  readonly #rooms = new Map<string, OpenRoom>();
  #subscriberReadyOnce = false;

  constructor(layout: RedisLayout, log: Logger) {
    this.#log = log;
    this.#layout = layout;
    this.#cmd = layout.connect({ maxRetriesPerRequest: 2, lazyConnect: false }) as ChorusYjsRedis;
    this.#cmd.defineCommand('chorusYjsAppend', { numberOfKeys: 2, lua: withPublishCommand(APPEND, layout.publishCommand) });
    this.#cmd.defineCommand('chorusYjsCompact', { numberOfKeys: 2, lua: COMPACT });
    this.#sub = layout.connectPubSub({ maxRetriesPerRequest: 2, lazyConnect: false }, this.#cmd, 2_000, `yjs-${randomBytes(4).toString('hex')}`);
    for (const client of [this.#cmd as NodeJS.EventEmitter, this.#sub]) client.on('error', (error: Error) => log.warn({ err: error }, 'yjs: redis connection error'));
    this.#sub.on(layout.messageEvent, (channel: Buffer, message: Buffer) => this.#deliver(channel.toString(), message));
    this.#sub.on('ready', () => {
      // ioredis resubscribes by itself; what was published while it was away is read back.
      if (this.#subscriberReadyOnce) for (const room of this.#rooms.values()) void this.#catchUp(room);
      this.#subscriberReadyOnce = true;
    });
    // Redis Cluster: the room's slot moved and its subscription with it (engine/redis/sharded.ts).
    this.#sub.on('resynced', (channel: string) => {
      const room = this.#rooms.get(channel);
      if (room) void this.#catchUp(room);
    });
  }

  async open(key: RoomKey, feed: RoomFeed): Promise<Uint8Array[]> {
    const keys = keysOf(key);
    const room: OpenRoom = { key, feed, lastId: '0-0' };
    this.#rooms.set(keys.channel, room);
    try {
      await this.#layout.subscribe(this.#sub, [keys.channel]);
      return await this.#read(room, '-');
    } catch (error) {
      this.#rooms.delete(keys.channel);
      await this.#layout.unsubscribe(this.#sub, keys.channel).catch(() => undefined);
      throw error;
    }
  }

  async append(key: RoomKey, update: Uint8Array, originId: string): Promise<void> {
    const keys = keysOf(key);
    await this.#cmd.chorusYjsAppend(keys.updates, keys.channel, Buffer.from(update.buffer, update.byteOffset, update.byteLength), originId);
  }

  publishAwareness(key: RoomKey, update: Uint8Array): void {
    const message = Buffer.concat([Buffer.of(KIND_AWARENESS), update]);
    this.#layout.publish(this.#cmd, keysOf(key).channel, message).catch((error: unknown) => this.#log.warn({ err: error, app: key.appId, room: key.room }, 'yjs: awareness not published'));
  }

  async compact(key: RoomKey, state: Uint8Array): Promise<void> {
    const keys = keysOf(key);
    const room = this.#rooms.get(keys.channel);
    if (!room || room.lastId === '0-0') return;
    await this.#cmd.chorusYjsCompact(keys.snapshot, keys.updates, Buffer.from(state.buffer, state.byteOffset, state.byteLength), room.lastId);
  }

  async release(key: RoomKey, state: Uint8Array): Promise<void> {
    const keys = keysOf(key);
    try {
      await this.compact(key, state);
    } finally {
      this.#rooms.delete(keys.channel);
      await this.#layout.unsubscribe(this.#sub, keys.channel).catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    this.#rooms.clear();
    this.#sub.disconnect();
    // A cluster's QUIT would first connect to every node it has not talked to yet.
    if (this.#layout.cluster) this.#cmd.disconnect();
    else await this.#cmd.quit().catch(() => this.#cmd.disconnect());
  }

  /** The snapshot and the stream entries after `after` ('-': all), read in one transaction. */
  async #read(room: OpenRoom, after: string): Promise<Uint8Array[]> {
    const keys = keysOf(room.key);
    const replies = await this.#cmd
      .multi()
      .hgetallBuffer(keys.snapshot)
      .xrangeBuffer(keys.updates, after === '-' ? '-' : `(${after}`, '+')
      .exec();
    const [snapshotReply, entriesReply] = replies ?? [];
    if (!snapshotReply || !entriesReply || snapshotReply[0] || entriesReply[0]) throw snapshotReply?.[0] ?? entriesReply?.[0] ?? new Error('yjs: transaction aborted');
    const snapshot = snapshotReply[1] as Record<string, Buffer>;
    const entries = entriesReply[1] as Array<[Buffer, Buffer[]]>;
    const updates: Uint8Array[] = [];
    if (snapshot['state'] && snapshot['id']) {
      updates.push(snapshot['state']);
      this.#advance(room, snapshot['id'].toString());
    }
    for (const [id, fields] of entries) {
      const update = fieldOf(fields, 'u');
      if (update) updates.push(update);
      this.#advance(room, id.toString());
    }
    return updates;
  }

  async #catchUp(room: OpenRoom): Promise<void> {
    try {
      const updates = await this.#read(room, room.lastId === '0-0' ? '-' : room.lastId);
      for (const update of updates) room.feed.storedUpdate(update, undefined);
    } catch (error) {
      this.#log.warn({ err: error, app: room.key.appId, room: room.key.room }, 'yjs: catching up after a pub/sub reconnect failed');
    }
  }

  #deliver(channel: string, message: Buffer): void {
    const room = this.#rooms.get(channel);
    if (!room || message.length === 0) return;
    if (message[0] === KIND_AWARENESS) return room.feed.remoteAwareness(message.subarray(1));
    if (message[0] !== KIND_UPDATE) return;
    const idLength = message[1] ?? 0;
    const id = message.toString('latin1', 2, 2 + idLength);
    const originLength = message[2 + idLength] ?? 0;
    const origin = message.toString('utf8', 3 + idLength, 3 + idLength + originLength);
    this.#advance(room, id);
    room.feed.storedUpdate(message.subarray(3 + idLength + originLength), origin);
  }

  #advance(room: OpenRoom, id: string): void {
    if (compareIds(id, room.lastId) > 0) room.lastId = id;
  }
}

function fieldOf(fields: Buffer[], name: string): Buffer | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i]?.toString() === name) return fields[i + 1];
  return undefined;
}

/** Stream ids `ms-seq`, compared as numbers. */
function compareIds(a: string, b: string): number {
  const [ams = 0, aseq = 0] = a.split('-').map(Number);
  const [bms = 0, bseq = 0] = b.split('-').map(Number);
  return ams === bms ? aseq - bseq : ams - bms;
}
