/**
 * Many small channels with chat-like traffic: C channels × 2 members; every message goes to a
 * random channel, sent by one of its two members and delivered to the other. A window of
 * messages in flight (sent, not yet delivered) keeps the server saturated. Each message is a
 * separate write on a separate socket, on both sides: this measures routing and per-message
 * overhead, which coalescing cannot hide (a socket rarely gets two messages in one turn).
 *
 * Connections: 2 × C in the generator process and in the server process, which must stay under
 * the 20,000 open files per process of this machine.
 */
import { SubscriberPool, maskedTextFrame, messagePayload } from '../lib/loadgen.ts';
import { between, describeCore, drain, runPhase, saturationWarnings, type Interval } from '../lib/measure.ts';
import { channelEndpoint, startPeer, type Peer } from '../lib/peers.ts';
import { formatFixed, formatInteger, progress } from '../lib/report.ts';

export interface ChannelsSettings {
  channels: number;
  size: number;
  /** Messages in flight. */
  window: number;
  warmupMs: number;
  durationMs: number;
  label?: string;
}

export interface ChannelsResult {
  server: string;
  channels: number;
  connections: number;
  connectMs: number;
  deliveredPerSecond: number;
  serverCpuSecondsPerMillion: number;
  measurement: Interval;
  sent: number;
  undelivered: number;
  closed: number;
  warnings: string[];
}

export async function runChannels(peer: Peer, settings: ChannelsSettings): Promise<ChannelsResult> {
  const label = settings.label ?? peer.id;
  const server = await startPeer(peer);
  let members: SubscriberPool | undefined;
  let stopPump: (() => void) | undefined;
  try {
    const connectStart = performance.now();
    const connections = settings.channels * 2;
    let lastReport = connectStart;
    members = await SubscriberPool.open((index) => {
      if (performance.now() - lastReport > 2000) {
        lastReport = performance.now();
        progress(label, `connecting: ${formatInteger(index)} of ${formatInteger(connections)}`);
      }
      return channelEndpoint(peer, server, `chat-${index >> 1}`);
    }, connections, { concurrency: 256 });
    const connectMs = performance.now() - connectStart;
    progress(label, `pid ${server.pid}: ${formatInteger(settings.channels)} channels × 2 members connected in ${Math.round(connectMs)} ms`);

    const pool = members;
    const clients = pool.clients;
    const frame = maskedTextFrame(messagePayload(peer.dialect, settings.size));
    let sent = 0;
    stopPump = pool.pumpOnDelivery(() => {
      let budget = settings.window - (sent - pool.delivered);
      while (budget-- > 0) {
        const sender = clients[(Math.random() * clients.length) | 0]!;
        sender.send(frame);
        sent++;
      }
    });

    const delivered = (): number => pool.delivered;
    if (settings.warmupMs > 0) await runPhase(label, 'warm-up', settings.warmupMs, server, delivered);
    const [start, end] = await runPhase(label, 'measure', settings.durationMs, server, delivered);
    stopPump();
    await drain(delivered, sent);

    const measurement = between(start, end);
    const result: ChannelsResult = {
      server: peer.id,
      channels: settings.channels,
      connections,
      connectMs: Math.round(connectMs),
      deliveredPerSecond: measurement.perSecond,
      serverCpuSecondsPerMillion: measurement.serverCpuSeconds / (measurement.count / 1e6),
      measurement,
      sent,
      undelivered: sent - pool.delivered,
      closed: pool.closedCount,
      warnings: [],
    };
    result.warnings = [
      ...saturationWarnings(measurement),
      ...(result.undelivered !== 0 ? [`${formatInteger(result.undelivered)} of ${formatInteger(sent)} messages not delivered after draining`] : []),
      ...(result.closed > 0 ? [`${result.closed} connections were closed`] : []),
    ];
    progress(
      label,
      `result: ${formatInteger(result.deliveredPerSecond)} msg/s delivered, ${formatFixed(result.serverCpuSecondsPerMillion, 2)} server CPU-s per M; ` +
        `server ${describeCore(measurement.serverCore, measurement.serverUtilization)}, generator ${describeCore(measurement.generatorCore, measurement.generatorUtilization)}`,
    );
    for (const warning of result.warnings) progress(label, `WARNING: ${warning}`);
    return result;
  } finally {
    stopPump?.();
    members?.close();
    await server.stop();
  }
}
