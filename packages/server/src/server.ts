/**
 * The Chorus server: one HTTP server carrying WebSocket upgrades, REST and the example pages,
 * on top of the Hub and an Engine. `start()` listens; `close()` is the graceful shutdown:
 * refuse new upgrades → tell clients to reconnect elsewhere, in batches over drainWindowMs
 * (drain.ts) → stop listening → let them close, up to shutdownTimeoutMs → cut the rest → close
 * the engine.
 */
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { pino, type Logger } from 'pino';
import { CloseCodes } from '@chorus/protocol';
import { AppRegistry } from './apps.js';
import { ConfigError, resolveConfig, type ChorusConfig, type ChorusConfigInput, type TlsConfig } from './config.js';
import type { ServerContext } from './context.js';
import { DIALECTS } from './dialects/index.js';
import { DRAIN_TICK_MS, drainConnections } from './drain.js';
import { closeYjsRooms, yjsStats } from './dialects/yjs/index.js';
import { createEngine } from './engine/index.js';
import { EngineState } from './engine/state.js';
import { EngineOutage } from './engine-outage.js';
import { Heartbeat } from './heartbeat.js';
import { ConnectionGuard } from './http/connection-guard.js';
import { createRequestHandler } from './http/router.js';
import { Hub } from './hub.js';
import { ServerMetrics } from './metrics/prometheus.js';
import { ServerStats } from './metrics/stats.js';
import { OutboundScheduler } from './outbound.js';
import { ConnectionRegistry } from './registry.js';
import { UpgradeHandler } from './upgrade.js';
import { UserConnections } from './users.js';
import { Webhooks } from './webhooks/index.js';
import { ActivityFeed } from './admin/activity.js';
import { adminClose } from './admin/api.js';
import { applyStoredApps, reloadApp } from './admin/managed-apps.js';

const DEFAULT_EXAMPLES_DIR = fileURLToPath(new URL('../../../examples/', import.meta.url));
const CLIENT_BUNDLE_DIR = fileURLToPath(new URL('../../client/dist/', import.meta.url));
const ADMIN_UI_DIR = fileURLToPath(new URL('../admin-ui/', import.meta.url));

export interface ServerOptions {
  /** A pino logger; by default one is created at the config's logLevel, writing to stdout. */
  logger?: Logger;
  /** Folder served under /examples/ (defaults to the repository's examples/). */
  examplesDir?: string;
}

export class ChorusServer {
  readonly config: ChorusConfig;
  readonly log: Logger;
  readonly #ctx: ServerContext;
  readonly #http: Server;
  readonly #upgrades: UpgradeHandler;
  readonly #guard: ConnectionGuard;
  #heartbeat: Heartbeat | undefined;
  readonly #outage: EngineOutage;
  #closing: Promise<void> | undefined;

  constructor(config: ChorusConfig, options: ServerOptions = {}) {
    this.config = config;
    this.log = options.logger ?? pino({ level: config.logLevel });
    const scheduler = new OutboundScheduler(config.closeTimeoutMs);
    const activity = new ActivityFeed();
    const hub = new Hub(scheduler, activity);
    const apps = new AppRegistry(config.apps);
    let connectionCount = 0;
    const nodeId = randomBytes(4).toString('hex');
    const engineState = new EngineState();
    const connections = new ConnectionRegistry(this.log, activity);
    const stats = new ServerStats();
    const metrics = config.metrics.enabled
      ? new ServerMetrics(config.metrics.prefix, { stats, hub, apps, engine: engineState, engineType: config.engine.type })
      : undefined;
    if (metrics) hub.onLatencySample = (acceptedAt) => metrics.deliveryLatency.observe(Math.max(0, Date.now() - acceptedAt) / 1000);
    const engine = createEngine(config, {
      handlers: {
        onPublication: hub.deliver,
        onGap: hub.gap,
        onControl: (message) => {
          if (message.kind === 'terminate-user') this.#ctx.users.terminate(message.appId, message.userId, adminClose(message.code, message.reason, CloseCodes.TERMINATED));
          if (message.kind === 'disconnect-connection') {
            const found = this.#ctx.connections.byId(message.connectionId);
            if (found?.appId === message.appId) found.connection.close(adminClose(message.code, message.reason, CloseCodes.TERMINATED));
          }
          if (message.kind === 'activity-watch' || message.kind === 'activity') return activity.onControl(message);
          if (message.kind === 'app-changed') reloadApp(this.#ctx, message.appId).catch((error: unknown) => this.log.warn({ err: error, app: message.appId }, 'changed app not reloaded'));
          for (const dialect of DIALECTS) dialect.onControl?.(this.#ctx, message);
        },
        onCountChange: (change) => {
          this.#ctx.webhooks.onCountChange(change);
          for (const dialect of DIALECTS) dialect.onCountChange?.(this.#ctx, change);
        },
      },
      policy: (appId, channel) => {
        const app = apps.byId(appId);
        if (!app) throw new Error(`no app ${appId}`);
        return app.historyPolicy(channel);
      },
      localStats: () => ({ connections: this.#ctx.connections.size, channels: hub.channelCount }),
      nodeId,
      log: this.log,
      state: engineState,
    });
    this.#ctx = {
      config,
      apps,
      engine,
      webhooks: new Webhooks(apps, engine.counts, config.webhooks, this.log, activity),
      activity,
      hub,
      scheduler,
      log: this.log,
      connections,
      users: new UserConnections(),
      stats,
      engineState,
      metrics,
      newConnectionId: () => `${nodeId}.${(++connectionCount).toString(36)}`,
      startedAt: Date.now(),
      shuttingDown: false,
      drain: undefined,
      outage: undefined,
    };
    this.#outage = this.#ctx.outage = new EngineOutage(this.#ctx);
    metrics?.addWebhookMetrics(() => this.#ctx.webhooks.stats);
    metrics?.addYjsMetrics(() => yjsStats(this.#ctx));
    hub.bind(this.#ctx.engine);
    activity.bind(nodeId, (message) => this.#ctx.engine.broadcast(message));
    this.#ctx.users.bind(this.#ctx.engine.counts);
    this.#upgrades = new UpgradeHandler(this.#ctx, DIALECTS);
    const handler = createRequestHandler(this.#ctx, { examplesDir: options.examplesDir ?? DEFAULT_EXAMPLES_DIR, clientDir: CLIENT_BUNDLE_DIR, adminDir: ADMIN_UI_DIR });
    // Slowloris defence: the request head must arrive within headersTimeoutMs. Node checks that
    // deadline only every connectionsCheckingInterval (30 s by default), so check often enough.
    // Node only reports the timeout, though: ConnectionGuard destroys the connection, with a
    // deadline of its own from the accept (over TLS, from the end of the TLS handshake, which
    // handshakeTimeout bounds). Once upgraded, the handshake deadline in upgrade.ts and the
    // heartbeat take over.
    const timeouts = {
      headersTimeout: config.headersTimeoutMs,
      requestTimeout: Math.max(config.headersTimeoutMs, 30_000),
      connectionsCheckingInterval: Math.min(1000, Math.max(100, Math.floor(config.headersTimeoutMs / 4))),
    };
    this.#http = config.tls
      ? createHttpsServer({ ...readTls(config.tls), ...timeouts, handshakeTimeout: config.headersTimeoutMs }, handler)
      : createHttpServer(timeouts, handler);
    this.#guard = new ConnectionGuard(this.#http, { headersTimeoutMs: config.headersTimeoutMs, closeTimeoutMs: config.closeTimeoutMs, tls: config.tls !== undefined, log: this.log });
    this.#http.on('upgrade', this.#upgrades.handle);
    this.#http.on('clientError', this.#guard.clientError);
  }

  /** Starts listening on config.port (0 picks a free port) and resolves with the bound address. */
  async start(): Promise<AddressInfo> {
    await this.#applyStoredApps();
    await new Promise<void>((resolve, reject) => {
      this.#http.once('error', reject);
      this.#http.listen(this.config.port, this.config.host, () => {
        this.#http.off('error', reject);
        resolve();
      });
    });
    this.#heartbeat = new Heartbeat(this.#ctx.connections, this.config.heartbeatIntervalMs);
    const address = this.address;
    this.#ctx.metrics?.listening(address.port);
    this.log.info({ port: address.port, host: address.address }, 'listening');
    return address;
  }

  /**
   * Apps added or changed through the admin API, over the config's. With the engine away (Redis
   * down at start) the node starts with its config's apps and tries again every few seconds.
   */
  async #applyStoredApps(): Promise<void> {
    try {
      await applyStoredApps(this.#ctx);
    } catch (error) {
      if (this.#ctx.shuttingDown) return;
      this.log.warn({ err: error }, 'apps managed through the admin API not loaded (engine unreachable); retrying in 5 s');
      setTimeout(() => void this.#applyStoredApps(), 5_000).unref();
    }
  }

  get address(): AddressInfo {
    const address = this.#http.address();
    if (address === null || typeof address === 'string') throw new Error('server is not listening');
    return address;
  }

  /** `http` or `https`, as served. */
  get scheme(): 'http' | 'https' {
    return this.config.tls ? 'https' : 'http';
  }

  get port(): number {
    return this.address.port;
  }

  /** Graceful shutdown; safe to call more than once. */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  async #shutdown(): Promise<void> {
    const ctx = this.#ctx;
    ctx.shuttingDown = true;
    this.#heartbeat?.stop();
    this.#outage.stop();
    const windowMs = this.config.drainWindowMs;
    const count = ctx.connections.size;
    if (windowMs > 0 && count > 0) {
      this.log.info({ connections: count, drainWindowMs: windowMs }, 'draining');
      const started = performance.now();
      // Still listening meanwhile: /health says `draining` (so a load balancer stops sending
      // clients here) and new upgrades are refused with 503 and Retry-After (upgrade.ts). v1
      // clients are told to come back at a random moment within one batch's tick, which turns
      // the batches into a steady stream of reconnects on the other nodes.
      ctx.drain = { reconnectSpreadMs: DRAIN_TICK_MS };
      await drainConnections(ctx.connections, windowMs);
      ctx.drain = undefined;
      this.log.info({ connections: count, ms: Math.round(performance.now() - started) }, 'drained');
    }
    const httpClosed = new Promise<void>((resolve) => this.#http.close(() => resolve()));
    this.#http.closeIdleConnections();

    // Whatever is still open: handshakes in progress, connections admitted during the drain
    // (close() is a no-op on those the drain closed already), or all of them with no window.
    const open = [...ctx.connections];
    const allClosed = Promise.all(open.map((c) => new Promise<void>((resolve) => {
      if (c.ws.readyState === c.ws.CLOSED) return resolve();
      c.ws.once('close', () => resolve());
      c.close(CloseCodes.GOING_AWAY);
    })));
    let deadline: NodeJS.Timeout | undefined;
    await Promise.race([allClosed, new Promise<void>((resolve) => (deadline = setTimeout(resolve, this.config.shutdownTimeoutMs)))]);
    clearTimeout(deadline);
    for (const connection of ctx.connections) connection.terminate();

    this.#upgrades.close();
    this.#guard.close();
    this.#http.closeAllConnections();
    await httpClosed;
    await closeYjsRooms(ctx);
    await ctx.webhooks.close();
    await ctx.engine.close();
    this.log.info('stopped');
  }
}

/** Resolves the config (filling defaults), builds the server and starts it. */
export async function startServer(input: ChorusConfigInput = {}, options: ServerOptions = {}): Promise<ChorusServer> {
  const server = new ChorusServer(resolveConfig(input), options);
  await server.start();
  return server;
}

function readTls(tls: TlsConfig): { cert: Buffer; key: Buffer } {
  const read = (field: 'cert' | 'key'): Buffer => {
    try {
      return readFileSync(tls[field]);
    } catch (error) {
      throw new ConfigError(`tls.${field}: cannot read ${tls[field]} (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
    }
  };
  return { cert: read('cert'), key: read('key') };
}
