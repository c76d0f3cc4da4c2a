/**
 * Ingress: P publishers, each on its own channel with exactly one subscriber, publish as fast as
 * the server accepts. "Accepted" is counted the same way for every peer: a message counts when
 * the channel's subscriber receives it (no peer exposes a comparable counter of its own), so
 * the number includes relaying each message once. Publishers pipeline: `batch` frames per
 * write, at most `window` messages in flight per channel.
 */
import { RawWebSocket, SubscriberPool, maskedTextFrame, messagePayload } from '../lib/loadgen.ts';
import { between, describeCore, drain, runPhase, saturationWarnings, type Interval } from '../lib/measure.ts';
import { channelEndpoint, startPeer, type Peer } from '../lib/peers.ts';
import { formatFixed, formatInteger, progress } from '../lib/report.ts';

export interface IngressSettings {
  publishers: number;
  size: number;
  batch: number;
  /** Messages in flight per channel. */
  window: number;
  warmupMs: number;
  durationMs: number;
  label?: string;
}

export interface IngressResult {
  server: string;
  publishers: number;
  acceptedPerSecond: number;
  serverCpuSecondsPerMillion: number;
  measurement: Interval;
  sent: number;
  undelivered: number;
  warnings: string[];
}

export async function runIngress(peer: Peer, settings: IngressSettings): Promise<IngressResult> {
  const label = settings.label ?? peer.id;
  const server = await startPeer(peer);
  let subscribers: SubscriberPool | undefined;
  const publishers: RawWebSocket[] = [];
  let stopPump: (() => void) | undefined;
  try {
    const endpoint = (index: number): ReturnType<typeof channelEndpoint> => channelEndpoint(peer, server, `ingress-${index}`);
    subscribers = await SubscriberPool.open(endpoint, settings.publishers);
    for (let index = 0; index < settings.publishers; index++) publishers.push(await RawWebSocket.connect(endpoint(index)));
    progress(label, `pid ${server.pid}: ${settings.publishers} publishers, each with 1 subscriber on its own channel; ${settings.batch} frames per write, window ${settings.window}`);

    const pool = subscribers;
    const frame = maskedTextFrame(messagePayload(peer.dialect, settings.size));
    const batchFrames = Buffer.concat(Array.from({ length: settings.batch }, () => frame));
    const sent = new Array<number>(settings.publishers).fill(0);
    stopPump = pool.pumpOnDelivery(() => {
      for (let index = 0; index < publishers.length; index++) {
        const received = pool.clients[index]!.frames.messages;
        while (sent[index]! - received + settings.batch <= settings.window) {
          publishers[index]!.send(batchFrames);
          sent[index]! += settings.batch;
        }
      }
    });

    const accepted = (): number => pool.delivered;
    if (settings.warmupMs > 0) await runPhase(label, 'warm-up', settings.warmupMs, server, accepted);
    const [start, end] = await runPhase(label, 'measure', settings.durationMs, server, accepted);
    stopPump();
    const total = sent.reduce((sum, count) => sum + count, 0);
    await drain(accepted, total);

    const measurement = between(start, end);
    const result: IngressResult = {
      server: peer.id,
      publishers: settings.publishers,
      acceptedPerSecond: measurement.perSecond,
      serverCpuSecondsPerMillion: measurement.serverCpuSeconds / (measurement.count / 1e6),
      measurement,
      sent: total,
      undelivered: total - pool.delivered,
      warnings: [],
    };
    result.warnings = [
      ...saturationWarnings(measurement),
      ...(result.undelivered !== 0 ? [`${formatInteger(result.undelivered)} of ${formatInteger(total)} messages not delivered after draining`] : []),
      ...(pool.closedCount > 0 ? [`${pool.closedCount} subscribers were disconnected`] : []),
      ...(publishers.some((publisher) => publisher.closed) ? [`${publishers.filter((publisher) => publisher.closed).length} publishers were disconnected`] : []),
    ];
    progress(
      label,
      `result: ${formatInteger(result.acceptedPerSecond)} msg/s accepted, ${formatFixed(result.serverCpuSecondsPerMillion, 2)} server CPU-s per M; ` +
        `server ${describeCore(measurement.serverCore, measurement.serverUtilization)}, generator ${describeCore(measurement.generatorCore, measurement.generatorUtilization)}`,
    );
    for (const warning of result.warnings) progress(label, `WARNING: ${warning}`);
    return result;
  } finally {
    stopPump?.();
    for (const publisher of publishers) publisher.close();
    subscribers?.close();
    await server.stop();
  }
}
