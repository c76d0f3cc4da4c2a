/**
 * GET /metrics in the Prometheus text format, with prom-client. Nothing here runs per message:
 * the hot paths count in plain fields (stats.ts, Hub.delivered), and every metric below reads
 * them in its `collect()` callback when Prometheus scrapes. Only the two histograms are fed
 * directly, by samples (1 publication in 16; engine round trips).
 *
 * Names follow soketi's (`connected`, `new_connections_total`, `socket_received_bytes`, …, which
 * sockudo kept), under a configurable prefix, so a soketi dashboard works after a prefix change.
 * Every name is listed in docs/operations.md.
 */
import { readdir } from 'node:fs/promises';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { AppRegistry } from '../apps.js';
import type { EngineState } from '../engine/state.js';
import type { Hub } from '../hub.js';
import type { ServerStats, Traffic } from './stats.js';
import type { WebhookStats } from '../webhooks/dispatcher.js';

/** What the metrics read at scrape time. */
export interface MetricSources {
  readonly stats: ServerStats;
  readonly hub: Hub;
  readonly apps: AppRegistry;
  readonly engine: EngineState;
  readonly engineType: string;
}

/** Publish → socket write, in seconds: from sub-millisecond (one node) to seconds (a backlog). */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const COMMAND_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

type Labels = Record<string, string | number>;
/** One value per label set, read from the sources at scrape time. */
type Reading = ReadonlyArray<readonly [Labels, number]>;

export class ServerMetrics {
  /** Where the server's metrics live; a module with metrics of its own registers them here too. */
  readonly registry = new Registry();
  readonly prefix: string;
  /** Publish → socket write of sampled publications (the Hub's onLatencySample). */
  readonly deliveryLatency: Histogram;
  readonly #commandDuration: Histogram<'command'>;
  readonly #sources: MetricSources;
  /**
   * Node's process metrics, made at the first scrape: they start a timer and a GC observer that
   * prom-client never stops, which a server nobody scrapes (a test's) should not pay for.
   */
  #processMetrics: Registry | undefined;
  #labels: Record<string, string> = {};

  constructor(prefix: string, sources: MetricSources) {
    this.prefix = prefix;
    this.#sources = sources;
    this.#defineConnectionMetrics();
    this.#defineMessageMetrics();
    this.#defineEngineMetrics();
    this.deliveryLatency = new Histogram({
      name: this.name('delivery_latency_seconds'),
      help: 'Publish (accepted by the engine) to socket write, for 1 message publication in 16 (1 ms resolution).',
      buckets: LATENCY_BUCKETS,
      registers: [this.registry],
    });
    this.#commandDuration = new Histogram({
      name: this.name('engine_command_duration_seconds'),
      help: 'Round trips of engine commands: the liveness probe every engine.probeIntervalMs, and 1 publish in 16 (Redis engine only).',
      labelNames: ['command'],
      buckets: COMMAND_BUCKETS,
      registers: [this.registry],
    });
    sources.engine.commandTimed = (command, ms) => this.#commandDuration.observe({ command }, ms / 1000);
  }

  /** A metric name with the configured prefix: use it for metrics registered from elsewhere. */
  name(suffix: string): string {
    return `${this.prefix}${suffix}`;
  }

  /** The server listens on `port`: every metric gets soketi's `port` label. */
  listening(port: number): void {
    this.#labels = { port: String(port) };
    this.registry.setDefaultLabels(this.#labels);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The text Prometheus reads. */
  async scrape(): Promise<string> {
    if (!this.#processMetrics) {
      // Event-loop lag, heap, RSS, CPU, GC…: prom-client's defaults, with the same prefix and labels.
      this.#processMetrics = new Registry();
      collectDefaultMetrics({ register: this.#processMetrics, prefix: this.prefix, labels: this.#labels });
      countOpenFdsOffThread(this.#processMetrics, this.prefix, this.#labels);
      throttleWalkingMetrics(this.#processMetrics, this.prefix);
    }
    const [own, process] = await Promise.all([this.registry.metrics(), this.#processMetrics.metrics()]);
    return `${own}\n${process}`;
  }

  #defineConnectionMetrics(): void {
    const { stats, hub, apps } = this.#sources;
    const byTraffic = (value: (traffic: Traffic) => number): Reading => perTraffic(stats, value);
    const trafficLabels = ['app_id', 'dialect'];
    this.#gauge('connected', 'Open WebSocket connections.', trafficLabels, () => byTraffic((t) => t.opened - t.closed));
    this.#counter('new_connections_total', 'WebSocket connections admitted.', trafficLabels, () => byTraffic((t) => t.opened));
    this.#counter('new_disconnections_total', 'WebSocket connections closed.', trafficLabels, () => byTraffic((t) => t.closed));
    this.#counter('socket_received_bytes', 'Bytes read from WebSocket connections (frames and handshake).', trafficLabels, () =>
      byTraffic((t) => t.bytesIn),
    );
    this.#counter('socket_transmitted_bytes', 'Bytes written to WebSocket connections (frames and handshake).', trafficLabels, () =>
      byTraffic((t) => t.bytesOut),
    );
    this.#counter('slow_consumer_disconnections_total', 'Connections cut for reading too slowly (limits.maxPendingBytes).', trafficLabels, () => byTraffic((t) => t.slowConsumers));
    this.#counter('connection_refusals_total', 'Refused WebSocket upgrades, by dialect and code (a close code, or an HTTP status).', ['dialect', 'code'], () =>
      [...stats.refusals.values()].map(({ dialect, code, count }) => [{ dialect, code }, count] as const),
    );
    const perApp = (value: (appId: string) => number): Reading => apps.all.map((app) => [{ app_id: app.id }, value(app.id)] as const);
    this.#gauge('channels', 'Channels with subscribers on this node.', ['app_id'], () => perApp((id) => hub.countsOf(id).channels));
    this.#gauge('subscriptions', 'Subscriptions (connection × channel) on this node.', ['app_id'], () => perApp((id) => hub.countsOf(id).subscriptions));
  }

  #defineMessageMetrics(): void {
    const { stats, hub } = this.#sources;
    const byTraffic = (value: (traffic: Traffic) => number): Reading => perTraffic(stats, value);
    const trafficLabels = ['app_id', 'dialect'];
    this.#counter('ws_messages_received_total', 'WebSocket messages received from clients.', trafficLabels, () => byTraffic((t) => t.messagesIn));
    this.#counter('ws_messages_sent_total', 'WebSocket messages sent to clients (publications, replies, errors).', trafficLabels, () => byTraffic((t) => t.messagesOut));
    this.#counter('rate_limited_messages_total', 'Messages refused by a rate limit (limits.messagesPerSecond, pusher.clientEventsPerSecond).', trafficLabels, () => byTraffic((t) => t.rateLimited));
    this.#counter('publications_total', 'Messages handed to the engine to publish, by source: websocket, rest, pusher_http.', ['app_id', 'source'], () => [
      ...websocketTotals(stats, (t) => t.published),
      ...[...stats.allHttpPublications()].map(([appId, source, counts]) => [{ app_id: appId, source }, counts.published] as const),
    ]);
    this.#counter('schema_refused_messages_total', "Messages refused by their channel's JSON Schema, by source.", ['app_id', 'source'], () => [
      ...websocketTotals(stats, (t) => t.schemaRefused),
      ...[...stats.allHttpPublications()].map(([appId, source, counts]) => [{ app_id: appId, source }, counts.schemaRefused] as const),
    ]);
    this.#counter('deliveries_total', 'Publication frames handed to subscribers on this node.', [], () => [[{}, hub.delivered]]);
    const byRoute = (value: (calls: { calls: number; bytesIn: number; bytesOut: number }) => number): Reading =>
      [...stats.http].map(([route, calls]) => [{ route }, value(calls)] as const);
    this.#counter('http_calls_received_total', 'HTTP requests (not WebSocket upgrades), by route.', ['route'], () => byRoute((c) => c.calls));
    this.#counter('http_received_bytes', 'HTTP request body bytes, by route.', ['route'], () => byRoute((c) => c.bytesIn));
    this.#counter('http_transmitted_bytes', 'HTTP response body bytes, by route.', ['route'], () => byRoute((c) => c.bytesOut));
  }

  /** Yjs rooms on this node (dialects/yjs), read at scrape time. */
  addYjsMetrics(read: () => { rooms: number; documentBytes: number; updates: number }): void {
    this.#gauge('yjs_rooms', 'Yjs rooms loaded on this node.', [], () => [[{}, read().rooms]]);
    this.#gauge('yjs_document_bytes', 'Encoded size of the Yjs documents loaded on this node.', [], () => [[{}, read().documentBytes]]);
    this.#counter('yjs_updates_total', 'Yjs document updates applied on this node.', [], () => [[{}, read().updates]]);
  }

  /** Webhook delivery (webhooks/dispatcher.ts), read at scrape time; added once the webhooks exist. */
  addWebhookMetrics(read: () => Readonly<WebhookStats>): void {
    this.#counter('webhook_events_delivered_total', 'Webhook events a receiver took (answered 2xx).', [], () => [[{}, read().delivered]]);
    this.#counter('webhook_failed_requests_total', 'Webhook requests that failed (network error, timeout, non-2xx); each retry counts.', [], () => [[{}, read().failedAttempts]]);
    this.#counter('webhook_events_dropped_total', 'Webhook events dropped: the queue was full (webhooks.maxQueuedEvents) or their retries ran out (webhooks.retryForMs).', [], () => [[{}, read().dropped]]);
    this.#gauge('webhook_queued_events', 'Webhook events waiting for delivery.', [], () => [[{}, read().queued]]);
  }

  #defineEngineMetrics(): void {
    const { engine, engineType } = this.#sources;
    this.#gauge('engine_up', 'Whether the engine can serve commands (1) or not (0): Redis reachable; the memory engine always.', ['engine'], () => [[{ engine: engineType }, engine.up ? 1 : 0]]);
    this.#counter('engine_reconnects_total', 'Times the engine lost its backing service (Redis) and got it back.', ['engine'], () => [[{ engine: engineType }, engine.reconnects]]);
  }

  /** A gauge whose values are read at scrape time. */
  #gauge(suffix: string, help: string, labelNames: string[], read: () => Reading): void {
    new Gauge({
      ...this.#options(suffix, help, labelNames),
      collect() {
        this.reset();
        for (const [labels, value] of read()) this.set(labels, value);
      },
    });
  }

  /** A counter whose totals are read at scrape time (the plain fields only ever grow). */
  #counter(suffix: string, help: string, labelNames: string[], read: () => Reading): void {
    new Counter({
      ...this.#options(suffix, help, labelNames),
      collect() {
        this.reset();
        for (const [labels, value] of read()) this.inc(labels, value);
      },
    });
  }

  #options(suffix: string, help: string, labelNames: string[]): { name: string; help: string; labelNames: string[]; registers: Registry[] } {
    return { name: this.name(suffix), help, labelNames, registers: [this.registry] };
  }
}

/** A traffic figure per app and dialect. */
function perTraffic(stats: ServerStats, value: (traffic: Traffic) => number): Reading {
  return [...stats.allTraffic].map((traffic) => [{ app_id: traffic.appId, dialect: traffic.dialect }, value(traffic)] as const);
}

/** A traffic figure summed over the WebSocket dialects, per app, as source `websocket`. */
function websocketTotals(stats: ServerStats, value: (traffic: Traffic) => number): Reading {
  const totals = new Map<string, number>();
  for (const traffic of stats.allTraffic) totals.set(traffic.appId, (totals.get(traffic.appId) ?? 0) + value(traffic));
  return [...totals].map(([appId, total]) => [{ app_id: appId, source: 'websocket' }, total] as const);
}

/**
 * prom-client's defaults that walk every handle of the process: each socket is one, so at 19,000
 * connections one scrape of these took ~50 ms of the event loop (readdir of /proc/self/fd, and
 * arrays of every handle and resource), 5 % of a core when scraped every second. They are
 * counted at most once per this interval; scrapes in between repeat the last count. (The
 * listing of /proc/self/fd has since moved off the loop, see countOpenFdsOffThread; the arrays
 * of handles and resources, ~25 ms at 9,000 connections, cannot.)
 */
export const WALKING_METRICS_INTERVAL_MS = 10_000;
const WALKING_METRICS = ['process_open_fds', 'nodejs_active_handles', 'nodejs_active_handles_total', 'nodejs_active_resources', 'nodejs_active_resources_total', 'nodejs_active_requests', 'nodejs_active_requests_total'];

/** A metric with prom-client's `collect` hook (public as a constructor option, not in the type). */
interface Collectable {
  collect?: (() => unknown) | undefined;
}

/**
 * process_open_fds, listed on libuv's thread pool: prom-client lists /proc/self/fd with
 * readdirSync, which held the event loop ~30 ms at 9,000 connections. Here the loop only gets the
 * finished list.
 */
function countOpenFdsOffThread(registry: Registry, prefix: string, labels: Record<string, string>): void {
  const metric = registry.getSingleMetric(`${prefix}process_open_fds`) as (Gauge & Collectable) | undefined;
  if (!metric?.collect) return;
  metric.collect = async () => {
    try {
      // Minus the descriptor the listing itself had open, as prom-client does.
      metric.set(labels, (await readdir('/proc/self/fd')).length - 1);
    } catch {
      // Not Linux, or /proc is not mounted: the metric keeps its last value, as prom-client's does.
    }
  };
}

function throttleWalkingMetrics(registry: Registry, prefix: string): void {
  for (const name of WALKING_METRICS) {
    const metric = registry.getSingleMetric(`${prefix}${name}`) as Collectable | undefined;
    const collect = metric?.collect;
    if (!metric || !collect) continue;
    let lastAt = -Infinity;
    metric.collect = function (this: unknown) {
      const now = performance.now();
      if (now - lastAt < WALKING_METRICS_INTERVAL_MS) return undefined;
      lastAt = now;
      return collect.call(this);
    };
  }
}
