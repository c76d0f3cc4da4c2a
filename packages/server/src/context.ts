/** What the dialects and HTTP handlers share: one object per running server. */
import type { Logger } from 'pino';
import type { ActivityFeed } from './admin/activity.js';
import type { AppRegistry } from './apps.js';
import type { ChorusConfig } from './config.js';
import type { EngineState } from './engine/state.js';
import type { Engine } from './engine/types.js';
import type { Hub } from './hub.js';
import type { ServerMetrics } from './metrics/prometheus.js';
import type { ServerStats } from './metrics/stats.js';
import type { OutboundScheduler } from './outbound.js';
import type { ConnectionRegistry } from './registry.js';
import type { UserConnections } from './users.js';
import type { Webhooks } from './webhooks/index.js';

export interface ServerContext {
  readonly config: ChorusConfig;
  readonly apps: AppRegistry;
  readonly engine: Engine;
  readonly hub: Hub;
  readonly scheduler: OutboundScheduler;
  readonly log: Logger;
  /** Every open connection, for limits, heartbeats, shutdown and stats. */
  readonly connections: ConnectionRegistry;
  /** Connections of signed-in users (Pusher signin), for ending a user's connections. */
  readonly users: UserConnections;
  /** The app's webhook receivers, told what happens on channels (docs/webhooks.md). */
  readonly webhooks: Webhooks;
  /** This node's happenings per app, for the admin dashboard's debug console. */
  readonly activity: ActivityFeed;
  /** Counters the server increments as plain fields (connections, messages, refusals), read by /metrics. */
  readonly stats: ServerStats;
  /** The engine's reachability, reconnects and command round trips, for /ready and /metrics. */
  readonly engineState: EngineState;
  /** GET /metrics; undefined when `metrics.enabled` is false. */
  readonly metrics: ServerMetrics | undefined;
  /** Unique per server instance, so connection ids stay unique across nodes. */
  newConnectionId(): string;
  readonly startedAt: number;
  shuttingDown: boolean;
  /**
   * Set while the shutdown closes connections in batches over drainWindowMs (drain.ts): /health
   * says `draining`, and v1 clients told to reconnect come back within reconnectSpreadMs.
   */
  drain: { readonly reconnectSpreadMs: number } | undefined;
  /** Whether the engine has been away too long (engine-outage.ts): new upgrades are refused. */
  outage: { readonly refusing: boolean; readonly message: string } | undefined;
}
