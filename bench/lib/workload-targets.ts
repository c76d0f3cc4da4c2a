/**
 * The targets of issue 14 (the workloads apps really have), judged against the peers of the same
 * run like the others in targets.ts: many small channels, ingress, idle memory, latency at the
 * same rate as Bun, fan-out at every size, and the unpaced publisher (scenario `flood`).
 */
import { formatFixed, formatInteger, formatKiB } from './report.ts';
import { compare, compareAtMost, type TargetResult } from './target-result.ts';
import type { FanoutRow, FloodRow, SuiteSummary } from './targets.ts';

const CHORUS = 'chorus';
/** Many channels: CPU per message at most the raw ceiling's × this (and at most naive ws's). */
const CHANNELS_CPU_VS_RAW = 1.2;
/** Ingress: accepted messages/s at least Bun's × this, CPU per message at most Bun's × INGRESS_CPU_VS_BUN. */
const INGRESS_RATE_VS_BUN = 0.7;
const INGRESS_CPU_VS_BUN = 1.5;
/** Idle: RSS per connection at most a bare Node socket's × this. */
const IDLE_VS_RAW = 1.1;
/** Fan-out: at 1,000 subscribers at least Bun × this and the raw ceiling × FANOUT_VS_RAW. */
const FANOUT_1000_VS_BUN = 1.5;
const FANOUT_VS_RAW = 0.85;

export function evaluateWorkloadTargets(summary: SuiteSummary): TargetResult[] {
  const results: TargetResult[] = [];
  const row = <T extends { server: string }>(rows: readonly T[] | undefined, server: string): T | undefined => rows?.find((r) => r.server === server);
  const bound = (r: { generatorBound: boolean } | undefined, who: string): string => (r?.generatorBound ? ` (${who} generator-bound: a lower bound)` : '');

  // 1. Many channels.
  const channels = row(summary.channels, CHORUS);
  const naiveChannels = row(summary.channels, 'naive-ws');
  const rawChannels = row(summary.channels, 'raw');
  results.push(
    compareAtMost('many channels: CPU per message ≤ naive ws', channels?.cpuPerMillion, naiveChannels?.cpuPerMillion, 1, (ours, theirs) => `Chorus ${formatFixed(ours, 1)} vs naive ws ${formatFixed(theirs, 1)} CPU-s/M (${formatFixed(ours / theirs, 2)}×)`),
    compareAtMost(`many channels: CPU per message ≤ ${CHANNELS_CPU_VS_RAW}× the raw ceiling`, channels?.cpuPerMillion, rawChannels?.cpuPerMillion, CHANNELS_CPU_VS_RAW, (ours, theirs) => `Chorus ${formatFixed(ours, 1)} vs raw ${formatFixed(theirs, 1)} CPU-s/M (${formatFixed(ours / theirs, 2)}×)`),
    compare(
      'many channels: msg/s ≥ naive ws',
      channels?.deliveredPerSecond,
      naiveChannels?.deliveredPerSecond,
      1,
      (ours, theirs) => `Chorus ${formatInteger(ours)} vs naive ws ${formatInteger(theirs)} msg/s (${formatFixed(ours / theirs, 2)}×)${bound(channels, 'Chorus')}`,
    ),
  );

  // 2. Ingress.
  const ingress = row(summary.ingress, CHORUS);
  const bunIngress = row(summary.ingress, 'bun');
  results.push(
    compare(`ingress: accepted msg/s ≥ ${INGRESS_RATE_VS_BUN}× Bun`, ingress?.acceptedPerSecond, bunIngress?.acceptedPerSecond, INGRESS_RATE_VS_BUN, (ours, theirs) => `Chorus ${formatInteger(ours)} vs Bun ${formatInteger(theirs)} msg/s (${formatFixed(ours / theirs, 2)}×)${bound(bunIngress, 'Bun')}`),
    compareAtMost(`ingress: CPU per message ≤ ${INGRESS_CPU_VS_BUN}× Bun`, ingress?.cpuPerMillion, bunIngress?.cpuPerMillion, INGRESS_CPU_VS_BUN, (ours, theirs) => `Chorus ${formatFixed(ours, 2)} vs Bun ${formatFixed(theirs, 2)} CPU-s/M (${formatFixed(ours / theirs, 2)}×)`),
  );

  // 3. Idle memory.
  const idleStep = (server: string): SuiteSummary['idle'][number]['steps'][number] | undefined => row(summary.idle, server)?.steps.at(-1);
  const idle = idleStep(CHORUS);
  const rawIdle = idleStep('raw');
  results.push(
    compareAtMost(
      `idle RSS per connection ≤ ${IDLE_VS_RAW}× a bare Node socket's`,
      idle?.rssPerConnection,
      rawIdle?.rssPerConnection,
      IDLE_VS_RAW,
      (ours, theirs) => `at ${formatInteger(idle?.connections ?? NaN)}: Chorus ${formatKiB(ours)} (heap ${formatKiB(idle?.heapPerConnection ?? NaN)}) vs raw ${formatKiB(theirs)} (heap ${formatKiB(rawIdle?.heapPerConnection ?? NaN)}) (${formatFixed(ours / theirs, 2)}×)`,
    ),
  );

  // 4. Latency at the same rate as Bun's target step.
  const atBunRate = row(summary.latencyAtBunRate, CHORUS);
  const bunLatency = row(summary.latency, 'bun')?.steps.at(-1);
  results.push(
    compareAtMost(
      "p99 at Bun's 50 % rate ≤ Bun's p99",
      atBunRate?.p99,
      bunLatency?.p99,
      1,
      (ours, theirs) => `at ${formatInteger(atBunRate?.rate ?? NaN)} msg/s × 1,000: Chorus p99 ${formatFixed(ours, 2)} ms (p50 ${formatFixed(atBunRate?.p50 ?? NaN, 2)}) vs Bun ${formatFixed(theirs, 2)} ms (p50 ${formatFixed(bunLatency?.p50 ?? NaN, 2)})`,
    ),
  );

  // 5. Fan-out at every size.
  const fanout = (server: string, subscribers: number): FanoutRow | undefined => summary.fanout.find((r) => r.server === server && r.subscribers === subscribers);
  for (const subscribers of summary.fanoutSubscribers) {
    const factor = subscribers === 1000 ? FANOUT_1000_VS_BUN : 1;
    const ours = fanout(CHORUS, subscribers);
    const bun = fanout('bun', subscribers);
    results.push(
      compare(
        `fan-out to ${formatInteger(subscribers)} ≥ ${factor === 1 ? '' : `${factor}× `}Bun`,
        ours?.deliveredPerSecond,
        bun?.deliveredPerSecond,
        factor,
        (a, b) => `Chorus ${formatInteger(a)} vs Bun ${formatInteger(b)} msg/s (${formatFixed(a / b, 2)}×)${bound(ours, 'Chorus')}${bound(bun, 'Bun')}`,
      ),
    );
  }
  const raw1000 = fanout('raw', 1000);
  const chorus1000 = fanout(CHORUS, 1000);
  results.push(
    compare(`fan-out to 1,000 ≥ ${FANOUT_VS_RAW}× the raw ceiling`, chorus1000?.deliveredPerSecond, raw1000?.deliveredPerSecond, FANOUT_VS_RAW, (a, b) => `Chorus ${formatInteger(a)} vs raw ${formatInteger(b)} msg/s (${formatFixed(a / b, 2)}×)${bound(raw1000, 'raw')}`),
  );

  // The unpaced publisher: as fast as Bun, and nothing lost or cut on the way.
  for (const subscribers of new Set((summary.flood ?? []).map((r) => r.subscribers))) {
    const at = (server: string): FloodRow | undefined => summary.flood?.find((r) => r.server === server && r.subscribers === subscribers);
    const flood = at(CHORUS);
    const bunFlood = at('bun');
    const speed = compare(`flood (unpaced publisher) to ${formatInteger(subscribers)} ≥ Bun, nothing lost`, flood?.deliveredPerSecond, bunFlood?.deliveredPerSecond, 1, (a, b) => `Chorus ${formatInteger(a)} vs Bun ${formatInteger(b)} msg/s (${formatFixed(a / b, 2)}×)`);
    if (!flood) {
      results.push(speed);
      continue;
    }
    const lossless = flood.undelivered === 0 && flood.closedSubscribers === 0;
    const peers = (summary.flood ?? []).filter((r) => r.server !== CHORUS && r.subscribers === subscribers).map((r) => `${r.server}: ${formatInteger(r.undelivered)} missing, ${r.closedSubscribers} cut`);
    results.push({
      ...speed,
      status: speed.status === 'PASS' && !lossless ? 'MISS' : speed.status,
      detail: `${speed.detail}; Chorus: ${formatInteger(flood.undelivered)} deliveries missing, ${flood.closedSubscribers} subscribers cut${peers.length ? ` (${peers.join('; ')})` : ''}`,
    });
  }
  return results;
}
