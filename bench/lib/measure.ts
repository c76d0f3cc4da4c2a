/**
 * Measuring a saturation phase: samples of a running count (deliveries…), the server's and the
 * generator's CPU time and their cores' accounting, a progress line per second, and the checks
 * that make a number trustworthy (was the server saturated? was the generator?).
 */
import { GENERATOR_CPU, SERVER_CPU } from './config.ts';
import { coreTimes, ownCpuSeconds, pinThisProcess, type CoreTimes, type ServerProcess } from './process.ts';
import { formatInteger, formatPercent, progress, sleep } from './report.ts';

/** Generator core busier than this means the run may have measured the generator. */
export const GENERATOR_BOUND_UTILIZATION = 0.9;
/** Server core less busy than this means the server was not saturated. */
export const SERVER_SATURATED_UTILIZATION = 0.9;
/** Other processes using more than this share of a benchmark core make the run unreliable. */
export const CONTENTION_LIMIT = 0.05;

let pinned = false;

/** Pins this process (the load generator) to its core; returns whether that worked. Call once. */
export function pinGenerator(): boolean {
  pinned = pinThisProcess(GENERATOR_CPU);
  return pinned;
}

export function isPinned(): boolean {
  return pinned;
}

export interface Sample {
  atMs: number;
  count: number;
  serverCpu: number;
  serverWrites: number | undefined;
  generatorCpu: number;
  /** Whole-core accounting, when pinned on Linux. */
  serverCore: CoreTimes | undefined;
  generatorCore: CoreTimes | undefined;
}

/** How one core's time was spent between two samples, as fractions of the interval. */
export interface CoreUse {
  busy: number;
  /** The pinned process itself (its own CPU time). */
  process: number;
  /**
   * irq + softirq: on loopback, mostly the kernel's receive side of TCP. The kernel charges part
   * of it to the interrupted process too, so `process + interrupt` can exceed `busy`.
   */
  interrupt: number;
  /** busy − process − interrupt: a lower bound of what other processes on the box took. */
  other: number;
}

/** What happened between two samples. */
export interface Interval {
  seconds: number;
  count: number;
  perSecond: number;
  serverCpuSeconds: number;
  /** Counted events per server write syscall (Linux): how much the server coalesces. */
  perServerWrite: number | undefined;
  /** Process CPU as a fraction of one core. */
  serverUtilization: number;
  generatorUtilization: number;
  serverCore: CoreUse | undefined;
  generatorCore: CoreUse | undefined;
  /** The generator's core was saturated and the server's was not: the number measures the generator. */
  generatorBound: boolean;
}

export async function takeSample(server: ServerProcess, count: number): Promise<Sample> {
  const serverCpu = await server.cpuSeconds();
  return {
    atMs: performance.now(),
    count,
    serverCpu,
    serverWrites: server.writeSyscalls(),
    generatorCpu: ownCpuSeconds(),
    serverCore: pinned ? coreTimes(SERVER_CPU) : undefined,
    generatorCore: pinned ? coreTimes(GENERATOR_CPU) : undefined,
  };
}

export function between(from: Sample, to: Sample): Interval {
  const seconds = (to.atMs - from.atMs) / 1000;
  const count = to.count - from.count;
  const serverCpuSeconds = to.serverCpu - from.serverCpu;
  const generatorSeconds = to.generatorCpu - from.generatorCpu;
  const serverCore = coreUse(from.serverCore, to.serverCore, serverCpuSeconds);
  const generatorCore = coreUse(from.generatorCore, to.generatorCore, generatorSeconds);
  const serverUtilization = serverCpuSeconds / seconds;
  const generatorUtilization = generatorSeconds / seconds;
  const writes = from.serverWrites === undefined || to.serverWrites === undefined ? undefined : to.serverWrites - from.serverWrites;
  return {
    seconds,
    count,
    perSecond: count / seconds,
    serverCpuSeconds,
    perServerWrite: writes ? count / writes : undefined,
    serverUtilization,
    generatorUtilization,
    serverCore,
    generatorCore,
    generatorBound: Math.max(generatorUtilization, generatorCore?.busy ?? 0) >= GENERATOR_BOUND_UTILIZATION && !serverSaturated(serverCore, serverUtilization),
  };
}

export function coreUse(from: CoreTimes | undefined, to: CoreTimes | undefined, processSeconds: number): CoreUse | undefined {
  if (!from || !to) return undefined;
  const busy = to.busy - from.busy;
  const total = busy + to.idle - from.idle;
  if (total <= 0) return undefined;
  const interrupt = to.interrupt - from.interrupt;
  return { busy: busy / total, process: processSeconds / total, interrupt: interrupt / total, other: Math.max(0, busy - interrupt - processSeconds) / total };
}

/** "core 98% busy (process 74%, irq 22%, other ≥ 2%)", or just the process share when cores are not accounted. */
export function describeCore(use: CoreUse | undefined, processUtilization: number): string {
  if (!use) return `process ${formatPercent(processUtilization)} of a core`;
  return `core ${formatPercent(use.busy)} busy (process ${formatPercent(use.process)}, irq ${formatPercent(use.interrupt)}, other ≥ ${formatPercent(use.other)})`;
}

export function serverSaturated(use: CoreUse | undefined, processUtilization: number): boolean {
  return (use ? use.busy : processUtilization) >= SERVER_SATURATED_UTILIZATION;
}

/**
 * Lets the load run for `ms`, printing a progress line every second (`unit` per second of
 * `count()`, server and generator CPU, plus `extra()` when given); returns the first and last
 * samples.
 */
export async function runPhase(
  label: string,
  phase: string,
  ms: number,
  server: ServerProcess,
  count: () => number,
  unit = 'msg/s',
  extra?: () => string,
): Promise<[Sample, Sample]> {
  const first = await takeSample(server, count());
  const endAt = first.atMs + ms;
  let previous = first;
  while (endAt - previous.atMs > 1) {
    await sleep(Math.min(1000, endAt - previous.atMs));
    const current = await takeSample(server, count());
    const interval = between(previous, current);
    progress(
      label,
      `${phase.padEnd(7)} ${((current.atMs - first.atMs) / 1000).toFixed(1).padStart(4)} s  ` +
        `${formatInteger(interval.perSecond).padStart(11)} ${unit}  ` +
        `server ${formatPercent(interval.serverUtilization).padStart(4)}` +
        (interval.serverCore ? ` (core ${formatPercent(interval.serverCore.busy)}, other ≥ ${formatPercent(interval.serverCore.other)})` : '') +
        `  generator ${formatPercent(interval.generatorUtilization).padStart(4)}` +
        (extra ? `  ${extra()}` : ''),
    );
    previous = current;
  }
  return [first, previous];
}

/** Problems with a saturation measurement, as warning sentences (empty when it is sound). */
export function saturationWarnings(interval: Interval): string[] {
  const found: string[] = [];
  const generatorBusy = Math.max(interval.generatorUtilization, interval.generatorCore?.busy ?? 0);
  if (interval.generatorBound) {
    found.push(
      `GENERATOR-BOUND: the generator's core was saturated (${describeCore(interval.generatorCore, interval.generatorUtilization)}) and the server's was not ` +
        `(${describeCore(interval.serverCore, interval.serverUtilization)}): this number is the load generator's limit, the server can do more`,
    );
  } else if (generatorBusy >= GENERATOR_BOUND_UTILIZATION) {
    found.push(`the generator's core was at ${formatPercent(generatorBusy)}: the server was saturated too, so the run is server-bound, but the generator had little headroom`);
  } else if (!serverSaturated(interval.serverCore, interval.serverUtilization)) {
    found.push(`the server was not saturated (${describeCore(interval.serverCore, interval.serverUtilization)})`);
  }
  found.push(...contentionWarnings(interval));
  return found;
}

export function contentionWarnings(interval: Interval): string[] {
  const contention = Math.max(interval.serverCore?.other ?? 0, interval.generatorCore?.other ?? 0);
  return contention > CONTENTION_LIMIT ? [`other processes used at least ${formatPercent(contention)} of a benchmark core: the box is not quiet, numbers are unreliable`] : [];
}

/** Waits until `count()` reaches `expected` or stops moving for `stallMs`; returns the final count. */
export async function drain(count: () => number, expected: number, stallMs = 1_000, maxMs = Infinity): Promise<number> {
  let seen = count();
  const start = performance.now();
  let lastProgress = start;
  while (count() < expected && performance.now() - lastProgress < stallMs && performance.now() - start < maxMs) {
    await sleep(20);
    if (count() !== seen) {
      seen = count();
      lastProgress = performance.now();
    }
  }
  return count();
}
