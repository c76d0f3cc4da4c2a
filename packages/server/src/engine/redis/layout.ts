/**
 * What differs between one Redis (or a Sentinel-managed primary) and a Redis Cluster, for the
 * one Redis engine: how connections are made, how a channel's pub/sub channel is named, and
 * which pub/sub flavour carries publications between nodes.
 *
 * - One Redis: PUBLISH/SUBSCRIBE on `chorus:pub:app:channel` (the names of earlier versions).
 * - Redis Cluster: sharded pub/sub, SPUBLISH/SSUBSCRIBE (Redis ≥ 7) on `chorus:{app:channel}:pub`.
 *   The hash tag puts the pub/sub channel in the same slot as the channel's keys, which the Lua
 *   scripts need (a script may only SPUBLISH to a channel of its own slot), and a publication
 *   travels to the subscribers of the one shard that owns the slot instead of to every shard, as
 *   plain PUBLISH does in a cluster. The subscriber side keeps one connection per primary and
 *   follows moved slots (sharded.ts).
 */
import type { EventEmitter } from 'node:events';
import { Cluster, type Redis, type RedisOptions } from 'ioredis';
import type { EngineConfig } from '../../config-types.js';
import { ShardedPubSub } from './sharded.js';
import { connectRedis, describeTarget, type RedisTarget } from './target.js';

export type ClusterTarget = Pick<Extract<EngineConfig, { type: 'redis-cluster' }>, 'nodes'>;

/** A command connection of either kind: both speak the same commands (ioredis's RedisCommander). */
export type RedisClient = Redis | Cluster;

/**
 * The subscriber side: a Redis connection, or ShardedPubSub on a cluster. Emits 'ready', 'close',
 * 'error', the layout's messageEvent, and (cluster) 'resynced' with a channel that may have missed
 * publications while its slot moved.
 */
export interface PubSubClient extends EventEmitter {
  readonly status: string;
  disconnect(reconnect?: boolean): void;
}

export interface RedisLayout {
  readonly cluster: boolean;
  /** The pub/sub command the Lua scripts use. */
  readonly publishCommand: 'PUBLISH' | 'SPUBLISH';
  /** The event a subscriber connection emits a publication with (channel and payload as Buffers). */
  readonly messageEvent: 'messageBuffer' | 'smessageBuffer';
  /** Where a channel's publications travel between nodes. */
  pubsubChannel(appId: string, channel: string): string;
  connect(options: RedisOptions): RedisClient;
  /** The subscriber side, beside `commands` (a cluster's slot map comes from there). */
  connectPubSub(options: RedisOptions, commands: RedisClient, intervalMs: number, nodeId: string): PubSubClient;
  subscribe(client: PubSubClient, channels: string[]): Promise<void>;
  unsubscribe(client: PubSubClient, channel: string): Promise<void>;
  publish(client: RedisClient, channel: string, message: string | Buffer): Promise<unknown>;
  /** For logs: no password, ever. */
  describe(): string;
}

export function singleLayout(target: RedisTarget): RedisLayout {
  return {
    cluster: false,
    publishCommand: 'PUBLISH',
    messageEvent: 'messageBuffer',
    pubsubChannel: (appId, channel) => `chorus:pub:${appId}:${channel}`,
    connect: (options) => connectRedis(target, options),
    connectPubSub: (options) => connectRedis(target, options),
    subscribe: async (client, channels) => void (await (client as Redis).subscribe(...channels)),
    unsubscribe: async (client, channel) => void (await (client as Redis).unsubscribe(channel)),
    publish: (client, channel, message) => client.publish(channel, message),
    describe: () => describeTarget(target),
  };
}

/** How often the command connection asks the cluster for its slot map, so moved slots are followed. */
const SLOTS_REFRESH_MS = 1_000;

export function clusterLayout(target: ClusterTarget): RedisLayout {
  return {
    cluster: true,
    publishCommand: 'SPUBLISH',
    messageEvent: 'smessageBuffer',
    pubsubChannel: (appId, channel) => `chorus:{${appId}:${channel}}:pub`,
    connect: (options) => {
      // Reconnecting is the cluster's job (clusterRetryStrategy); its node connections take the rest.
      const { enableOfflineQueue, retryStrategy, ...perNode } = options;
      // The slot map is refreshed from an unref'd interval of ours, not ioredis's
      // slotsRefreshInterval: ioredis 5.11 re-arms that (ref'd) timer when a refresh is in flight
      // as the client disconnects, forever, so a process that closed its engine never exited
      // (seen as a hung engine-contract test file).
      const cluster = new Cluster(target.nodes, { enableOfflineQueue, redisOptions: perNode, clusterRetryStrategy: retryStrategy, slotsRefreshInterval: 0 });
      // Whatever the client's status, as ioredis's timer did: after a primary dies the client is
      // not 'ready', and the new slot map is what gets it there.
      const refresh = setInterval(() => cluster.refreshSlotsCache(), SLOTS_REFRESH_MS).unref();
      cluster.once('end', () => clearInterval(refresh));
      return cluster;
    },
    connectPubSub: (options, commands, intervalMs, nodeId) => new ShardedPubSub({ cluster: commands as Cluster, redisOptions: options, intervalMs, nodeId }),
    subscribe: (client, channels) => (client as ShardedPubSub).subscribe(channels),
    unsubscribe: (client, channel) => (client as ShardedPubSub).unsubscribe(channel),
    publish: (client, channel, message) => client.spublish(channel, message),
    describe: () => `redis cluster via ${target.nodes.map((n) => `${n.host}:${n.port}`).join(',')}`,
  };
}

/** The layout an engine config names (not the memory engine). */
export function layoutOf(engine: Exclude<EngineConfig, { type: 'memory' }>): RedisLayout {
  return engine.type === 'redis-cluster' ? clusterLayout(engine) : singleLayout(engine);
}
