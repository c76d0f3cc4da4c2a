/** What the dialects and HTTP handlers share: one object per running server. */
import type { Logger } from 'pino';
import type { AppRegistry } from './apps.js';
import type { ChorusConfig } from './config.js';
import type { Engine } from './engine/types.js';
import type { Hub } from './hub.js';
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
  /** Unique per server instance, so connection ids stay unique across nodes. */
  newConnectionId(): string;
  readonly startedAt: number;
  shuttingDown: boolean;
}
