/**
 * The suite's summary (one row per server and scenario) and the targets of issue 6, judged
 * against the peers measured in the same run. Printed as PASS/MISS; never a test failure.
 */
import { compare, compareAtMost, type TargetResult } from './target-result.ts';
import { evaluateWorkloadTargets } from './workload-targets.ts';
import type { RssPoint } from '../scenarios/latency.ts';
import { formatFixed, formatInteger, formatKiB, formatMiB } from './report.ts';

export interface SuiteSummary {
  peers: { id: string; label: string }[];
  fanoutSubscribers: number[];
  idleSteps: number[];
  fanout: FanoutRow[];
  /**
   * Chorus's fan-out to 1,000 subscribers on the Pusher dialect (scenario `pusher`). Optional:
   * results saved before it existed have none.
   */
  pusherFanout?: FanoutRow[];
  /** Fan-out to 1,000 with an unpaced publisher (scenario `flood`); optional like pusherFanout. */
  flood?: FloodRow[];
  /** Chorus's latency at Bun's target-load rate (scenario `latency` with both peers). */
  latencyAtBunRate?: { server: string; rate: number; p50: number; p99: number; p999: number }[];
  latency: {
    server: string;
    subscribers: number;
    /** Ascending load; the last is the target step. */
    steps: { load: number; rate: number; samples: number; p50: number; p90: number; p99: number; p999: number; max: number; generatorLoopDelayP99Ms: number; serverUtilization: number }[];
    warnings: string[];
  }[];
  channels: { server: string; channels: number; deliveredPerSecond: number; cpuPerMillion: number; generatorBound: boolean; warnings: string[] }[];
  ingress: { server: string; acceptedPerSecond: number; cpuPerMillion: number; generatorBound: boolean; warnings: string[] }[];
  idle: { server: string; baselineRss: number; steps: { connections: number; open: number; rssPerConnection: number; heapPerConnection: number }[]; warnings: string[] }[];
  slow: {
    server: string;
    rate: number;
    p99: number;
    p999: number;
    /** Message bytes. */
    size: number;
    /** p99 of the same run before the slow readers stopped. */
    baselineP99: number;
    /** Seconds until a slow reader has been sent KERNEL_BUFFER_BYTES, after which the server must queue. */
    kernelFillSeconds: number;
    maxGrowth: number;
    /** Bytes/s over the last third of the run (least-squares slope). */
    finalGrowthRate: number;
    slowSubscribers: number;
    slowDisconnected: number;
    durationSeconds: number;
    timeline: RssPoint[];
    warnings: string[];
  }[];
  /** Chorus's maxPendingBytes in the slow-reader run. */
  chorusSlowConsumerCap: number;
}

export interface FanoutRow {
  server: string;
  subscribers: number;
  deliveredPerSecond: number;
  cpuPerMillion: number;
  perServerWrite: number | undefined;
  generatorBound: boolean;
  warnings: string[];
}

export type { TargetResult, TargetStatus } from './target-result.ts';

export interface FloodRow {
  server: string;
  subscribers: number;
  deliveredPerSecond: number;
  cpuPerMillion: number;
  published: number;
  undelivered: number;
  closedSubscribers: number;
  generatorBound: boolean;
  warnings: string[];
}


const CHORUS = 'chorus';
const LATENCY_P99_LIMIT_MS = 5;
const FANOUT_VS_SOCKETIO = 8;
/** Issue 12: the Pusher dialect's fan-out at most 10 % below the raw one's. */
const PUSHER_VS_RAW = 0.9;
/** Issue 13: fan-out with metrics on (scraped) at most 5 % below metrics off. */
const METRICS_ON_VS_OFF = 0.95;
const CHORUS_METRICS_OFF = 'chorus-metrics-off';
const IDLE_VS_BUN = 1.5;
/**
 * Proposed restatements of the two targets this 2-core machine cannot show (see
 * docs/benchmarks.md): no server reaches p99 5 ms here, and a bare Node socket alone costs more
 * than 1.5× Bun's connection. Printed after the targets, named as proposals.
 */
const LATENCY_VS_BUN = 1.5;
const IDLE_VS_RAW_NODE = 1.5;
/**
 * Memory counts as bounded when it stays under the cap-based bound below and either every slow
 * reader was disconnected or, over the last third of the run, it grows slower than this
 * share of the distinct bytes published per second (a server that frames once and writes the
 * same buffer to every socket holds a slow reader's backlog once, so an unbounded backlog grows
 * at about the publish byte rate)…
 */
const BOUNDED_FINAL_SHARE = 0.5;
/** …and at most to this many times the slow-consumer cap × slow readers, plus slack. */
const BOUNDED_CAP_FACTOR = 2;
const BOUNDED_SLACK = 64 * 1024 * 1024;
/** The other subscribers' p99 "holds" within this factor of the no-slow-reader baseline. */
const SLOW_P99_FACTOR = 2;

export function evaluateTargets(summary: SuiteSummary): TargetResult[] {
  const fanout = (server: string): FanoutRow | undefined => summary.fanout.find((row) => row.server === server && row.subscribers === 1000);
  const chorusFanout = fanout(CHORUS);
  const bunFanout = fanout('bun');
  const socketioFanout = fanout('socketio');
  const lowerBound = (row: { generatorBound: boolean } | undefined, who: string): string => (row?.generatorBound ? ` (${who}'s number is generator-bound: a lower bound)` : '');
  const results: TargetResult[] = [];

  results.push(
    compare(
      'fan-out to 1,000 subscribers ≥ Bun pub/sub',
      chorusFanout?.deliveredPerSecond,
      bunFanout?.deliveredPerSecond,
      1,
      (ours, theirs) => `Chorus ${formatInteger(ours)} vs Bun ${formatInteger(theirs)} msg/s (${formatFixed(ours / theirs, 2)}×)${lowerBound(chorusFanout, 'Chorus')}${lowerBound(bunFanout, 'Bun')}`,
    ),
  );
  results.push(
    compare(
      `fan-out to 1,000 subscribers ≥ ${FANOUT_VS_SOCKETIO}× Socket.IO`,
      chorusFanout?.deliveredPerSecond,
      socketioFanout?.deliveredPerSecond,
      FANOUT_VS_SOCKETIO,
      (ours, theirs) => `Chorus ${formatInteger(ours)} vs Socket.IO ${formatInteger(theirs)} msg/s (${formatFixed(ours / theirs, 1)}×)${lowerBound(chorusFanout, 'Chorus')}`,
    ),
  );

  const pusherFanout = summary.pusherFanout?.find((row) => row.server === CHORUS && row.subscribers === 1000);
  if (pusherFanout) {
    results.push(
      compare(
        `Pusher fan-out ≥ ${PUSHER_VS_RAW}× Chorus raw fan-out (same run)`,
        pusherFanout.deliveredPerSecond,
        chorusFanout?.deliveredPerSecond,
        PUSHER_VS_RAW,
        (ours, theirs) =>
          `to 1,000 subscribers: Pusher ${formatInteger(ours)} vs raw ${formatInteger(theirs)} msg/s (${formatFixed(ours / theirs, 2)}×)` +
          (bunFanout ? `; Bun ${formatInteger(bunFanout.deliveredPerSecond)} (Pusher ${formatFixed(ours / bunFanout.deliveredPerSecond, 2)}× Bun)` : '') +
          `${lowerBound(pusherFanout, 'Pusher')}${lowerBound(chorusFanout, 'raw')}`,
      ),
    );
  }

  const metricsOff = summary.fanout.filter((row) => row.server === CHORUS_METRICS_OFF);
  if (metricsOff.length > 0) {
    const sizes = metricsOff.map((off) => ({ off, on: summary.fanout.find((row) => row.server === CHORUS && row.subscribers === off.subscribers) }));
    const ratios = sizes.flatMap(({ off, on }) => (on ? [on.deliveredPerSecond / off.deliveredPerSecond] : []));
    results.push({
      name: `fan-out with metrics ≥ ${METRICS_ON_VS_OFF}× without (same run)`,
      status: ratios.length === 0 ? 'n/a' : ratios.every((ratio) => ratio >= METRICS_ON_VS_OFF) ? 'PASS' : 'MISS',
      detail: sizes
        .map(({ off, on }) =>
          on
            ? `to ${formatInteger(off.subscribers)}: on ${formatInteger(on.deliveredPerSecond)} vs off ${formatInteger(off.deliveredPerSecond)} msg/s (${formatFixed(on.deliveredPerSecond / off.deliveredPerSecond, 3)}×)${lowerBound(on, 'on')}${lowerBound(off, 'off')}`
            : `to ${formatInteger(off.subscribers)}: Chorus with metrics not measured`,
        )
        .join('; '),
    });
  }

  const latencyRow = summary.latency.find((row) => row.server === CHORUS);
  const latency = latencyRow?.steps.at(-1);
  const latencyName = `p99 ≤ ${LATENCY_P99_LIMIT_MS} ms at 1,000 subscribers and ${latency ? Math.round(latency.load * 100) : 50} % load`;
  if (latency && latencyRow) {
    const others = summary.latency
      .filter((row) => row.server !== CHORUS)
      .map((row) => `${row.server} ${formatFixed(row.steps.at(-1)?.p99 ?? NaN, 1)}`)
      .join(', ');
    const within = latencyRow.steps.filter((step) => step.p99 <= LATENCY_P99_LIMIT_MS).at(-1);
    results.push({
      name: latencyName,
      status: latency.p99 <= LATENCY_P99_LIMIT_MS ? 'PASS' : 'MISS',
      detail:
        `Chorus p99 ${formatFixed(latency.p99, 2)} ms (p50 ${formatFixed(latency.p50, 2)}, p99.9 ${formatFixed(latency.p999, 2)}) at ${formatInteger(latency.rate)} msg/s × ${formatInteger(latencyRow.subscribers)}` +
        (within && within !== latency ? `; ≤ ${LATENCY_P99_LIMIT_MS} ms up to ${Math.round(within.load * 100)} % load` : '') +
        (others ? `; peers' p99 at their own ${Math.round(latency.load * 100)} %: ${others} ms` : ''),
    });
  } else {
    results.push({ name: latencyName, status: 'n/a', detail: 'latency scenario did not run for Chorus' });
  }

  const idleStep = (server: string): SuiteSummary['idle'][number]['steps'][number] | undefined => summary.idle.find((row) => row.server === server)?.steps.at(-1);
  const chorusIdle = idleStep(CHORUS);
  const bunIdle = idleStep('bun');
  results.push(
    compareAtMost(
      `idle RSS per connection ≤ ${IDLE_VS_BUN}× Bun's`,
      chorusIdle?.rssPerConnection,
      bunIdle?.rssPerConnection,
      IDLE_VS_BUN,
      (ours, theirs) => `at ${formatInteger(chorusIdle?.connections ?? NaN)} connections: Chorus ${formatKiB(ours)} vs Bun ${formatKiB(theirs)} (${formatFixed(ours / theirs, 2)}×)`,
    ),
  );

  const bunLatency = summary.latency.find((row) => row.server === 'bun')?.steps.at(-1);
  results.push(
    compareAtMost(
      `proposed: p99 at ${latency ? Math.round(latency.load * 100) : 50} % load ≤ ${LATENCY_VS_BUN}× Bun's`,
      latency?.p99,
      bunLatency?.p99,
      LATENCY_VS_BUN,
      (ours, theirs) => `Chorus ${formatFixed(ours, 1)} ms at ${formatInteger(latency?.rate ?? NaN)} msg/s vs Bun ${formatFixed(theirs, 1)} ms at ${formatInteger(bunLatency?.rate ?? NaN)} msg/s (${formatFixed(ours / theirs, 2)}×)`,
    ),
  );
  const rawIdle = idleStep('raw');
  results.push(
    compareAtMost(
      `proposed: idle RSS per connection ≤ ${IDLE_VS_RAW_NODE}× a bare Node socket's`,
      chorusIdle?.rssPerConnection,
      rawIdle?.rssPerConnection,
      IDLE_VS_RAW_NODE,
      (ours, theirs) => `Chorus ${formatKiB(ours)} vs the raw net ceiling ${formatKiB(theirs)} (${formatFixed(ours / theirs, 2)}×)`,
    ),
  );

  const slow = summary.slow.find((row) => row.server === CHORUS);
  if (slow) {
    const bound = slow.slowSubscribers * summary.chorusSlowConsumerCap * BOUNDED_CAP_FACTOR + BOUNDED_SLACK;
    const rateLimit = BOUNDED_FINAL_SHARE * slow.rate * slow.size;
    // RSS drifts by ~1 MiB/s on its own (heap growth, history), so a slope is only a hint: once
    // every slow reader has been cut, nothing is held for them any more.
    const allCut = slow.slowSubscribers > 0 && slow.slowDisconnected === slow.slowSubscribers;
    const bounded = slow.maxGrowth <= bound && (allCut || slow.finalGrowthRate <= rateLimit);
    results.push({
      name: 'memory bounded with 10 % slow readers',
      status: bounded ? 'PASS' : 'MISS',
      detail:
        `RSS grew at most ${formatMiB(slow.maxGrowth)} (limit ${formatMiB(bound)}), ${formatMiB(slow.finalGrowthRate)}/s over the last third of ${formatFixed(slow.durationSeconds, 0)} s ` +
        `(limit ${formatMiB(rateLimit)}/s, half the publish byte rate); ${slow.slowDisconnected} of ${slow.slowSubscribers} slow readers disconnected at the ${formatMiB(summary.chorusSlowConsumerCap)} cap`,
    });
    results.push({
      name: `others' p99 with slow readers ≤ ${SLOW_P99_FACTOR}× baseline`,
      status: Number.isFinite(slow.baselineP99) ? (slow.p99 <= SLOW_P99_FACTOR * slow.baselineP99 ? 'PASS' : 'MISS') : 'n/a',
      detail: `p99 ${formatFixed(slow.p99, 2)} ms with slow readers vs ${formatFixed(slow.baselineP99, 2)} ms before they stopped (${formatInteger(slow.rate)} msg/s of ${formatInteger(slow.size)} bytes)`,
    });
  } else {
    results.push({ name: 'memory bounded with 10 % slow readers', status: 'n/a', detail: 'slow-reader scenario did not run for Chorus' });
  }
  results.push(...evaluateWorkloadTargets(summary));
  return results;
}
