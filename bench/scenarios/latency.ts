/**
 * Latency under load, and the same with slow readers.
 *
 * 1 publisher → N subscribers on one channel, published open-loop at fixed rates (a ladder of
 * steps on the same connections, e.g. 10 %, 25 % and 50 % of the saturation rate measured just
 * before). Each message carries its *intended* send time, so a stall anywhere (generator timer,
 * server, kernel) counts as latency. Every `probeEvery`-th subscriber is a probe that reads the
 * timestamps; the others only count frames. The generator's own event-loop delay is recorded
 * too: when it is large, part of the latency is the generator's.
 *
 * With `slowFraction` > 0, that share of the subscribers (never probes) stop reading when
 * publishing starts: the server has to queue for them once the kernel's buffers are full. The
 * server's RSS is sampled every second, to see whether memory stays bounded, and the result
 * says how many slow subscribers the server disconnected.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { LatencyRecorder, RatePublisher, RawWebSocket, SubscriberPool, messagePayload, type LatencySummary } from '../lib/loadgen.ts';
import { between, contentionWarnings, describeCore, drain, runPhase, type Interval } from '../lib/measure.ts';
import { channelEndpoint, startPeer, type Peer } from '../lib/peers.ts';
import { formatFixed, formatInteger, formatMiB, progress, sleep } from '../lib/report.ts';

export interface LatencyStepSettings {
  /** Messages published per second (each goes to every subscriber). */
  rate: number;
  /** Share of the saturation rate this step is (for labels only; NaN when not relative). */
  load: number;
  warmupMs: number;
  durationMs: number;
  /** The slow subscribers stop reading when this step starts (and stay stopped). */
  slow?: boolean;
}

export interface LatencySettings {
  subscribers: number;
  size: number;
  /** Ascending rates, run one after the other on the same connections. */
  steps: LatencyStepSettings[];
  /** Every probeEvery-th subscriber records latencies. */
  probeEvery: number;
  /** Share of subscribers that stop reading in the steps marked `slow` (0 = none). */
  slowFraction: number;
  /** Extra environment for the server. */
  env?: Record<string, string>;
  label?: string;
}

export interface RssPoint {
  /** Seconds since the slow readers stopped reading (or since publishing started, without slow readers). */
  atSeconds: number;
  /** RSS growth since that moment, bytes. */
  growth: number;
}

export interface LatencyStep {
  rate: number;
  load: number;
  slow: boolean;
  latency: LatencySummary;
  measurement: Interval;
  /** Deliveries to subscribers that read, per second. */
  deliveredPerSecond: number;
  /** The generator's worst lag behind its schedule (ms) during the measurement. */
  generatorMaxLagMs: number;
  /** The generator's event-loop delay (ms): p99 and max during the measurement. */
  generatorLoopDelayP99Ms: number;
  generatorLoopDelayMaxMs: number;
  warnings: string[];
}

export interface LatencyResult {
  server: string;
  subscribers: number;
  steps: LatencyStep[];
  slowSubscribers: number;
  /** Slow subscribers the server disconnected during the run. */
  slowDisconnected: number;
  /** Reading subscribers that were disconnected (should be 0). */
  fastDisconnected: number;
  /** Deliveries to reading subscribers missing after draining. */
  undelivered: number;
  /** Server RSS sampled every second: since slow readers stopped, or since publishing started when none did. */
  rssTimeline: RssPoint[];
  warnings: string[];
}

export async function runLatency(peer: Peer, settings: LatencySettings): Promise<LatencyResult> {
  const label = settings.label ?? peer.id;
  const firstStep = settings.steps[0];
  if (!firstStep) throw new Error('runLatency needs at least one rate');
  const server = await startPeer(peer, settings.env);
  const recorder = new LatencyRecorder();
  const loopDelay = monitorEventLoopDelay({ resolution: 1 });
  let subscribers: SubscriberPool | undefined;
  let publisher: RatePublisher | undefined;
  try {
    const endpoint = channelEndpoint(peer, server, 'latency');
    subscribers = await SubscriberPool.open(endpoint, settings.subscribers, { probe: { every: settings.probeEvery, onStamp: recorder.record } });
    publisher = new RatePublisher(await RawWebSocket.connect(endpoint), messagePayload(peer.dialect, settings.size, true), firstStep.rate);
    const slowEvery = settings.slowFraction > 0 ? Math.round(1 / settings.slowFraction) : 0;
    const isSlow = (index: number): boolean => slowEvery > 0 && index % slowEvery === Math.floor(slowEvery / 2) && index % settings.probeEvery !== 0;
    const slow = subscribers.clients.filter((_, index) => isSlow(index));
    const fast = subscribers.clients.filter((_, index) => !isSlow(index));
    progress(
      label,
      `pid ${server.pid}: ${formatInteger(subscribers.size)} subscribers (${Math.ceil(settings.subscribers / settings.probeEvery)} probes` +
        (slow.length ? `, ${slow.length} that stop reading` : '') +
        `) + 1 publisher`,
    );

    const rssTimeline: RssPoint[] = [];
    let rssFrom = server.rss();
    let rssSince = performance.now();
    const fastDelivered = (): number => {
      let total = 0;
      for (const client of fast) total += client.frames.messages;
      return total;
    };
    const rate = publisher;
    let slowStopped = false;
    const rssExtra = (): string => {
      const rss = server.rss();
      if (rss === undefined || rssFrom === undefined) return '';
      if (slowStopped || slow.length === 0) rssTimeline.push({ atSeconds: (performance.now() - rssSince) / 1000, growth: rss - rssFrom });
      const closed = slow.filter((client) => client.closed).length;
      return `RSS +${formatMiB(rss - rssFrom)}` + (slow.length ? `, slow readers cut ${closed}` : '') + `, lag ${formatFixed(rate.maxLagMs, 1)} ms`;
    };

    const steps: LatencyStep[] = [];
    publisher.start();
    for (const step of settings.steps) {
      if (step.slow && !slowStopped && slow.length > 0) {
        for (const client of slow) client.stopReading();
        slowStopped = true;
        rssFrom = server.rss();
        rssSince = performance.now();
        progress(label, `${slow.length} subscribers stop reading now`);
      }
      publisher.setRate(step.rate);
      const phase = step.slow ? 'slow' : Number.isFinite(step.load) ? `${Math.round(step.load * 100)}%` : 'measure';
      progress(label, `${formatInteger(step.rate)} msg/s × ${formatInteger(fast.length)} reading subscribers = ${formatInteger(step.rate * fast.length)} deliveries/s`);
      if (step.warmupMs > 0) await runPhase(label, 'warm-up', step.warmupMs, server, fastDelivered, 'msg/s', rssExtra);
      recorder.reset();
      recorder.recording = true;
      publisher.resetLag();
      loopDelay.reset();
      loopDelay.enable();
      const [start, end] = await runPhase(label, phase, step.durationMs, server, fastDelivered, 'msg/s', rssExtra);
      loopDelay.disable();
      recorder.recording = false;
      const measurement = between(start, end);
      const result: LatencyStep = {
        rate: step.rate,
        load: step.load,
        slow: step.slow === true,
        latency: recorder.summary(),
        measurement,
        deliveredPerSecond: measurement.perSecond,
        generatorMaxLagMs: publisher.maxLagMs,
        generatorLoopDelayP99Ms: loopDelay.percentile(99) / 1e6,
        generatorLoopDelayMaxMs: loopDelay.max / 1e6,
        warnings: [],
      };
      const offered = step.rate * fast.length;
      const generatorBusy = Math.max(measurement.generatorUtilization, measurement.generatorCore?.busy ?? 0);
      result.warnings = [
        ...contentionWarnings(measurement),
        ...(measurement.perSecond < 0.95 * offered
          ? [`at ${formatInteger(step.rate)} msg/s: delivered ${formatInteger(measurement.perSecond)}/s to reading subscribers, below the offered ${formatInteger(offered)}/s: the server could not keep up`]
          : []),
        ...(result.generatorLoopDelayP99Ms > 5 || generatorBusy > 0.9
          ? [
              `at ${formatInteger(step.rate)} msg/s: the generator was busy (${describeCore(measurement.generatorCore, measurement.generatorUtilization)}, ` +
                `event-loop delay p99 ${formatFixed(result.generatorLoopDelayP99Ms, 1)} ms, max ${formatFixed(result.generatorLoopDelayMaxMs, 1)} ms): part of the latency is the generator's`,
            ]
          : []),
      ];
      steps.push(result);
      const { latency } = result;
      progress(
        label,
        `${phase} (${formatInteger(step.rate)} msg/s): p50 ${formatFixed(latency.p50, 2)} ms, p99 ${formatFixed(latency.p99, 2)} ms, p99.9 ${formatFixed(latency.p999, 2)} ms, ` +
          `max ${formatFixed(latency.max, 1)} ms (${formatInteger(latency.samples)} samples); server ${describeCore(measurement.serverCore, measurement.serverUtilization)}; ` +
          `generator loop delay p99 ${formatFixed(result.generatorLoopDelayP99Ms, 1)} ms`,
      );
    }
    publisher.stop();
    const expected = publisher.sent * fast.length;
    await drain(fastDelivered, expected);
    // A reader that stopped cannot notice being disconnected: let the slow ones read again, so a
    // server's close (after what the kernel still holds for them) shows up as EOF or a close frame.
    const slowDisconnected = slowStopped ? await disconnectedAfterResume(slow) : 0;

    const result: LatencyResult = {
      server: peer.id,
      subscribers: settings.subscribers,
      steps,
      slowSubscribers: slow.length,
      slowDisconnected,
      fastDisconnected: fast.filter((client) => client.closed).length,
      undelivered: expected - fastDelivered(),
      rssTimeline,
      warnings: [],
    };
    result.warnings = [
      ...steps.flatMap((step) => step.warnings),
      ...(result.fastDisconnected > 0 ? [`${result.fastDisconnected} reading subscribers were disconnected`] : []),
      ...(result.undelivered > 0 ? [`${formatInteger(result.undelivered)} deliveries to reading subscribers missing after draining`] : []),
    ];
    if (slow.length) progress(label, `RSS growth max ${formatMiB(maxGrowth(rssTimeline))}, slow readers disconnected ${result.slowDisconnected}/${slow.length}`);
    for (const warning of result.warnings) progress(label, `WARNING: ${warning}`);
    return result;
  } finally {
    loopDelay.disable();
    publisher?.close();
    subscribers?.close();
    await server.stop();
  }
}

/** Resumes reading on `clients` until they have drained what the kernel held (≤ 3 s); returns how many the server had closed. */
async function disconnectedAfterResume(clients: readonly RawWebSocket[]): Promise<number> {
  for (const client of clients) client.socket.resume();
  let last = -1;
  for (let waited = 0; waited < 3000; waited += 250) {
    await sleep(250);
    const read = clients.reduce((sum, client) => sum + client.socket.bytesRead, 0);
    if (read === last) break;
    last = read;
  }
  return clients.filter((client) => client.closed).length;
}

export function maxGrowth(timeline: readonly RssPoint[]): number {
  return timeline.reduce((max, point) => Math.max(max, point.growth), 0);
}

/**
 * RSS growth rate over the last third of the run (bytes/s, least-squares slope, which is less
 * sensitive to GC jitter than two end points): ≈ 0 once memory has stopped growing (bounded),
 * clearly positive while it still grows.
 */
export function finalGrowthRate(timeline: readonly RssPoint[]): number {
  const points = timeline.slice(Math.floor((timeline.length * 2) / 3));
  if (points.length < 3) return NaN;
  const n = points.length;
  const meanX = points.reduce((sum, point) => sum + point.atSeconds, 0) / n;
  const meanY = points.reduce((sum, point) => sum + point.growth, 0) / n;
  let numerator = 0;
  let denominator = 0;
  for (const point of points) {
    numerator += (point.atSeconds - meanX) * (point.growth - meanY);
    denominator += (point.atSeconds - meanX) ** 2;
  }
  return denominator > 0 ? numerator / denominator : NaN;
}
