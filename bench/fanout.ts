/**
 * Fan-out benchmark: 1 publisher → 1,000 subscribers on one raw channel, ~100-byte messages,
 * publisher at saturation. For each server: delivered messages/s (messages received by all
 * subscribers together, per second) and server CPU seconds per million deliveries, measured
 * against a naive `ws` broadcast loop in the same run.
 *
 *   npm run bench:fanout                              (≈ 20 s)
 *   npm run bench:fanout -- --duration 10 --rounds 3  (or BENCH_DURATION=10 BENCH_ROUNDS=3)
 *   npm run bench:fanout -- --help
 *
 * Where things are:
 *   lib/loadgen.ts   the load generator: raw-socket WebSocket clients, frame counting, publisher
 *   lib/process.ts   server child processes, core pinning, CPU accounting
 *   servers/*.ts     the servers under test (lib/peers.ts lists them)
 *   this file        the scenario and its report
 *
 * Each server runs in its own process pinned to core 0; this process (the generator) pins
 * itself to core 1. A run where the generator's core is saturated measures the generator, not
 * the server, and is flagged.
 */
import { availableParallelism, cpus } from 'node:os';
import { BENCH_HOST, GENERATOR_CPU, SERVER_CPU, rawChannelPath } from './lib/config.ts';
import { Publisher, RawWebSocket, SubscriberPool, textPayload, type Endpoint } from './lib/loadgen.ts';
import { listSetting, numberSetting, readSettings } from './lib/options.ts';
import { BASELINE_PEER, findPeers, type Peer } from './lib/peers.ts';
import { ServerProcess, coreTimes, hasTaskset, ownCpuSeconds, pinThisProcess, type CoreTimes } from './lib/process.ts';
import { formatFixed, formatInteger, formatPercent, markdownTable, median, progress, sleep, writeResult } from './lib/report.ts';

/** Generator core busier than this means the run measured the generator. */
const GENERATOR_BOUND_UTILIZATION = 0.9;
/** Server core less busy than this means the server was not saturated. */
const SERVER_SATURATED_UTILIZATION = 0.9;
/** Other processes using more than this share of a benchmark core make the run unreliable. */
const CONTENTION_LIMIT = 0.05;
/** After publishing stops, give up waiting for the last deliveries once none arrive for this long. */
const DRAIN_STALL_MS = 1_000;
const CHANNEL = 'bench';

// ---------------------------------------------------------------------------------------------
// Settings

const settings = readSettings(process.argv.slice(2), 'Usage: npm run bench:fanout -- [options]', [
  { name: 'subscribers', description: 'subscriber connections', default: 1000 },
  { name: 'size', description: 'message payload in bytes', default: 100 },
  { name: 'batch', description: 'frames per publisher write', default: 10 },
  { name: 'window', description: 'max messages in flight (published, not yet received by the average subscriber)', default: 100 },
  { name: 'warmup', description: 'warm-up seconds', default: 2 },
  { name: 'duration', description: 'measured seconds', default: 5 },
  { name: 'rounds', description: 'runs per server, interleaved', default: 1 },
  { name: 'servers', description: 'servers to compare, comma-separated', default: 'chorus,naive-ws' },
]);

interface FanoutOptions {
  subscribers: number;
  size: number;
  batch: number;
  window: number;
  warmupMs: number;
  durationMs: number;
  rounds: number;
  peers: Peer[];
}

const options: FanoutOptions = {
  subscribers: numberSetting(settings, 'subscribers', 1),
  size: numberSetting(settings, 'size', 1),
  batch: numberSetting(settings, 'batch', 1),
  window: numberSetting(settings, 'window', 1),
  warmupMs: numberSetting(settings, 'warmup') * 1000,
  durationMs: numberSetting(settings, 'duration', 0.5) * 1000,
  rounds: numberSetting(settings, 'rounds', 1),
  peers: peersSetting(listSetting(settings, 'servers')),
};

function peersSetting(ids: string[]): Peer[] {
  try {
    return findPeers(ids);
  } catch (error) {
    console.error(`--servers: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(2);
  }
}

/** Cores available before this process pins itself to one. */
const cores = availableParallelism();
/** This process is the load generator: keep it off the servers' core. */
const pinned = pinThisProcess(GENERATOR_CPU);

// ---------------------------------------------------------------------------------------------
// Scenario

interface Sample {
  atMs: number;
  delivered: number;
  serverCpu: number;
  serverWrites: number | undefined;
  generatorCpu: number;
  /** Whole-core accounting, when pinned on Linux. */
  serverCore: CoreTimes | undefined;
  generatorCore: CoreTimes | undefined;
}

/** How one core's time was spent between two samples, as fractions of the interval. */
interface CoreUse {
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

interface FanoutRun {
  server: string;
  label: string;
  round: number;
  connectMs: number;
  measuredSeconds: number;
  /** Messages received by all subscribers together during the measurement. */
  delivered: number;
  deliveredPerSecond: number;
  serverCpuSeconds: number;
  serverCpuSecondsPerMillion: number;
  /** Deliveries per write syscall of the server: how many frames it coalesces into one write. */
  deliveriesPerServerWrite: number | undefined;
  /** Process CPU as a fraction of one core, during the measurement. */
  serverUtilization: number;
  generatorUtilization: number;
  /** Whole-core accounting during the measurement (undefined when not pinned on Linux). */
  serverCore: CoreUse | undefined;
  generatorCore: CoreUse | undefined;
  generatorBound: boolean;
  /** Totals over the whole run, warm-up included, checked after draining. */
  published: number;
  undelivered: number;
  publisherEchoes: number;
  closedSubscribers: number;
  perSubscriberMessages: { min: number; max: number };
}

async function runFanout(peer: Peer, round: number): Promise<FanoutRun> {
  const server = await ServerProcess.start({ name: peer.id, script: peer.script, cpu: SERVER_CPU });
  let subscribers: SubscriberPool | undefined;
  let publisher: Publisher | undefined;
  try {
    const endpoint: Endpoint = { host: BENCH_HOST, port: server.port, path: rawChannelPath(CHANNEL) };
    const connectStart = performance.now();
    subscribers = await SubscriberPool.open(endpoint, options.subscribers);
    publisher = new Publisher(await RawWebSocket.connect(endpoint), subscribers, {
      payload: textPayload(options.size),
      batch: options.batch,
      window: options.window,
    });
    const connectMs = performance.now() - connectStart;
    progress(peer.id, `pid ${server.pid}, port ${server.port}: ${formatInteger(subscribers.size)} subscribers + 1 publisher connected in ${Math.round(connectMs)} ms`);

    publisher.start();
    if (options.warmupMs > 0) await runPhase(peer.id, 'warm-up', options.warmupMs, server, subscribers);
    const [start, end] = await runPhase(peer.id, 'measure', options.durationMs, server, subscribers);
    publisher.stop();

    const expected = await drain(publisher, subscribers);
    const seconds = (end.atMs - start.atMs) / 1000;
    const delivered = end.delivered - start.delivered;
    const serverCpuSeconds = end.serverCpu - start.serverCpu;
    const generatorUtilization = (end.generatorCpu - start.generatorCpu) / seconds;
    const serverCore = coreUse(start.serverCore, end.serverCore, serverCpuSeconds);
    const generatorCore = coreUse(start.generatorCore, end.generatorCore, end.generatorCpu - start.generatorCpu);
    const run: FanoutRun = {
      server: peer.id,
      label: peer.label,
      round,
      connectMs: Math.round(connectMs),
      measuredSeconds: seconds,
      delivered,
      deliveredPerSecond: delivered / seconds,
      serverCpuSeconds,
      serverCpuSecondsPerMillion: serverCpuSeconds / (delivered / 1e6),
      deliveriesPerServerWrite: start.serverWrites === undefined || end.serverWrites === undefined ? undefined : delivered / (end.serverWrites - start.serverWrites),
      serverUtilization: serverCpuSeconds / seconds,
      generatorUtilization,
      serverCore,
      generatorCore,
      generatorBound: Math.max(generatorUtilization, generatorCore?.busy ?? 0) >= GENERATOR_BOUND_UTILIZATION && !serverSaturated(serverCore, serverCpuSeconds / seconds),
      published: publisher.sent,
      undelivered: expected - subscribers.delivered,
      publisherEchoes: publisher.echoes,
      closedSubscribers: subscribers.closedCount,
      perSubscriberMessages: subscribers.spread(),
    };
    progress(
      peer.id,
      `result: ${formatInteger(run.deliveredPerSecond)} msg/s delivered, server ${formatFixed(run.serverCpuSecondsPerMillion, 2)} CPU-s per M deliveries, ` +
        `${formatFixed(run.deliveriesPerServerWrite ?? NaN, 1)} deliveries per server write syscall; ` +
        `server ${describeCore(run.serverCore, run.serverUtilization)}, generator ${describeCore(run.generatorCore, run.generatorUtilization)}`,
    );
    for (const problem of problems(run)) progress(peer.id, `WARNING: ${problem}`);
    return run;
  } finally {
    publisher?.close();
    subscribers?.close();
    await server.stop();
  }
}

async function sample(server: ServerProcess, subscribers: SubscriberPool): Promise<Sample> {
  const serverCpu = await server.cpuSeconds();
  return {
    atMs: performance.now(),
    delivered: subscribers.delivered,
    serverCpu,
    serverWrites: server.writeSyscalls(),
    generatorCpu: ownCpuSeconds(),
    serverCore: pinned ? coreTimes(SERVER_CPU) : undefined,
    generatorCore: pinned ? coreTimes(GENERATOR_CPU) : undefined,
  };
}

function coreUse(from: CoreTimes | undefined, to: CoreTimes | undefined, processSeconds: number): CoreUse | undefined {
  if (!from || !to) return undefined;
  const busy = to.busy - from.busy;
  const total = busy + to.idle - from.idle;
  if (total <= 0) return undefined;
  const interrupt = to.interrupt - from.interrupt;
  return { busy: busy / total, process: processSeconds / total, interrupt: interrupt / total, other: Math.max(0, busy - interrupt - processSeconds) / total };
}

/** "core 98% busy (process 74%, irq 22%, other ≥ 2%)", or just the process share when cores are not accounted. */
function describeCore(use: CoreUse | undefined, processUtilization: number): string {
  if (!use) return `process ${formatPercent(processUtilization)} of a core`;
  return `core ${formatPercent(use.busy)} busy (process ${formatPercent(use.process)}, irq ${formatPercent(use.interrupt)}, other ≥ ${formatPercent(use.other)})`;
}

function serverSaturated(use: CoreUse | undefined, processUtilization: number): boolean {
  return (use ? use.busy : processUtilization) >= SERVER_SATURATED_UTILIZATION;
}

/** Lets the publisher run for `ms`, printing a progress line every second; returns the first and last samples. */
async function runPhase(label: string, phase: string, ms: number, server: ServerProcess, subscribers: SubscriberPool): Promise<[Sample, Sample]> {
  const first = await sample(server, subscribers);
  const endAt = first.atMs + ms;
  let previous = first;
  while (endAt - previous.atMs > 1) {
    await sleep(Math.min(1000, endAt - previous.atMs));
    const current = await sample(server, subscribers);
    const seconds = (current.atMs - previous.atMs) / 1000;
    const serverCpu = current.serverCpu - previous.serverCpu;
    const serverCore = coreUse(previous.serverCore, current.serverCore, serverCpu);
    const generatorCpu = current.generatorCpu - previous.generatorCpu;
    progress(
      label,
      `${phase.padEnd(7)} ${((current.atMs - first.atMs) / 1000).toFixed(1).padStart(4)} s  ` +
        `${formatInteger((current.delivered - previous.delivered) / seconds).padStart(11)} msg/s  ` +
        `server ${formatPercent(serverCpu / seconds).padStart(4)}` +
        (serverCore ? ` (core ${formatPercent(serverCore.busy)} busy, other ≥ ${formatPercent(serverCore.other)})` : '') +
        `  generator ${formatPercent(generatorCpu / seconds).padStart(4)}`,
    );
    previous = current;
  }
  return [first, previous];
}

/** Waits until every published message has reached every subscriber (or deliveries stall); returns how many were expected. */
async function drain(publisher: Publisher, subscribers: SubscriberPool): Promise<number> {
  const expected = publisher.sent * subscribers.size;
  let seen = subscribers.delivered;
  let lastProgress = performance.now();
  while (subscribers.delivered < expected && performance.now() - lastProgress < DRAIN_STALL_MS) {
    await sleep(20);
    if (subscribers.delivered !== seen) {
      seen = subscribers.delivered;
      lastProgress = performance.now();
    }
  }
  return expected;
}

function problems(run: FanoutRun): string[] {
  const found: string[] = [];
  const generatorBusy = Math.max(run.generatorUtilization, run.generatorCore?.busy ?? 0);
  if (run.generatorBound) {
    found.push(`GENERATOR-BOUND: the generator's core was saturated (${describeCore(run.generatorCore, run.generatorUtilization)}) and the server's was not; this run measures the load generator, not the server`);
  } else if (generatorBusy >= GENERATOR_BOUND_UTILIZATION) {
    found.push(`the generator's core was at ${formatPercent(generatorBusy)}: the server was saturated too, so the run is server-bound, but the generator had little headroom`);
  } else if (!serverSaturated(run.serverCore, run.serverUtilization)) {
    found.push(`the server was not saturated (${describeCore(run.serverCore, run.serverUtilization)}); try a larger --window`);
  }
  const contention = Math.max(run.serverCore?.other ?? 0, run.generatorCore?.other ?? 0);
  if (contention > CONTENTION_LIMIT) {
    found.push(`other processes used at least ${formatPercent(contention)} of a benchmark core: the box is not quiet, numbers are unreliable`);
  }
  if (run.undelivered !== 0) found.push(`${formatInteger(run.undelivered)} deliveries missing after draining (expected ${formatInteger(run.published)} messages × ${options.subscribers} subscribers)`);
  if (run.closedSubscribers > 0) found.push(`${run.closedSubscribers} subscribers were disconnected`);
  if (run.publisherEchoes > 0) found.push(`the publisher received ${run.publisherEchoes} of its own messages`);
  return found;
}

// ---------------------------------------------------------------------------------------------
// Main and report

console.log(
  `Fan-out: 1 publisher → ${formatInteger(options.subscribers)} subscribers on one channel, ${options.size}-byte messages, ` +
    `${options.batch} frames per write, window ${options.window} messages; ` +
    `warm-up ${options.warmupMs / 1000} s, measure ${options.durationMs / 1000} s, ${options.rounds} round(s).`,
);
console.log(
  pinned
    ? `Cores: servers on CPU ${SERVER_CPU}, load generator (pid ${process.pid}) on CPU ${GENERATOR_CPU}.`
    : `WARNING: not pinned (${hasTaskset ? `${cores} core(s)` : 'no taskset'}): servers and generator share the cores, so results are not comparable with pinned runs.`,
);

const runs: FanoutRun[] = [];
const failures: { server: string; round: number; error: string }[] = [];
for (let round = 1; round <= options.rounds; round++) {
  // Alternate the order between rounds so drift (thermal, background) does not favour one peer.
  const order = round % 2 === 1 ? options.peers : [...options.peers].reverse();
  for (const peer of order) {
    console.log(`\n${peer.label}${options.rounds > 1 ? ` (round ${round})` : ''}`);
    try {
      runs.push(await runFanout(peer, round));
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      progress(peer.id, `FAILED: ${message}`);
      failures.push({ server: peer.id, round, error: message });
    }
  }
}

const summary = options.peers.map((peer) => {
  const own = runs.filter((run) => run.server === peer.id);
  return {
    server: peer.id,
    label: peer.label,
    runs: own.length,
    deliveredPerSecond: median(own.map((run) => run.deliveredPerSecond)),
    deliveredPerSecondRange: own.length ? [Math.min(...own.map((r) => r.deliveredPerSecond)), Math.max(...own.map((r) => r.deliveredPerSecond))] : [],
    serverCpuSecondsPerMillion: median(own.map((run) => run.serverCpuSecondsPerMillion)),
    serverUtilization: median(own.map((run) => run.serverUtilization)),
    generatorUtilization: median(own.map((run) => run.generatorUtilization)),
    generatorBound: own.some((run) => run.generatorBound),
  };
});
const baseline = summary.find((row) => row.server === BASELINE_PEER)?.deliveredPerSecond ?? NaN;
const baselineLabel = findPeers([BASELINE_PEER])[0]?.label ?? BASELINE_PEER;

console.log(`\nResults${options.rounds > 1 ? ` (median of ${options.rounds} rounds)` : ''}:\n`);
console.log(
  markdownTable(
    ['server', 'delivered msg/s', `ratio vs ${baselineLabel}`, 'server CPU-s per M deliveries'],
    summary.map((row) => [
      row.label + (row.generatorBound ? ' (GENERATOR-BOUND)' : ''),
      formatInteger(row.deliveredPerSecond),
      Number.isFinite(baseline) ? `${formatFixed(row.deliveredPerSecond / baseline, 2)}×` : 'n/a',
      formatFixed(row.serverCpuSecondsPerMillion, 2),
    ]),
  ),
);
console.log('\nLast run of each server (irq = loopback TCP work in interrupt context, partly also counted in process):');
for (const row of summary) {
  const last = runs.filter((run) => run.server === row.server).at(-1);
  if (!last) continue;
  console.log(
    `  ${row.label}: ${formatFixed(last.deliveriesPerServerWrite ?? NaN, 1)} deliveries per server write syscall; ` +
      `server ${describeCore(last.serverCore, last.serverUtilization)}; generator ${describeCore(last.generatorCore, last.generatorUtilization)}`,
  );
}
const warnings = runs.flatMap((run) => problems(run).map((problem) => `${run.label}${options.rounds > 1 ? ` (round ${run.round})` : ''}: ${problem}`));
if (warnings.length > 0) console.log(`\nWarnings:\n${warnings.map((warning) => `  - ${warning}`).join('\n')}`);

const file = writeResult('fanout', {
  benchmark: 'fanout',
  date: new Date().toISOString(),
  environment: {
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    cpu: cpus()[0]?.model ?? 'unknown',
    cores,
    pinned,
    serverCpu: SERVER_CPU,
    generatorCpu: GENERATOR_CPU,
  },
  settings: { ...options, peers: options.peers.map((peer) => peer.id) },
  summary,
  runs,
  failures,
});
console.log(`Saved ${file}`);
if (failures.length > 0) process.exitCode = 1;
