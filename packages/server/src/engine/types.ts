/**
 * The engine is where publications, history and presence live. It is an interface so a single
 * process (memory) and a cluster (Redis, later) share every other line of the server: both hand
 * publications back through the same `onPublication` handler, which the Hub implements, so the
 * single-node path and the clustered path are one delivery path.
 */
import type { Member, StreamPosition } from '@chorus/protocol';
import type { ChannelRoute } from '../channel-route.js';

interface PublicationBase {
  readonly appId: string;
  readonly channel: string;
  /** Id of the connection that caused it, so the Hub can skip it (notify_self off). */
  readonly originId: string | undefined;
}

/**
 * A message as a dialect or the REST API hands it to the broker.
 *
 * Payload forms: `binary` → raw bytes. Text with `event` set (a v1 publish) → `payload` is the
 * JSON text of the v1 `data`. Text without `event` (raw dialect, REST) → any UTF-8 text, which
 * may or may not be JSON. Each dialect's encoder turns these into its own wire form.
 */
export interface MessageInput extends PublicationBase {
  readonly event: string | undefined;
  readonly payload: Buffer;
  readonly binary: boolean;
  /** Client-chosen idempotency key: a repeat within the history TTL is not published again. */
  readonly msgId?: string | undefined;
  /**
   * The origin must not receive it even if it asked for its own messages (notify_self, v1):
   * a Pusher HTTP API trigger's socket_id, which Laravel's toOthers() sets.
   */
  readonly excludeOrigin?: boolean | undefined;
  /** Who sent it, where the dialect shows that (a Pusher client event on a presence channel). */
  readonly userId?: string | undefined;
}

/** A message after the broker accepted it: placed in the channel's stream. */
export interface MessagePublication extends MessageInput {
  readonly kind: 'message';
  readonly offset: number;
  readonly epoch: string;
  /** Accept time, ms since the Unix epoch. */
  readonly ts: number;
}

/** A presence change, carrying the roster as it stood right after the change. */
export interface PresencePublication extends PublicationBase {
  readonly kind: 'presence';
  readonly action: 'joined' | 'left';
  readonly member: Member;
  readonly members: readonly Member[];
}

export type Publication = MessagePublication | PresencePublication;

/** `route`: the publisher's shortcut to the channel's records, when it came through one (see ChannelRoute). */
export type PublicationHandler = (publication: Publication, route?: ChannelRoute) => void;

/** What the engine calls back into the node. */
export interface EngineHandlers {
  /** Every publication for a channel this node is attached to, in offset order per channel. */
  readonly onPublication: PublicationHandler;
  /**
   * Publications of an attached channel may have been lost on their way to this node (a
   * pub/sub reconnect, an offset gap, a new epoch). Subscribers that can recover from history
   * must be made to (v1 connections are told to reconnect and resume from their offset).
   */
  readonly onGap: (appId: string, channel: string) => void;
  /** A control message some node broadcast (this one included). */
  readonly onControl: (message: ControlMessage) => void;
  /**
   * A cluster-wide count changed (see Counts). Called on exactly one node per change: the one
   * whose own count changed, or the one whose sweep removed a dead node's count.
   */
  readonly onCountChange: (change: CountChange) => void;
}

/** Orders and news for every node, about connections wherever they are (not channel traffic). */
export type ControlMessage =
  /** End a signed-in user's connections (Pusher HTTP API terminate_connections; the admin API, with its own close). */
  | { readonly kind: 'terminate-user'; readonly appId: string; readonly userId: string; readonly code?: number; readonly reason?: string }
  /** End one connection, wherever it is (the admin API). */
  | { readonly kind: 'disconnect-connection'; readonly appId: string; readonly connectionId: string; readonly code?: number; readonly reason?: string }
  /** A channel's cluster-wide subscription count changed (for Pusher's subscription_count event). */
  | { readonly kind: 'subscription-count'; readonly appId: string; readonly channel: string; readonly count: number }
  /** A debug console on `node` watches the app until `until` (ms): every node forwards its activity. */
  | { readonly kind: 'activity-watch'; readonly appId: string; readonly node: string; readonly until: number }
  /** One activity item of `node`, for the consoles watching the app on other nodes. */
  | { readonly kind: 'activity'; readonly appId: string; readonly node: string; readonly item: unknown }
  /** An app was added or changed through the admin API: reload it from engine.apps. */
  | { readonly kind: 'app-changed'; readonly appId: string }
  /** A signed-in user's first connection opened or last one closed, cluster-wide (Pusher watchlists). */
  | { readonly kind: 'user-presence'; readonly appId: string; readonly userId: string; readonly online: boolean };

/**
 * What cluster-wide counts are kept of: each channel's subscriptions (every dialect's), each
 * signed-in user's connections, each presence member's connections per channel (name
 * `channel\nuser id`: one user in two tabs is one member).
 */
export type CountSpace = 'subscriptions' | 'users' | 'members';

/** One change of a cluster-wide count, with the totals before and after it. */
export interface CountChange {
  readonly appId: string;
  readonly space: CountSpace;
  readonly name: string;
  readonly before: number;
  readonly after: number;
}

/**
 * Counts summed over every node: how many connections are subscribed to a channel, how many
 * connections a user has, wherever they are. Each node owns its share (a node that dies loses
 * its share within a node TTL), so a count never includes connections that are gone for good.
 */
export interface Counts {
  /**
   * Sets this node's share of the name's count. Changes reach the cluster-wide total
   * asynchronously (Redis: those of one turn together); each change of the total is reported to
   * exactly one node's onCountChange, so a 0 → n (occupied) or n → 0 (vacated) is seen once.
   */
  set(appId: string, space: CountSpace, name: string, local: number): void;
  /** The cluster-wide total (this node's share as set, even if not yet written). */
  total(appId: string, space: CountSpace, name: string): Promise<number>;
  /** Every name of the space with a positive total whose name starts with `prefix`, and its total. */
  list(appId: string, space: CountSpace, prefix: string): Promise<Map<string, number>>;
  /**
   * Records whether the name was last announced as present (occupied, member added) and says
   * whether that changed, atomically for the whole cluster: of nodes racing to announce one
   * state, one gets true. What announces transitions exactly once, in alternation (webhooks).
   */
  mark(appId: string, space: CountSpace, name: string, present: boolean): Promise<boolean>;
}

/** Cluster-wide figures for /health (the memory engine reports this node only). */
/** This node's own figures, asked for by the engine when it reports or answers stats. */
export type LocalStats = () => { connections: number; channels: number };

export interface ClusterStats {
  readonly nodes: number;
  readonly connections: number;
  readonly channels: number;
}

export interface PublishOutcome extends StreamPosition {
  /** True when `msgId` had been accepted before: nothing was published, the first offset is returned. */
  readonly duplicate: boolean;
}

export interface HistoryQuery {
  /** Only publications after this position; omitted → the most recent ones. */
  readonly since?: StreamPosition | undefined;
  readonly limit: number;
}

export interface HistoryPage extends StreamPosition {
  /** Oldest first. */
  readonly publications: readonly MessagePublication[];
  /**
   * With `since`: true when every publication after it is still retained (they are all in
   * `publications`, up to `limit`); false when the gap cannot be filled. Undefined without `since`.
   */
  readonly recovered: boolean | undefined;
}

/** How much history a channel keeps. */
export interface HistoryPolicy {
  readonly size: number;
  readonly ttlMs: number;
}

export type HistoryPolicyResolver = (appId: string, channel: string) => HistoryPolicy;

export interface Broker {
  /**
   * Assigns the next offset in the channel's stream, stores the publication in history and
   * delivers it to every node's handler, this one included, in offset order per channel.
   */
  publish(message: MessageInput): Promise<PublishOutcome>;
  /**
   * `publish` for a caller that needs no outcome (a raw client's frame has no ack): failures go to
   * `failed`. The memory engine does it without a promise per message, which on ingress was a
   * measurable share of a message's cost. `route`: the sender's shortcut to the channel's records
   * on this node, for a connection bound to one channel (engines that keep none ignore it).
   */
  send(message: MessageInput, failed: (error: unknown) => void, route?: ChannelRoute): void;
  /** Delivers a presence change to every node's handler; presence changes have no offset. */
  publishPresence(change: PresencePublication): Promise<void>;
  history(appId: string, channel: string, query: HistoryQuery): Promise<HistoryPage>;
  /**
   * This node has its first local subscriber on the channel: start receiving its publications.
   * Resolves once they flow, so a history read after it cannot miss any.
   */
  attach(appId: string, channel: string): Promise<void>;
  /** This node has no local subscriber on the channel any more. */
  detach(appId: string, channel: string): void;
}

export interface PresenceStore {
  /**
   * Adds (or replaces) the member for this connection and returns the roster after the change,
   * or undefined without joining when the roster already has `maxMembers` (checked atomically).
   */
  join(appId: string, channel: string, connectionId: string, member: Member, maxMembers: number): Promise<Member[] | undefined>;
  /**
   * Removes the connection's member and returns the roster after the change; undefined when the
   * connection has no member there (never joined, left already, or expired and announced as
   * left by a sweep), so nobody announces a leave twice.
   */
  leave(appId: string, channel: string, connectionId: string): Promise<Member[] | undefined>;
  members(appId: string, channel: string): Promise<Member[]>;
}

/** An app as the admin API added or changed it: what overrides or extends the config's apps. */
export interface StoredApp {
  readonly id: string;
  readonly key: string;
  readonly secret: string;
  readonly enabled: boolean;
}

/**
 * Where apps managed at run time are kept, for every node and across restarts: a file on the
 * memory engine (or this process only), a hash on Redis.
 */
export interface AppStore {
  load(): Promise<StoredApp[]>;
  save(app: StoredApp): Promise<void>;
}

export interface Engine {
  readonly broker: Broker;
  readonly presence: PresenceStore;
  readonly counts: Counts;
  readonly apps: AppStore;
  /** This node's figures plus, for a clustered engine, the other nodes'. */
  stats(): Promise<ClusterStats>;
  /** Delivers a control message to every node's onControl, this one's included. */
  broadcast(message: ControlMessage): Promise<void>;
  close(): Promise<void>;
}
