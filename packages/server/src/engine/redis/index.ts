/**
 * The Redis engine: many Chorus nodes behave as one server.
 *
 * - Publish: one Lua script assigns the offset, appends to the channel's stream (exact MAXLEN,
 *   TTL) and PUBLISHes on the channel's pub/sub channel (scripts.ts).
 * - Fan-out: a node SUBSCRIBEs to a channel while it has local subscribers, so a publication
 *   crosses Redis once per interested node, then the Hub frames it once for all local sockets.
 * - Loss detection: pub/sub is at-most-once. A node tracks the last offset per channel; an offset
 *   gap, a new epoch or a pub/sub reconnect means it may have missed publications, and its
 *   recoverable (v1) subscribers are told to reconnect and resume from history (onGap). A probe
 *   published to itself every probeIntervalMs catches a pub/sub connection that died silently,
 *   and a command connection that went silent (a partition keeps TCP open: its PUBLISH goes
 *   unanswered); either is reconnected, which marks the engine down (engine-outage.ts in the
 *   server then closes clients once that lasts).
 * - Presence: expiring members per channel, a crashed node's swept and announced: presence.ts.
 * - Counts (subscriptions per channel, connections per signed-in user) summed over the nodes,
 *   with a crashed node's share swept: counts.ts.
 * - One Redis, Sentinel or Redis Cluster: the same engine; what differs (connections, pub/sub
 *   flavour and names) is in layout.ts, following moved slots in sharded.ts.
 * - Redis down: commands fail fast (no offline queue) or after commandTimeoutMs (no reply), as
 *   EngineUnavailableError; ioredis reconnects with backoff, the node keeps running and logs the
 *   outage once, and the return.
 */
import { randomBytes } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import type { RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import { EngineUnavailableError, isUnavailableError, rethrowUnavailable } from '../errors.js';
import { EngineState } from '../state.js';
import type {
  AppStore,
  Broker,
  ClusterStats,
  ControlMessage,
  Engine,
  EngineHandlers,
  HistoryPage,
  HistoryPolicyResolver,
  HistoryQuery,
  LocalStats,
  MessageInput,
  MessagePublication,
  PresencePublication,
  PresenceStore,
  PublishOutcome,
  StoredApp,
} from '../types.js';
import { STREAM_IDLE_TTL_MS } from '../memory-history.js';
import { decodePublication, encodePresence, messageHeaderFields } from './codec.js';
import { COUNT_SCRIPTS, RedisCounts, type CountCommands } from './counts.js';
import { clusterLayout, singleLayout, type ClusterTarget, type PubSubClient, type RedisClient, type RedisLayout } from './layout.js';
import { RedisPresence, type PresenceCommands } from './presence.js';
import { HISTORY, PRESENCE_INDEX_DUE, PRESENCE_INDEX_SETTLE, PRESENCE_JOIN, PRESENCE_LEAVE, PRESENCE_MEMBERS, PRESENCE_REFRESH, PRESENCE_SWEEP, PUBLISH, withPublishCommand } from './scripts.js';
import type { RedisTarget } from './target.js';

/** One Redis (`url`), Sentinel (`sentinels`, `name`) or Redis Cluster (`nodes`). */
export interface RedisEngineOptions extends RedisTarget, Partial<ClusterTarget> {
  readonly nodeId: string;
  readonly log: Logger;
  readonly handlers: EngineHandlers;
  readonly policy: HistoryPolicyResolver;
  readonly localStats: LocalStats;
  /** How often a node checks its pub/sub connection with a probe to itself (default 2 s). */
  readonly probeIntervalMs?: number | undefined;
  /** A command without a reply within this long fails as EngineUnavailableError (default 5 s). */
  readonly commandTimeoutMs?: number | undefined;
  /** How long a member outlives its node's last refresh (default 30 s). */
  readonly presenceTtlMs?: number | undefined;
  /** How long a node's share of the counts outlives its last refresh (default 15 s; see counts.ts). */
  readonly nodeTtlMs?: number | undefined;
  /** Where the engine reports reachability, reconnects and command round trips (/ready, /metrics). */
  readonly state?: EngineState | undefined;
}

/** Methods defineCommand adds (ioredis does not type them). */
interface ChorusCommands {
  chorusPublish(...args: Array<string | Buffer | number>): Promise<[number, string, number]>;
  chorusHistoryBuffer(...args: Array<string | number>): Promise<[Buffer, Buffer, Array<[Buffer, Buffer[]]>, Buffer, Buffer]>;
}

type CommandClient = RedisClient & ChorusCommands & CountCommands & PresenceCommands;

const META_TTL_SECONDS = Math.ceil(STREAM_IDLE_TTL_MS / 1000);
const NODES_KEY = 'chorus:nodes';
/** Apps added or changed through the admin API, by id (engine.apps). */
const APPS_KEY = 'chorus:apps';
/** Every node subscribes to it: control messages (engine.broadcast) reach all of them. */
const CONTROL_CHANNEL = 'chorus:control';
const NODE_REPORT_MS = 5_000;
/** One publish in this many has its round trip timed for /metrics. */
const PUBLISH_TIMING_EVERY = 16;

/**
 * A channel's keys share the hash tag `{app:channel}`: one slot on Redis Cluster, so every script
 * of a channel runs on one shard. App ids and channel names hold no `:` or `}`, so the tag parses
 * back (the presence sweep reads it from its index).
 */
function keysOf(layout: RedisLayout, appId: string, channel: string): { tag: string; meta: string; stream: string; presence: string; members: string; pubsub: string; msgIdPrefix: string } {
  const tag = `{${appId}:${channel}}`;
  return {
    tag,
    meta: `chorus:${tag}:meta`,
    stream: `chorus:${tag}:stream`,
    presence: `chorus:${tag}:presence`,
    members: `chorus:${tag}:members`,
    msgIdPrefix: `chorus:${tag}:msg:`,
    pubsub: layout.pubsubChannel(appId, channel),
  };
}

interface Attachment {
  readonly appId: string;
  readonly channel: string;
  /** Resolves once SUBSCRIBE was confirmed (again after every reconnect). */
  subscribed: Promise<void>;
  epoch: string | undefined;
  lastOffset: number;
}

class RedisEngine implements Engine, Broker {
  readonly broker = this;
  readonly presence: PresenceStore;
  readonly counts: RedisCounts;
  readonly apps: AppStore = {
    load: async () => Object.values(await (await this.#commands()).hgetall(APPS_KEY)).map((value) => JSON.parse(value) as StoredApp),
    save: async (app) => void (await (await this.#commands()).hset(APPS_KEY, app.id, JSON.stringify(app))),
  };
  readonly #options: RedisEngineOptions;
  readonly #log: Logger;
  readonly #layout: RedisLayout;
  readonly #cmd: CommandClient;
  readonly #sub: PubSubClient;
  readonly #attached = new Map<string, Attachment>();
  readonly #presenceStore: RedisPresence;
  readonly #probeChannel: string;
  readonly #timers: NodeJS.Timeout[] = [];
  readonly #state: EngineState;
  #publishes = 0;
  #probeSentAt = 0;
  #probeSeenAt = 0;
  #probeAnsweredAt = 0;
  /** The current primary's master_replid, read again after every (re)connect (see PUBLISH). */
  #primaryId: Promise<string> = Promise.resolve('');
  #subReadyBefore = false;
  #down = false;
  #closing = false;

  constructor(options: RedisEngineOptions) {
    this.#options = options;
    this.#log = options.log.child({ engine: 'redis' });
    this.#layout = options.nodes ? clusterLayout({ nodes: options.nodes }) : singleLayout(options);
    this.#state = options.state ?? new EngineState();
    this.#state.up = false;
    this.#probeChannel = `chorus:probe:${options.nodeId}`;
    const common: RedisOptions = {
      // Fail fast while Redis is away instead of queueing without bound; reconnect with backoff.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      // A partition keeps the socket open and answers nothing: without this, commands would wait
      // until the probe reconnects the connection. Also bounds the handshake (INFO) of a new one.
      commandTimeout: options.commandTimeoutMs ?? 5_000,
      retryStrategy: (attempt) => Math.min(100 * 2 ** Math.min(attempt, 6), 5_000),
      connectionName: `chorus-${options.nodeId}`,
    };
    const probeEvery = options.probeIntervalMs ?? 2_000;
    this.#cmd = this.#layout.connect(common) as CommandClient;
    this.#sub = this.#layout.connectPubSub({ ...common, autoResubscribe: false, connectionName: `chorus-${options.nodeId}-sub` }, this.#cmd, probeEvery, options.nodeId);
    this.#defineCommands();
    this.#presenceStore = new RedisPresence({
      log: this.#log,
      presenceTtlMs: options.presenceTtlMs ?? 30_000,
      keyTtlSeconds: META_TTL_SECONDS,
      keysOf: (appId, channel) => keysOf(this.#layout, appId, channel),
      commands: () => this.#commands(),
      client: this.#cmd,
      unavailable: (what) => this.#unavailable(what),
    });
    this.presence = this.#presenceStore;
    this.counts = new RedisCounts({ nodeId: options.nodeId, log: this.#log, nodeTtlMs: options.nodeTtlMs, commands: () => this.#commands(), onChange: options.handlers.onCountChange });
    // Both kinds of connection are EventEmitters; their typed `on` overloads do not unite.
    for (const [name, client] of [['commands', this.#cmd as EventEmitter], ['pubsub', this.#sub]] as const) {
      client.on('error', (error: NodeJS.ErrnoException) => this.#onDown(name, 'redis unreachable; retrying with backoff', error));
      client.on('close', () => this.#onDown(name, 'redis connection lost; reconnecting with backoff'));
      client.on('ready', () => this.#onReady(name));
    }
    this.#sub.on(this.#layout.messageEvent, (channel: Buffer, message: Buffer) => this.#onMessage(channel.toString(), message));
    // Redis Cluster: a channel whose slot moved is subscribed again; what it missed meanwhile is recovered (sharded.ts).
    this.#sub.on('resynced', (channel: string) => {
      const attachment = this.#attached.get(channel);
      if (attachment) this.#gap(attachment);
    });
    this.#timers.push(setInterval(() => this.#probe(probeEvery), probeEvery).unref());
    this.#timers.push(setInterval(() => this.#reportNode(), NODE_REPORT_MS).unref());
  }

  #defineCommands(): void {
    const define = (name: string, numberOfKeys: number, lua: string): void => this.#cmd.defineCommand(name, { numberOfKeys, lua: withPublishCommand(lua, this.#layout.publishCommand) });
    define('chorusPublish', 3, PUBLISH);
    define('chorusHistory', 2, HISTORY);
    define('chorusPresenceJoin', 2, PRESENCE_JOIN);
    define('chorusPresenceLeave', 2, PRESENCE_LEAVE);
    define('chorusPresenceMembers', 2, PRESENCE_MEMBERS);
    define('chorusPresenceRefresh', 2, PRESENCE_REFRESH);
    define('chorusPresenceSweep', 2, PRESENCE_SWEEP);
    define('chorusPresenceIndexDue', 1, PRESENCE_INDEX_DUE);
    define('chorusPresenceIndexSettle', 1, PRESENCE_INDEX_SETTLE);
    for (const [name, definition] of Object.entries(COUNT_SCRIPTS)) this.#cmd.defineCommand(name, definition);
  }

  // ---- connection state -----------------------------------------------------------------------

  /** Logs an outage once (not once per retry); #onReady logs the return. */
  #onDown(connection: string, message: string, error?: NodeJS.ErrnoException): void {
    this.#state.up = false;
    if (this.#down || this.#closing) return;
    this.#down = true;
    this.#log.warn({ connection, url: this.#layout.describe(), code: error?.code }, message);
  }

  #onReady(connection: 'commands' | 'pubsub'): void {
    if (this.#down) {
      this.#down = false;
      this.#state.reconnects++;
      this.#log.info({ connection, url: this.#layout.describe() }, 'redis connected again');
    }
    this.#state.up = this.#cmd.status === 'ready' && this.#sub.status === 'ready';
    if (connection === 'commands') this.#primaryId = this.#readPrimaryId();
    if (connection !== 'pubsub') return;
    // Whatever was published while the pub/sub connection was away is lost to this node.
    if (this.#subReadyBefore) {
      this.#log.warn({ channels: this.#attached.size }, 'redis pub/sub reconnected; subscribers of its channels resume from history');
      for (const attachment of this.#attached.values()) this.#gap(attachment);
    }
    this.#subReadyBefore = true;
    const channels = [this.#probeChannel, CONTROL_CHANNEL, ...this.#attached.keys()];
    const subscribed = this.#layout.subscribe(this.#sub, channels);
    subscribed.catch((error: unknown) => this.#log.warn({ err: error }, 'redis resubscribe failed'));
    for (const attachment of this.#attached.values()) attachment.subscribed = subscribed;
  }

  /** '' when unknown (INFO refused, say): publishes then skip the failover check. */
  async #readPrimaryId(): Promise<string> {
    // A cluster has a primary per shard, and INFO answers from any node: the check is off there.
    if (this.#layout.cluster) return '';
    const info = await this.#cmd.info('replication').catch(() => '');
    return /^master_replid:(\w+)/m.exec(info)?.[1] ?? '';
  }

  #gap(attachment: Attachment): void {
    attachment.epoch = undefined;
    attachment.lastOffset = 0;
    this.#options.handlers.onGap(attachment.appId, attachment.channel);
  }

  /**
   * Publishes to ourselves. The PUBLISH unanswered for an interval means the command connection
   * is silent; the probe not back on pub/sub within an interval means pub/sub is. Either is
   * reconnected (its 'close' marks the engine down until both are ready again). The command
   * connection is judged first: while it is silent, no probe reaches pub/sub to judge it by.
   */
  #probe(intervalMs: number): void {
    const now = Date.now();
    // Judged at the next tick: 90 % of an interval, since timers fire a little early or late.
    const waited = now - this.#probeSentAt;
    const late = waited >= intervalMs * 0.9;
    if (this.#cmd.status === 'ready' && this.#probeSentAt > this.#probeAnsweredAt && late) {
      this.#log.warn({ waitedMs: waited }, 'redis command connection silent (probe unanswered); reconnecting it');
      this.#reconnectSilent(this.#cmd);
      return;
    }
    if (this.#sub.status !== 'ready' || this.#cmd.status !== 'ready') return;
    if (this.#probeSentAt > this.#probeSeenAt && late) {
      this.#log.warn({ waitedMs: waited }, 'redis pub/sub probe lost; reconnecting the subscriber');
      this.#reconnectSilent(this.#sub);
      return;
    }
    if (this.#probeSentAt > this.#probeSeenAt) return; // still waiting for the last one
    this.#probeSentAt = now;
    const sent = performance.now();
    this.#layout.publish(this.#cmd, this.#probeChannel, 'probe').then(() => {
      this.#probeAnsweredAt = Date.now();
      this.#state.commandTimed?.('probe', performance.now() - sent);
    }, () => undefined);
  }

  /**
   * Down at once, and the socket destroyed rather than ended: over a dead link a graceful end
   * waits for a FIN nobody sends, and the 'close' that makes ioredis reconnect comes late.
   * (A Redis Cluster client, or the sharded subscriber, has no one socket: it is disconnected and
   * reconnects each of its own.)
   */
  #reconnectSilent(client: RedisClient | PubSubClient): void {
    this.#probeSeenAt = this.#probeAnsweredAt = this.#probeSentAt = 0;
    this.#onDown(client === this.#cmd ? 'commands' : 'pubsub', 'redis connection silent; reconnecting with backoff');
    if ('stream' in client && client.stream) client.stream.destroy();
    else client.disconnect(true);
  }

  // ---- broker -----------------------------------------------------------------------------------

  send(message: MessageInput, failed: (error: unknown) => void): void {
    this.publish(message).catch(failed);
  }

  async publish(message: MessageInput): Promise<PublishOutcome> {
    const keys = keysOf(this.#layout, message.appId, message.channel);
    const policy = this.#options.policy(message.appId, message.channel);
    const hasMsgId = message.msgId !== undefined;
    const commands = await this.#commands();
    const timed = this.#publishes++ % PUBLISH_TIMING_EVERY === 0 ? performance.now() : 0;
    const [offset, epoch, duplicate] = await commands.chorusPublish(
      keys.meta,
      keys.stream,
      hasMsgId ? `${keys.msgIdPrefix}${message.msgId}` : keys.meta,
      keys.pubsub,
      messageHeaderFields(message),
      message.payload,
      policy.size,
      Math.max(1, Math.ceil(policy.ttlMs / 1000)),
      META_TTL_SECONDS,
      newEpoch(),
      hasMsgId ? '1' : '0',
      await this.#primaryId,
    ).catch((error: unknown) => {
      // The connection went away under the command (ioredis: "Connection is closed", retries
      // exhausted): the caller must hear "not accepted, retry later", not "internal error".
      // Judged by the error, not by the status now: after a failover the connection can be
      // ready again (to the new primary) by the time a command that died with the old one fails.
      throw commands.status !== 'ready' || isUnavailableError(error) ? new EngineUnavailableError('redis connection lost during publish', { cause: error }) : error;
    });
    if (timed !== 0) this.#state.commandTimed?.('publish', performance.now() - timed);
    return { offset: Number(offset), epoch: String(epoch), duplicate: Number(duplicate) === 1 };
  }

  async publishPresence(change: PresencePublication): Promise<void> {
    await this.#layout.publish(await this.#commands(), keysOf(this.#layout, change.appId, change.channel).pubsub, encodePresence(change)).catch(this.#unavailable('presence publish'));
  }

  async history(appId: string, channel: string, query: HistoryQuery): Promise<HistoryPage> {
    const keys = keysOf(this.#layout, appId, channel);
    const policy = this.#options.policy(appId, channel);
    const since = query.since;
    const [epochBuffer, offsetBuffer, entries, prevEpoch, prevOffset] = await (await this.#commands()).chorusHistoryBuffer(
      keys.meta,
      keys.stream,
      newEpoch(),
      META_TTL_SECONDS,
      since ? since.offset : -1,
      query.limit,
    ).catch(this.#unavailable('history'));
    const epoch = epochBuffer.toString();
    const offset = Number(offsetBuffer.toString());
    const cutoff = Date.now() - policy.ttlMs;
    const decoded = entries
      .map(([, fields]) => decodePublication(fields[1] as Buffer))
      .filter((p): p is MessagePublication => p?.kind === 'message' && p.ts >= cutoff);
    if (!since) return { epoch, offset, publications: decoded.reverse(), recovered: undefined };

    const contiguous = decoded[0]?.offset === since.offset + 1 && decoded.length === Math.min(offset - since.offset, query.limit);
    // The epoch before a failover continues into this one up to what the new primary holds of it.
    const sameStream = since.epoch === epoch || (prevEpoch.length > 0 && since.epoch === prevEpoch.toString() && since.offset <= Number(prevOffset.toString()));
    const recoverable = sameStream && since.offset <= offset && (since.offset === offset || contiguous);
    if (recoverable) return { epoch, offset, publications: decoded, recovered: true };
    const latest = await this.history(appId, channel, { limit: query.limit });
    return { ...latest, recovered: false };
  }

  attach(appId: string, channel: string): Promise<void> {
    const { pubsub } = keysOf(this.#layout, appId, channel);
    const existing = this.#attached.get(pubsub);
    if (existing) return existing.subscribed;
    const attachment: Attachment = { appId, channel, subscribed: Promise.resolve(), epoch: undefined, lastOffset: 0 };
    // Registered even when Redis is away: the next 'ready' subscribes it.
    this.#attached.set(pubsub, attachment);
    attachment.subscribed = this.#ready(this.#sub).then(() => this.#layout.subscribe(this.#sub, [pubsub]));
    return attachment.subscribed;
  }

  /**
   * Resolves when the connection is ready, waiting a little for a (re)connect in progress, so
   * a node that just started or a short Redis blip does not fail commands at once.
   */
  #ready(client: RedisClient | PubSubClient, waitMs = 3_000): Promise<void> {
    if (client.status === 'ready') return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        client.off('ready', onReady);
        reject(new EngineUnavailableError('redis is not connected'));
      }, waitMs);
      const onReady = (): void => {
        clearTimeout(timer);
        resolve();
      };
      client.once('ready', onReady);
    });
  }

  /** For `.catch`: Redis being away becomes EngineUnavailableError (a coded "try again" for clients). */
  #unavailable(what: string): (error: unknown) => never {
    return rethrowUnavailable(what, () => this.#cmd.status !== 'ready');
  }

  /** The command connection, once ready. */
  async #commands(): Promise<CommandClient> {
    await this.#ready(this.#cmd);
    return this.#cmd;
  }

  detach(appId: string, channel: string): void {
    const { pubsub } = keysOf(this.#layout, appId, channel);
    if (!this.#attached.delete(pubsub)) return;
    if (this.#sub.status === 'ready') this.#layout.unsubscribe(this.#sub, pubsub).catch(() => undefined);
  }

  #onMessage(channel: string, message: Buffer): void {
    if (channel === this.#probeChannel) {
      this.#probeSeenAt = Date.now();
      return;
    }
    if (channel === CONTROL_CHANNEL) {
      try {
        this.#options.handlers.onControl(JSON.parse(message.toString('utf8')) as ControlMessage);
      } catch (error) {
        this.#log.error({ err: error }, 'undecodable control message');
      }
      return;
    }
    const attachment = this.#attached.get(channel);
    if (!attachment) return;
    let publication;
    try {
      publication = decodePublication(message);
    } catch (error) {
      this.#log.error({ err: error, channel }, 'undecodable publication');
      return;
    }
    if (!publication) return;
    if (publication.kind === 'message') {
      const known = attachment.epoch !== undefined;
      if (known && publication.epoch === attachment.epoch && publication.offset <= attachment.lastOffset) return; // already delivered
      if (known && (publication.epoch !== attachment.epoch || publication.offset !== attachment.lastOffset + 1)) this.#gap(attachment);
      attachment.epoch = publication.epoch;
      attachment.lastOffset = publication.offset;
    }
    this.#options.handlers.onPublication(publication);
  }

  // ---- stats and lifecycle --------------------------------------------------------------------

  #reportNode(): void {
    if (this.#cmd.status !== 'ready') return;
    this.#cmd.hset(NODES_KEY, this.#options.nodeId, JSON.stringify({ ...this.#options.localStats(), ts: Date.now() })).catch(() => undefined);
  }

  async broadcast(message: ControlMessage): Promise<void> {
    await this.#layout.publish(await this.#commands(), CONTROL_CHANNEL, JSON.stringify(message)).catch(this.#unavailable('broadcast'));
  }

  async stats(): Promise<ClusterStats> {
    const local = this.#options.localStats();
    const reports = await (await this.#commands()).hgetall(NODES_KEY).catch(this.#unavailable('stats'));
    const fresh = Date.now() - 3 * NODE_REPORT_MS;
    const totals = { nodes: 1, ...local };
    for (const [nodeId, report] of Object.entries(reports)) {
      if (nodeId === this.#options.nodeId) continue;
      const parsed = JSON.parse(report) as { connections: number; channels: number; ts: number };
      if (parsed.ts < fresh) continue;
      totals.nodes++;
      totals.connections += parsed.connections;
      totals.channels += parsed.channels;
    }
    return totals;
  }

  async close(): Promise<void> {
    this.#closing = true;
    for (const timer of this.#timers) clearInterval(timer);
    this.#presenceStore.close();
    await this.counts.close();
    if (this.#cmd.status === 'ready') await this.#cmd.hdel(NODES_KEY, this.#options.nodeId).catch(() => undefined);
    this.#sub.disconnect();
    this.#cmd.disconnect();
  }
}

function newEpoch(): string {
  return randomBytes(6).toString('base64url');
}

export function createRedisEngine(options: RedisEngineOptions): Engine {
  return new RedisEngine(options);
}
