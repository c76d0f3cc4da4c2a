/**
 * Sharded pub/sub on Redis Cluster that follows moved slots without losing a publication
 * silently: the engine's subscriber side for `engine: {type: "redis-cluster"}`.
 *
 * A shard channel lives in its slot, so a node subscribes to each channel at the primary that
 * owns the slot (one connection per primary, made when first needed), as the command
 * connection's slot map says. When the slot migrates (a reshard) or its primary fails over, the
 * old owner drops the subscribers by itself (a SUNSUBSCRIBE it sends, which ioredis reports as a
 * "Command queue state error"), or the connection dies with it. Then the channel is subscribed
 * again at the owner the refreshed slot map names, checked every interval.
 *
 * What was published in between never reached this node. A busy channel shows that by an offset
 * gap (index.ts), a quiet one would not: so a channel whose subscription moved is fenced. The
 * node SPUBLISHes a marker on it, and when the marker comes back through its own subscription
 * (live at the owner, then), it emits 'resynced' and the engine declares a gap: v1 subscribers
 * resume from history, which moved with the slot. Until the marker comes back it is sent again
 * every interval, and after three misses the channel is subscribed again from scratch.
 *
 * A marker proves a subscription live only if it travels the way publications do:
 * - It is published by a script, like every publication (scripts.ts), so at the slot's primary:
 *   a replica answers a script with MOVED but runs a plain SPUBLISH itself, and its own
 *   subscribers hear that at once. Right after a CLUSTER FAILOVER the slot map can still name
 *   the old primary, now a replica that its successor does not yet forward publications to: a
 *   plain SPUBLISH marker came back there at once while the publications went missing (v1 lost
 *   10–14 numbers silently in 2 of 20 runs of cluster-redis-cluster.test.ts).
 * - It counts only with the channel's current fence number, and only through the connection the
 *   channel is subscribed at now: a late copy of an earlier fence's marker, or one relayed by a
 *   subscription being torn down, proves nothing about the new one.
 * A new subscription is proven the same way before subscribe() resolves (nothing was delivered
 * before it, so no gap is declared): SSUBSCRIBE also succeeds at such a replica, and the v1
 * history read that follows would leave what the replica does not hear yet out of both.
 *
 * ioredis's own `shardedSubscribers` was tried first: after a migration its resubscription could
 * miss the new owner for seconds (223 of 600 publications lost to a raw subscriber, once).
 */
import calculateSlot from 'cluster-key-slot';
import { EventEmitter } from 'node:events';
import { Redis, type Cluster, type RedisOptions } from 'ioredis';

export interface ShardedPubSubOptions {
  /** The engine's command connection: its slot map says which primary owns a channel. */
  readonly cluster: Cluster;
  /** For the per-primary subscriber connections. */
  readonly redisOptions: RedisOptions;
  readonly nodeId: string;
  readonly intervalMs: number;
}

interface ChannelState {
  readonly slot: number;
  /** The primary ("host:port") it is subscribed at, or being subscribed at; undefined: nowhere. */
  node: string | undefined;
  /** Numbers the markers of the current fence; raised each time the channel is suspected again. */
  fence: number;
  /** A new subscription until its first marker comes back (subscribe() waits for it); undefined once proven. */
  proof: { readonly done: Promise<void>; readonly resolve: () => void } | undefined;
}

/** How long an SSUBSCRIBE may take before it is tried again (a MOVED reply never settles in ioredis). */
const SUBSCRIBE_TIMEOUT_MS = 2_000;
/** Markers sent without an answer before the channel is subscribed again from scratch. */
const MARKER_TRIES = 3;
/** How soon a failed SSUBSCRIBE is tried again (the command connection learns a moved slot from its next MOVED). */
const RETRY_MS = 100;
/** Starts every marker; no publication, control message or probe does. */
const FENCE_PREFIX = 'chorus-fence:';
/** A script, so that it runs at the slot's primary (see above); the channel is its key, for the slot. */
const MARKER_SCRIPT = "return redis.call('SPUBLISH', KEYS[1], ARGV[1])";

/**
 * Emits 'ready', 'close' and 'error' as the cluster does, 'smessageBuffer' (channel, message) for
 * publications, and 'resynced' (channel) when a moved channel is live again.
 */
export class ShardedPubSub extends EventEmitter {
  readonly #options: ShardedPubSubOptions;
  readonly #cluster: Cluster;
  /** Only its sender reads it; other nodes drop every marker (FENCE_PREFIX) unread. */
  readonly #marker: string;
  readonly #connections = new Map<string, Redis>();
  readonly #channels = new Map<string, ChannelState>();
  /** Channels whose subscription moved, until their marker comes back: markers sent since. */
  readonly #unsure = new Map<string, number>();
  readonly #timer: NodeJS.Timeout;
  #retry: NodeJS.Timeout | undefined;

  constructor(options: ShardedPubSubOptions) {
    super();
    this.#options = options;
    this.#cluster = options.cluster;
    this.#marker = `${FENCE_PREFIX}${options.nodeId}`;
    this.#cluster.on('ready', () => this.emit('ready'));
    this.#cluster.on('close', () => this.emit('close'));
    this.#timer = setInterval(() => this.#check(), options.intervalMs).unref();
  }

  get status(): string {
    return this.#cluster.status;
  }

  /** Resolves once each channel is subscribed at its slot's owner, and a new one proven live there by a marker. */
  async subscribe(channels: string[]): Promise<void> {
    await Promise.all(
      channels.map(async (channel) => {
        const existing = this.#channels.get(channel);
        if (existing) {
          const proof = existing.proof?.done;
          const subscribed = this.#subscribeAtOwner(channel);
          return proof ? Promise.all([subscribed, proof]).then(() => undefined) : subscribed;
        }
        let resolve = (): void => undefined;
        const done = new Promise<void>((resolved) => (resolve = resolved));
        const state: ChannelState = { slot: calculateSlot(channel), node: undefined, fence: 0, proof: { done, resolve } };
        this.#channels.set(channel, state);
        this.#unsure.set(channel, 0);
        await this.#subscribeAtOwner(channel);
        // At once, not at the next check: the caller waits for it (unless it was unsubscribed or proven meanwhile).
        if (this.#channels.get(channel) === state && state.proof) {
          this.#unsure.set(channel, (this.#unsure.get(channel) ?? 0) + 1);
          this.#sendMarker(channel, state);
        }
        return done;
      }),
    );
  }

  async unsubscribe(channel: string): Promise<void> {
    const state = this.#channels.get(channel);
    this.#channels.delete(channel);
    this.#unsure.delete(channel);
    this.#settle(state);
    const connection = state?.node === undefined ? undefined : this.#connections.get(state.node);
    if (connection?.status === 'ready') await connection.sunsubscribe(channel);
  }

  /** Drops every subscriber connection; with `reconnect`, the channels are subscribed again (and fenced). */
  disconnect(reconnect = false): void {
    for (const connection of this.#connections.values()) connection.disconnect();
    this.#connections.clear();
    for (const [channel, state] of this.#channels) {
      state.node = undefined;
      if (reconnect) this.#suspect(channel);
    }
    if (!reconnect) {
      clearInterval(this.#timer);
      clearTimeout(this.#retry);
      for (const state of this.#channels.values()) this.#settle(state);
      this.#channels.clear();
      return;
    }
    this.#subscribeMoved(); // at once: the engine's next probe must find the probe channel subscribed
  }

  #ownerOf(slot: number): string | undefined {
    return this.#cluster.slots[slot]?.[0];
  }

  #subscribeAtOwner(channel: string): Promise<void> {
    const state = this.#channels.get(channel);
    const owner = state && this.#ownerOf(state.slot);
    if (!state || owner === undefined) return Promise.reject(new Error('redis cluster: no primary known for the slot yet'));
    const connection = this.#connection(owner);
    state.node = owner;
    return new Promise<void>((resolve, reject) => {
      const done = (error?: Error): void => {
        clearTimeout(timer);
        connection.off('moved', onMoved);
        if (!error) return resolve();
        // Tried again soon, at whichever primary the slot map names by then.
        if (state.node === owner) state.node = undefined;
        this.#cluster.refreshSlotsCache();
        this.#retry ??= setTimeout(() => {
          this.#retry = undefined;
          this.#subscribeMoved();
        }, RETRY_MS).unref();
        reject(error);
      };
      const onMoved = (): void => done(new Error(`redis cluster: ${owner} no longer owns slot ${state.slot}`));
      const timer = setTimeout(() => done(new Error('redis cluster: SSUBSCRIBE timed out')), SUBSCRIBE_TIMEOUT_MS);
      connection.once('moved', onMoved);
      connection.ssubscribe(channel).then(() => done(), (error: Error) => done(error));
    });
  }

  #connection(node: string): Redis {
    const existing = this.#connections.get(node);
    if (existing) return existing;
    const separator = node.lastIndexOf(':');
    const connection = new Redis({
      ...this.#options.redisOptions,
      host: node.slice(0, separator),
      port: Number(node.slice(separator + 1)),
      // Queued until connected; SUBSCRIBE_TIMEOUT_MS bounds the wait.
      enableOfflineQueue: true,
      autoResubscribe: false,
    });
    connection.on('smessageBuffer', (channel: Buffer, message: Buffer) => this.#onMessage(node, channel.toString(), message));
    connection.on('error', (error: Error) => {
      // The owner dropped us from a channel whose slot moved away.
      const dropped = /Last reply: sunsubscribe,([^,]*),/.exec(error.message)?.[1];
      if (dropped === undefined) return;
      const state = this.#channels.get(dropped);
      if (state?.node === node) state.node = undefined;
      this.#suspect(dropped);
      // Subscribed at the new owner as soon as the slot map names it, not at the next check.
      this.#cluster.refreshSlotsCache(() => this.#subscribeMoved());
    });
    connection.on('close', () => {
      for (const [channel, state] of this.#channels) {
        if (state.node !== node) continue;
        state.node = undefined;
        this.#suspect(channel);
      }
    });
    this.#connections.set(node, connection);
    return connection;
  }

  #onMessage(node: string, channel: string, message: Buffer): void {
    if (message.subarray(0, FENCE_PREFIX.length).toString() === FENCE_PREFIX) {
      const state = this.#channels.get(channel);
      const current = state !== undefined && state.node === node && message.toString() === this.#markerOf(state);
      if (!current || !this.#unsure.delete(channel)) return;
      // A new subscription's subscribers read history after this; a moved one's must again.
      if (state.proof) this.#settle(state);
      else this.emit('resynced', channel);
      return;
    }
    this.emit('smessageBuffer', Buffer.from(channel), message);
  }

  /** Lets the subscribe() calls waiting for the channel's first marker go on. */
  #settle(state: ChannelState | undefined): void {
    state?.proof?.resolve();
    if (state) state.proof = undefined;
  }

  #sendMarker(channel: string, state: ChannelState): void {
    this.#cluster.eval(MARKER_SCRIPT, 1, channel, this.#markerOf(state)).catch(() => undefined);
  }

  #markerOf(state: ChannelState): string {
    return `${this.#marker}:${state.fence}`;
  }

  /** The channel may have missed publications: fenced (a new fence number) until a marker comes back. */
  #suspect(channel: string): void {
    const state = this.#channels.get(channel);
    if (!state) return;
    state.fence++;
    this.#unsure.set(channel, 0);
  }

  /** Every interval: channels not subscribed at their slot's owner are subscribed there; moved ones are fenced. */
  #check(): void {
    if (this.#cluster.status !== 'ready') return;
    this.#subscribeMoved();
    // A connection that is down and carries no channel (its node failed or gave its slots away) goes.
    for (const [node, connection] of this.#connections) {
      if (connection.status === 'ready' || [...this.#channels.values()].some((state) => state.node === node)) continue;
      connection.disconnect();
      this.#connections.delete(node);
    }
    for (const [channel, sent] of this.#unsure) {
      const state = this.#channels.get(channel);
      if (!state) continue;
      if (sent >= MARKER_TRIES) {
        state.node = undefined; // subscribed again (and fenced anew) at the next check
        continue;
      }
      this.#unsure.set(channel, sent + 1);
      // Also while the SSUBSCRIBE is on its way: a MOVED answer to this publish refreshes the slot map.
      this.#sendMarker(channel, state);
    }
  }

  /** Subscribes each channel that is not subscribed at its slot's owner there (and fences it). */
  #subscribeMoved(): void {
    for (const [channel, state] of this.#channels) {
      const owner = this.#ownerOf(state.slot);
      if (owner === undefined || state.node === owner) continue;
      if (state.node !== undefined) this.#connections.get(state.node)?.sunsubscribe(channel).catch(() => undefined);
      this.#suspect(channel);
      this.#subscribeAtOwner(channel).catch(() => undefined);
    }
  }
}
