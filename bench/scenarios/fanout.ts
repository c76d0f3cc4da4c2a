/**
 * Fan-out at saturation: 1 publisher → N subscribers on one channel. The publisher writes
 * `batch` pre-built frames per write and keeps at most `window` messages in flight (published
 * but not yet received by the average subscriber), so the server always has work and queues
 * stay bounded. Measures delivered messages/s (all subscribers together) and server CPU-seconds
 * per million deliveries; afterwards checks that every subscriber got every message.
 *
 * With `subscribers: 'pusher'` (Chorus only) the subscribers are Pusher protocol 7 clients at
 * `/app/{key}` subscribed to the same channel, while the publisher stays the raw client with the
 * same frames: only the egress dialect differs from the raw row. The core hands the raw text
 * `{"event":"bench","data":"xxx…"}` to Pusher subscribers as event `bench` on channel `bench`
 * (18 bytes more per delivery for `"channel":"bench",`).
 */
import { Publisher, RawWebSocket, SubscriberPool, messagePayload } from '../lib/loadgen.ts';
import { between, describeCore, drain, runPhase, saturationWarnings, type Interval } from '../lib/measure.ts';
import { channelEndpoint, pusherEndpoint, startPeer, type Peer } from '../lib/peers.ts';
import { formatFixed, formatInteger, progress } from '../lib/report.ts';

/** How long the flood scenario waits for a backlog to arrive after publishing stopped. */
const FLOOD_DRAIN_MS = 15_000;

export interface FanoutSettings {
  subscribers: number;
  /** WebSocket payload bytes per message (envelope included). */
  size: number;
  batch: number;
  /** Messages in flight; default: enough for ~100,000 deliveries in flight, at least two batches. */
  window?: number;
  warmupMs: number;
  durationMs: number;
  /** Progress label; default the peer id. */
  label?: string;
  /** How subscribers connect: the peer's own dialect (default) or Chorus's Pusher dialect. */
  subscriberDialect?: 'peer' | 'pusher';
  /** `socket`: the publisher writes as fast as its socket takes instead of keeping a window (see Publisher). */
  pace?: 'window' | 'socket';
}

export interface FanoutResult {
  server: string;
  subscribers: number;
  /** What the subscribers spoke: the peer's dialect, or `pusher`. */
  subscriberDialect: 'peer' | 'pusher';
  window: number;
  connectMs: number;
  /** Messages received by all subscribers together, per second of the measurement. */
  deliveredPerSecond: number;
  serverCpuSecondsPerMillion: number;
  measurement: Interval;
  /** Totals over the whole run, warm-up included, checked after draining. */
  published: number;
  undelivered: number;
  publisherEchoes: number;
  closedSubscribers: number;
  warnings: string[];
}

/** The default window: ~100,000 deliveries in flight (100 messages at 1,000 subscribers), at least two batches. */
export function defaultWindow(subscribers: number, batch: number): number {
  return Math.max(2 * batch, Math.round(100_000 / subscribers / batch) * batch);
}

export async function runFanout(peer: Peer, settings: FanoutSettings): Promise<FanoutResult> {
  const label = settings.label ?? peer.id;
  const window = settings.window ?? defaultWindow(settings.subscribers, settings.batch);
  const subscriberDialect = settings.subscriberDialect ?? 'peer';
  const server = await startPeer(peer);
  let subscribers: SubscriberPool | undefined;
  let publisher: Publisher | undefined;
  try {
    const endpoint = channelEndpoint(peer, server, 'bench');
    const connectStart = performance.now();
    subscribers = await SubscriberPool.open(subscriberDialect === 'pusher' ? pusherEndpoint(server, 'bench') : endpoint, settings.subscribers);
    publisher = new Publisher(await RawWebSocket.connect(endpoint), subscribers, {
      payload: messagePayload(peer.dialect, settings.size),
      batch: settings.batch,
      window,
      pace: settings.pace ?? 'window',
    });
    const connectMs = performance.now() - connectStart;
    progress(label, `pid ${server.pid}, port ${server.port}: ${formatInteger(subscribers.size)} ${subscriberDialect === 'pusher' ? 'Pusher ' : ''}subscribers + 1 publisher connected in ${Math.round(connectMs)} ms; window ${window} messages`);

    const pool = subscribers;
    const delivered = (): number => pool.delivered;
    publisher.start();
    if (settings.warmupMs > 0) await runPhase(label, 'warm-up', settings.warmupMs, server, delivered);
    const [start, end] = await runPhase(label, 'measure', settings.durationMs, server, delivered);
    publisher.stop();
    const expected = publisher.sent * subscribers.size;
    // Unpaced, a server that queues without bound (Socket.IO, the naive loop) can hold minutes of
    // backlog: what has not arrived 15 s after publishing stopped counts as missing.
    await drain(delivered, expected, 1_000, settings.pace === 'socket' ? FLOOD_DRAIN_MS : Infinity);

    const measurement = between(start, end);
    const result: FanoutResult = {
      server: peer.id,
      subscribers: settings.subscribers,
      subscriberDialect,
      window,
      connectMs: Math.round(connectMs),
      deliveredPerSecond: measurement.perSecond,
      serverCpuSecondsPerMillion: measurement.serverCpuSeconds / (measurement.count / 1e6),
      measurement,
      published: publisher.sent,
      undelivered: expected - subscribers.delivered,
      publisherEchoes: publisher.echoes,
      closedSubscribers: subscribers.closedCount,
      warnings: [],
    };
    result.warnings = [
      ...saturationWarnings(measurement),
      ...(result.undelivered !== 0 ? [`${formatInteger(result.undelivered)} deliveries missing after draining (${formatInteger(result.published)} messages × ${settings.subscribers} subscribers)`] : []),
      ...(result.closedSubscribers > 0 ? [`${result.closedSubscribers} subscribers were disconnected`] : []),
      ...(result.publisherEchoes > 0 ? [`the publisher received ${result.publisherEchoes} of its own messages`] : []),
    ];
    progress(
      label,
      `result: ${formatInteger(result.deliveredPerSecond)} msg/s delivered, ${formatFixed(result.serverCpuSecondsPerMillion, 2)} server CPU-s per M deliveries, ` +
        `${formatFixed(measurement.perServerWrite ?? NaN, 1)} deliveries per server write; ` +
        `server ${describeCore(measurement.serverCore, measurement.serverUtilization)}, generator ${describeCore(measurement.generatorCore, measurement.generatorUtilization)}`,
    );
    for (const warning of result.warnings) progress(label, `WARNING: ${warning}`);
    return result;
  } finally {
    publisher?.close();
    subscribers?.close();
    await server.stop();
  }
}
