/**
 * Fan-out benchmark on its own: 1 publisher → 1,000 subscribers on one raw channel, ~100-byte
 * messages, publisher at saturation. For each server: delivered messages/s (messages received
 * by all subscribers together, per second) and server CPU seconds per million deliveries,
 * measured against a naive `ws` broadcast loop in the same run. The full suite (all scenarios,
 * all peers) is `npm run bench` (suite.ts); this is the quick way to study one knob.
 *
 *   npm run bench:fanout                              (≈ 20 s)
 *   npm run bench:fanout -- --duration 10 --rounds 3  (or BENCH_DURATION=10 BENCH_ROUNDS=3)
 *   npm run bench:fanout -- --servers chorus,bun,raw --window 200
 *   npm run bench:fanout -- --help
 *
 * Where things are:
 *   scenarios/fanout.ts  the scenario (shared with the suite)
 *   lib/loadgen.ts       the load generator: raw-socket WebSocket clients, frame counting, publisher
 *   lib/measure.ts       CPU and core accounting, progress lines, saturation checks
 *   lib/process.ts       server child processes, core pinning
 *   servers/*            the servers under test (lib/peers.ts lists them)
 *
 * Each server runs in its own process pinned to core 0; this process (the generator) pins
 * itself to core 1. A run where the generator's core is saturated measures the generator, not
 * the server, and is flagged.
 */
import { availableParallelism, cpus } from 'node:os';
import { GENERATOR_CPU, SERVER_CPU } from './lib/config.ts';
import { describeCore, pinGenerator } from './lib/measure.ts';
import { numberSetting, readSettings } from './lib/options.ts';
import { BASELINE_PEER, findPeers, selectedPeers } from './lib/peers.ts';
import { hasTaskset } from './lib/process.ts';
import { formatFixed, formatInteger, markdownTable, median, progress, writeResult } from './lib/report.ts';
import { defaultWindow, runFanout, type FanoutResult } from './scenarios/fanout.ts';

const settings = readSettings(process.argv.slice(2), 'Usage: npm run bench:fanout -- [options]', [
  { name: 'subscribers', description: 'subscriber connections', default: 1000 },
  { name: 'size', description: 'message payload in bytes', default: 100 },
  { name: 'batch', description: 'frames per publisher write', default: 10 },
  { name: 'window', description: 'max messages in flight (published, not yet received by the average subscriber); 0 = ~100,000 deliveries', default: 0 },
  { name: 'warmup', description: 'warm-up seconds', default: 2 },
  { name: 'duration', description: 'measured seconds', default: 5 },
  { name: 'rounds', description: 'runs per server, interleaved', default: 1 },
  { name: 'servers', description: 'servers to compare, comma-separated (chorus, bun, socketio, naive-ws, raw)', default: 'chorus,naive-ws' },
]);

const subscribers = numberSetting(settings, 'subscribers', 1);
const batch = numberSetting(settings, 'batch', 1);
const options = {
  subscribers,
  size: numberSetting(settings, 'size', 1),
  batch,
  window: numberSetting(settings, 'window', 0) || defaultWindow(subscribers, batch),
  warmupMs: numberSetting(settings, 'warmup') * 1000,
  durationMs: numberSetting(settings, 'duration', 0.5) * 1000,
  rounds: numberSetting(settings, 'rounds', 1),
};
const peers = selectedPeers(settings);

const cores = availableParallelism();
const pinned = pinGenerator();

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

const runs: (FanoutResult & { round: number })[] = [];
const failures: { server: string; round: number; error: string }[] = [];
for (let round = 1; round <= options.rounds; round++) {
  // Alternate the order between rounds so drift (thermal, background) does not favour one peer.
  const order = round % 2 === 1 ? peers : [...peers].reverse();
  for (const peer of order) {
    console.log(`\n${peer.label}${options.rounds > 1 ? ` (round ${round})` : ''}`);
    try {
      runs.push({ ...(await runFanout(peer, options)), round });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      progress(peer.id, `FAILED: ${message}`);
      failures.push({ server: peer.id, round, error: message });
    }
  }
}

const summary = peers.map((peer) => {
  const own = runs.filter((run) => run.server === peer.id);
  const rates = own.map((run) => run.deliveredPerSecond);
  return {
    server: peer.id,
    label: peer.label,
    runs: own.length,
    deliveredPerSecond: median(rates),
    deliveredPerSecondRange: own.length ? [Math.min(...rates), Math.max(...rates)] : [],
    serverCpuSecondsPerMillion: median(own.map((run) => run.serverCpuSecondsPerMillion)),
    deliveriesPerServerWrite: median(own.map((run) => run.measurement.perServerWrite ?? NaN)),
    serverUtilization: median(own.map((run) => run.measurement.serverUtilization)),
    generatorUtilization: median(own.map((run) => run.measurement.generatorUtilization)),
    generatorBound: own.some((run) => run.measurement.generatorBound),
  };
});
const baseline = summary.find((row) => row.server === BASELINE_PEER)?.deliveredPerSecond ?? NaN;
const baselineLabel = findPeers([BASELINE_PEER])[0]?.label ?? BASELINE_PEER;

console.log(`\nResults${options.rounds > 1 ? ` (median of ${options.rounds} rounds)` : ''}:\n`);
console.log(
  markdownTable(
    ['server', 'delivered msg/s', `ratio vs ${baselineLabel}`, 'server CPU-s per M deliveries', 'deliveries per write syscall'],
    summary.map((row) => [
      row.label + (row.generatorBound ? ' (GENERATOR-BOUND)' : ''),
      formatInteger(row.deliveredPerSecond),
      Number.isFinite(baseline) ? `${formatFixed(row.deliveredPerSecond / baseline, 2)}×` : 'n/a',
      formatFixed(row.serverCpuSecondsPerMillion, 2),
      formatFixed(row.deliveriesPerServerWrite, 1),
    ]),
  ),
);
console.log('\nLast run of each server (irq = loopback TCP work in interrupt context, partly also counted in process):');
for (const row of summary) {
  const last = runs.filter((run) => run.server === row.server).at(-1);
  if (!last) continue;
  const m = last.measurement;
  console.log(`  ${row.label}: server ${describeCore(m.serverCore, m.serverUtilization)}; generator ${describeCore(m.generatorCore, m.generatorUtilization)}`);
}
const warnings = runs.flatMap((run) => run.warnings.map((warning) => `${run.server}${options.rounds > 1 ? ` (round ${run.round})` : ''}: ${warning}`));
if (warnings.length > 0) console.log(`\nWarnings:\n${warnings.map((warning) => `  - ${warning}`).join('\n')}`);

const file = writeResult('fanout', {
  benchmark: 'fanout',
  date: new Date().toISOString(),
  environment: { node: process.version, platform: `${process.platform} ${process.arch}`, cpu: cpus()[0]?.model ?? 'unknown', cores, pinned, serverCpu: SERVER_CPU, generatorCpu: GENERATOR_CPU },
  settings: { ...options, peers: peers.map((peer) => peer.id) },
  summary,
  runs,
  failures,
});
console.log(`Saved ${file}`);
if (failures.length > 0) process.exitCode = 1;
