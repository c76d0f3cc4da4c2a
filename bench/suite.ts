/**
 * The benchmark suite (`npm run bench`): Chorus next to its peers — Bun pub/sub, Socket.IO, a
 * naive `ws` loop and the raw `net` ceiling — in the same run, scenario by scenario:
 *
 *   fanout    1 channel × {100, 1,000, 10,000} subscribers, publisher at saturation
 *   flood     fan-out to 1,000 with an unpaced publisher (writes as fast as its socket takes)
 *   pusher    Chorus only: the fan-out to 1,000 again, the subscribers on the Pusher dialect
 *   latency   1,000 subscribers at 50 % of the saturation rate just measured: p50/p99/p99.9;
 *             Chorus once more at Bun's 50 % rate (the same rate for both)
 *   channels  9,500 channels × 2 members, chat-like traffic (random channel per message)
 *   ingress   100 publishers as fast as they can, 1 subscriber per channel
 *   idle      RSS and heap per idle connection at 10,000 and 19,000 connections
 *   slow      latency run again with 10 % of the subscribers not reading: memory and p99
 *   yjs       Chorus /yjs next to the sample y-websocket server: updates/s in a room of 100
 *             editors, memory per document (scenarios/yjs.ts; its own two peers)
 *
 * Then it prints the targets (PASS/MISS, against peers measured in this run), saves
 * bench/results/suite-<timestamp>.json, and (full runs) regenerates the marked section of
 * docs/benchmarks.md and docs/benchmarks.svg.
 *
 *   npm run bench                        (≈ 8–10 min)
 *   npm run bench -- --quick             (shorter phases, for a first look)
 *   npm run bench -- --only fanout,latency --servers chorus,bun
 *   npm run bench -- --help
 *
 * A benchmark, not a test: it never fails on a number. It exits non-zero only when a run failed.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { GENERATOR_CPU, SERVER_CPU } from './lib/config.ts';
import { writeDocs } from './lib/docs.ts';
import { isPinned, pinGenerator } from './lib/measure.ts';
import { BUN_BINARY, DEFAULT_PEERS, PEERS, profiling, selectedPeers, type Peer } from './lib/peers.ts';
import { hasTaskset } from './lib/process.ts';
import { booleanSetting, listSetting, numberSetting, readSettings } from './lib/options.ts';
import { formatFixed, formatInteger, formatKiB, formatMiB, median, writeResult } from './lib/report.ts';
import { runChannels, type ChannelsResult } from './scenarios/channels.ts';
import { runFanout, type FanoutResult } from './scenarios/fanout.ts';
import { runIdle, type IdleResult } from './scenarios/idle.ts';
import { runIngress, type IngressResult } from './scenarios/ingress.ts';
import { finalGrowthRate, maxGrowth, runLatency, type LatencyResult } from './scenarios/latency.ts';
import { evaluateTargets, type SuiteSummary } from './lib/targets.ts';
import { YJS_PEERS, runYjs, type YjsResult } from './scenarios/yjs.ts';

export const SCENARIOS = ['fanout', 'flood', 'pusher', 'latency', 'channels', 'ingress', 'idle', 'slow', 'yjs'] as const;
export type Scenario = (typeof SCENARIOS)[number];

// ---------------------------------------------------------------------------------------------
// Settings

const settings = readSettings(process.argv.slice(2), 'Usage: npm run bench -- [options]', [
  { name: 'quick', description: 'short phases (warm-up 1 s, measure 2–3 s): a first look, not for the docs', default: false },
  { name: 'only', description: `scenarios to run, comma-separated: ${SCENARIOS.join(', ')} (default all)`, default: '' },
  {
    name: 'servers',
    description: `servers, comma-separated: ${PEERS.map((peer) => peer.id).join(', ')} (default all but ${PEERS.filter((peer) => peer.optIn).map((peer) => peer.id).join(', ')})`,
    default: DEFAULT_PEERS.map((peer) => peer.id).join(','),
  },
  { name: 'rounds', description: 'runs of each scenario per server, interleaved (tables show the median)', default: 1 },
  { name: 'fanout-subscribers', description: 'subscriber counts of the fan-out scenario', default: '100,1000,10000' },
  { name: 'flood-subscribers', description: 'subscriber counts of the flood scenario (unpaced publisher)', default: '10,1000' },
  { name: 'size', description: 'message payload bytes (envelope included)', default: 100 },
  { name: 'loads', description: 'latency ladder, as shares of the saturation rate; the last is the target step and the slow-reader rate', default: '0.01,0.1,0.5' },
  { name: 'slow-rate', description: 'slow-reader scenario: messages/s, the same for every server (low enough for all of them)', default: 25 },
  { name: 'slow-size', description: 'slow-reader scenario: message bytes (large, so the kernel buffers of a stopped reader fill within seconds)', default: 32768 },
  { name: 'channels', description: 'channels of the many-channels scenario (2 members each; ≤ 9,900 under the 20,000-fd limit)', default: 9500 },
  { name: 'idle-steps', description: 'connection counts of the idle-memory readings', default: '10000,19000' },
  { name: 'duration', description: 'measured seconds of the saturation phases (fanout, channels, ingress); 0 = the default (3, or 2 with --quick)', default: 0 },
  { name: 'profile', description: 'run these Node servers under --cpu-prof (comma-separated ids); profiles go to bench/results/profiles/', default: '' },
  { name: 'docs', description: 'write docs/benchmarks.md and .svg even for a partial or quick run', default: false },
  { name: 'no-docs', description: 'never write the docs', default: false },
  { name: 'render', description: 'only rewrite the docs from a saved result (bench/results/suite-….json), then exit', default: '' },
]);

const renderFrom = settings.render ?? '';
if (renderFrom !== '') {
  const saved = JSON.parse(readFileSync(renderFrom, 'utf8')) as SavedSuite;
  const complete = saved.settings.scenarios.length === SCENARIOS.length && DEFAULT_PEERS.every((peer) => saved.settings.servers.includes(peer.id)) && !saved.settings.quick;
  const written = writeDocs({
    summary: saved.summary,
    targets: evaluateTargets(saved.summary),
    warnings: saved.warnings,
    failures: saved.failures,
    environment: saved.environment,
    date: new Date(saved.date),
    rounds: saved.settings.rounds,
    quick: saved.settings.quick,
    elapsedSeconds: saved.elapsedSeconds,
    partial: !complete,
  });
  console.log(`Updated ${written.join(' and ')} from ${renderFrom}`);
  process.exit(0);
}

const quick = booleanSetting(settings, 'quick');
for (const id of listSetting(settings, 'profile')) profiling.peers.add(id);
profiling.dir = fileURLToPath(new URL('./results/profiles/', import.meta.url));
const only = listSetting(settings, 'only');
for (const name of only) {
  if (!(SCENARIOS as readonly string[]).includes(name)) {
    console.error(`--only: unknown scenario "${name}"; known: ${SCENARIOS.join(', ')}`);
    process.exit(2);
  }
}
const scenarios: Scenario[] = only.length ? SCENARIOS.filter((name) => only.includes(name)) : [...SCENARIOS];
const peers = selectedPeers(settings);
const rounds = numberSetting(settings, 'rounds', 1);
const size = numberSetting(settings, 'size', 40);
const loads = listSetting(settings, 'loads')
  .map(Number)
  .sort((a, b) => a - b);
const load = loads.at(-1) ?? NaN;
const channelCount = numberSetting(settings, 'channels', 1);
const slowRate = numberSetting(settings, 'slow-rate', 1);
const slowSize = numberSetting(settings, 'slow-size', 40);
const fanoutSubscribers = listSetting(settings, 'fanout-subscribers').map(Number);
const floodSubscribers = listSetting(settings, 'flood-subscribers').map(Number);
const idleSteps = listSetting(settings, 'idle-steps').map(Number);
if ([...fanoutSubscribers, ...floodSubscribers].some((n) => !(n >= 1)) || idleSteps.some((n) => !(n >= 1)) || !loads.length || loads.some((n) => !(n > 0 && n <= 1))) {
  console.error('--fanout-subscribers and --idle-steps take comma-separated positive numbers, --loads shares in (0, 1]');
  process.exit(2);
}

/** Phase lengths (ms): full run vs --quick. */
const T = quick
  ? { warmup: 1000, measure: 2000, latencyWarmup: 1000, latencyMeasure: 2000, latencyTarget: 3000, slowBaseline: 2000, slowMin: 10_000, slowMax: 20_000, probeMeasure: 2000 }
  : { warmup: 2000, measure: 3000, latencyWarmup: 1000, latencyMeasure: 4000, latencyTarget: 6000, slowBaseline: 3000, slowMin: 12_000, slowMax: 30_000, probeMeasure: 3000 };
if (numberSetting(settings, 'duration') > 0) T.measure = numberSetting(settings, 'duration') * 1000;
const LATENCY_SUBSCRIBERS = 1000;
const PROBE_EVERY = 20;
const SLOW_FRACTION = 0.1;
/** Chorus's production default slow-consumer cap, used in the slow-reader scenario. */
const CHORUS_DEFAULT_MAX_PENDING = 1024 * 1024;
/**
 * What the kernel buffers for a loopback socket that stopped reading before a server's write
 * backs up (measured here: ~4 MB between the sender's send buffer and the receiver's receive
 * buffer). Until a slow reader has been sent that much, no server has to queue anything.
 */
const KERNEL_BUFFER_BYTES = 4 * 1024 * 1024;

/**
 * How long slow readers stay stopped: until the kernel buffers are full and Chorus's cap is
 * reached, plus 14 s to see what follows (Chorus cuts a slow consumer 5 s after its close frame;
 * the last third of the run is where "still growing?" is judged), within [slowMin, slowMax].
 */
const slowDuration = Math.round(
  Math.min(T.slowMax, Math.max(T.slowMin, ((KERNEL_BUFFER_BYTES + CHORUS_DEFAULT_MAX_PENDING) / (slowSize * slowRate)) * 1000 + (quick ? 6000 : 14_000))),
);

// ---------------------------------------------------------------------------------------------
// Run

const cores = availableParallelism();
const pinned = pinGenerator();
const startedAt = new Date();
const environment = describeEnvironment();
console.log(
  `Chorus benchmark suite: ${scenarios.join(', ')} × ${peers.map((peer) => peer.label).join(', ')}` +
    `${rounds > 1 ? `, ${rounds} rounds` : ''}${quick ? ' (--quick)' : ''}.`,
);
console.log(
  pinned
    ? `Cores: servers on CPU ${SERVER_CPU}, load generator (pid ${process.pid}) and its helpers on CPU ${GENERATOR_CPU}.`
    : `WARNING: not pinned (${hasTaskset ? `${cores} core(s)` : 'no taskset'}): servers and generator share the cores, so results are not comparable with pinned runs.`,
);
console.log(`${environment.cpu}; Node ${environment.node}; Bun ${environment.bun}; socket.io ${environment.socketio}; ws ${environment.ws}; load average ${environment.loadAverage}.`);

interface Failure {
  scenario: string;
  server: string;
  round: number;
  error: string;
}

const runs = {
  fanout: [] as (FanoutResult & { round: number })[],
  /** Fan-out to 1,000 with an unpaced publisher (scenario `flood`). */
  flood: [] as (FanoutResult & { round: number })[],
  /** Chorus's fan-out to 1,000 Pusher subscribers (scenario `pusher`). */
  pusher: [] as (FanoutResult & { round: number })[],
  latency: [] as (LatencyResult & { round: number })[],
  /** Chorus at Bun's target-load rate (scenario `latency`, when both run): p99 at the same rate. */
  latencyAtBunRate: [] as (LatencyResult & { round: number })[],
  channels: [] as (ChannelsResult & { round: number })[],
  ingress: [] as (IngressResult & { round: number })[],
  idle: [] as (IdleResult & { round: number })[],
  slow: [] as (LatencyResult & { round: number })[],
  yjs: [] as (YjsResult & { round: number })[],
  /** Short saturation probes run only because latency/slow needed a rate and fanout did not run. */
  probes: [] as FanoutResult[],
};
const failures: Failure[] = [];
const suiteStart = performance.now();

async function attempt<T>(scenario: string, peer: Peer, round: number, body: () => Promise<T>): Promise<T | undefined> {
  try {
    return await body();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    console.log(`  [${peer.id}] FAILED: ${message}`);
    failures.push({ scenario, server: peer.id, round, error: message });
    return undefined;
  }
}

function heading(title: string): void {
  const elapsed = (performance.now() - suiteStart) / 1000;
  console.log(`\n== ${title}  (${Math.floor(elapsed / 60)}:${String(Math.round(elapsed % 60)).padStart(2, '0')} elapsed)`);
}

/** Peers in round order: reversed every other round so drift does not favour one peer. */
function ordered(round: number): Peer[] {
  return round % 2 === 1 ? peers : [...peers].reverse();
}

/** The fan-out saturation rate (deliveries/s to 1,000 subscribers) the latency ladder is relative to. */
async function saturationRate(peer: Peer): Promise<number | undefined> {
  let saturation = median(runs.fanout.filter((run) => run.server === peer.id && run.subscribers === LATENCY_SUBSCRIBERS).map((run) => run.deliveredPerSecond));
  if (!Number.isFinite(saturation)) {
    const probe = runs.probes.find((run) => run.server === peer.id);
    if (probe) {
      saturation = probe.deliveredPerSecond;
    } else {
      console.log(`  [${peer.id}] measuring the saturation rate first (fan-out to ${LATENCY_SUBSCRIBERS})`);
      const result = await attempt('saturation probe', peer, 0, () =>
        runFanout(peer, { subscribers: LATENCY_SUBSCRIBERS, size, batch: 10, warmupMs: T.warmup, durationMs: T.probeMeasure, label: `${peer.id} saturation` }),
      );
      if (!result) return undefined;
      runs.probes.push(result);
      saturation = result.deliveredPerSecond;
    }
  }
  return saturation;
}

/** Publish rate (messages/s to 1,000 subscribers) at `share` of the saturation rate. */
function rateAt(saturation: number, share: number): number {
  return Math.max(1, Math.round((share * saturation) / LATENCY_SUBSCRIBERS));
}

const chorusPeer = peers.find((peer) => peer.id === 'chorus');
const bunPeer = peers.find((peer) => peer.id === 'bun');

/**
 * Chorus once more at Bun's target-load rate: each server's ladder is relative to its own
 * saturation, so their p99s at "50 %" are at different rates; this one compares like with like.
 */
async function latencyAtBunRate(round: number): Promise<void> {
  if (!chorusPeer || !bunPeer) return;
  const bunSaturation = await saturationRate(bunPeer);
  if (bunSaturation === undefined) return;
  const rate = rateAt(bunSaturation, load);
  console.log(`${chorusPeer.label} at Bun's ${Math.round(load * 100)} % rate (${formatInteger(rate)} msg/s)`);
  const result = await attempt('latency at Bun rate', chorusPeer, round, () =>
    runLatency(chorusPeer, {
      subscribers: LATENCY_SUBSCRIBERS,
      size,
      steps: [{ rate, load, warmupMs: T.latencyWarmup, durationMs: T.latencyTarget }],
      probeEvery: PROBE_EVERY,
      slowFraction: 0,
      label: 'chorus at bun rate',
    }),
  );
  if (result) runs.latencyAtBunRate.push({ ...result, round });
}
if (scenarios.includes('pusher') && !chorusPeer) console.log('Scenario pusher skipped: it runs on Chorus only (add chorus to --servers).');

/**
 * Chorus's fan-out to 1,000 Pusher subscribers, fed by the raw fan-out's own publisher (a raw
 * client writing the same frames), so that against the raw row only the subscribers' dialect
 * differs; a Pusher HTTP API publisher would measure request signing and HTTP parsing instead.
 */
async function runPusherFanout(round: number, roundLabel: string): Promise<void> {
  if (!chorusPeer) return;
  heading(`Pusher fan-out: 1 raw publisher → ${formatInteger(LATENCY_SUBSCRIBERS)} Pusher subscribers (/app/{key}), ${size}-byte messages, at saturation${roundLabel}`);
  console.log(`${chorusPeer.label} (Pusher dialect)`);
  const result = await attempt('pusher', chorusPeer, round, () =>
    runFanout(chorusPeer, { subscribers: LATENCY_SUBSCRIBERS, size, batch: 10, warmupMs: T.warmup, durationMs: T.measure, subscriberDialect: 'pusher', label: 'chorus pusher' }),
  );
  if (result) runs.pusher.push({ ...result, round });
}

for (let round = 1; round <= rounds; round++) {
  const roundLabel = rounds > 1 ? ` — round ${round} of ${rounds}` : '';
  // Next to the raw fan-out to 1,000, before it in even rounds and after it in odd ones, so that
  // drift on the machine does not favour either side of the 0.9× comparison.
  const pusherNextToRaw = scenarios.includes('pusher') && scenarios.includes('fanout') && fanoutSubscribers.includes(LATENCY_SUBSCRIBERS);

  if (scenarios.includes('fanout')) {
    for (const subscribers of fanoutSubscribers) {
      const pusherHere = pusherNextToRaw && subscribers === LATENCY_SUBSCRIBERS;
      if (pusherHere && round % 2 === 0) await runPusherFanout(round, roundLabel);
      heading(`Fan-out: 1 publisher → ${formatInteger(subscribers)} subscribers, ${size}-byte messages, at saturation${roundLabel}`);
      for (const peer of ordered(round)) {
        console.log(`${peer.label}`);
        const result = await attempt('fanout', peer, round, () => runFanout(peer, { subscribers, size, batch: 10, warmupMs: T.warmup, durationMs: T.measure }));
        if (result) runs.fanout.push({ ...result, round });
      }
      if (pusherHere && round % 2 === 1) await runPusherFanout(round, roundLabel);
    }
  }
  if (scenarios.includes('pusher') && !pusherNextToRaw) await runPusherFanout(round, roundLabel);

  if (scenarios.includes('flood')) {
    for (const subscribers of floodSubscribers) {
      heading(`Flood: 1 unpaced publisher (as fast as its socket takes) → ${formatInteger(subscribers)} subscribers, ${size}-byte messages${roundLabel}`);
      for (const peer of ordered(round)) {
        console.log(`${peer.label}`);
        const result = await attempt('flood', peer, round, () =>
          runFanout(peer, { subscribers, size, batch: 10, warmupMs: T.warmup, durationMs: T.measure, pace: 'socket', label: `${peer.id} flood` }),
        );
        if (result) runs.flood.push({ ...result, round });
      }
    }
  }

  if (scenarios.includes('latency')) {
    heading(`Latency: ${formatInteger(LATENCY_SUBSCRIBERS)} subscribers at ${loads.map((share) => `${Math.round(share * 100)} %`).join(', ')} of each server's saturation rate, open-loop${roundLabel}`);
    for (const peer of ordered(round)) {
      console.log(`${peer.label}`);
      const saturation = await saturationRate(peer);
      if (saturation === undefined) continue;
      const steps = loads.map((share) => ({
        rate: rateAt(saturation, share),
        load: share,
        warmupMs: T.latencyWarmup,
        durationMs: share === load ? T.latencyTarget : T.latencyMeasure,
      }));
      const result = await attempt('latency', peer, round, () => runLatency(peer, { subscribers: LATENCY_SUBSCRIBERS, size, steps, probeEvery: PROBE_EVERY, slowFraction: 0 }));
      if (result) runs.latency.push({ ...result, round });
    }
    await latencyAtBunRate(round);
  }

  if (scenarios.includes('channels')) {
    heading(`Many channels: ${formatInteger(channelCount)} channels × 2 members, chat-like traffic${roundLabel}`);
    for (const peer of ordered(round)) {
      console.log(`${peer.label}`);
      const result = await attempt('channels', peer, round, () =>
        runChannels(peer, { channels: channelCount, size, window: 2000, warmupMs: T.warmup, durationMs: T.measure }),
      );
      if (result) runs.channels.push({ ...result, round });
    }
  }

  if (scenarios.includes('ingress')) {
    heading(`Ingress: 100 publishers as fast as accepted, 1 subscriber per channel${roundLabel}`);
    for (const peer of ordered(round)) {
      console.log(`${peer.label}`);
      const result = await attempt('ingress', peer, round, () =>
        runIngress(peer, { publishers: 100, size, batch: 16, window: 128, warmupMs: T.warmup, durationMs: T.measure }),
      );
      if (result) runs.ingress.push({ ...result, round });
    }
  }

  if (scenarios.includes('idle')) {
    heading(`Idle memory: ${idleSteps.map(formatInteger).join(' and ')} idle connections${roundLabel}`);
    for (const peer of ordered(round)) {
      console.log(`${peer.label}`);
      const result = await attempt('idle', peer, round, () => runIdle(peer, { steps: idleSteps, perHolder: 10_000, perChannel: 10, settleMs: 1000 }));
      if (result) runs.idle.push({ ...result, round });
    }
  }

  if (scenarios.includes('slow')) {
    heading(
      `Slow readers: ${formatInteger(LATENCY_SUBSCRIBERS)} subscribers, ${slowRate} msg/s of ${formatInteger(slowSize)} bytes; ` +
        `${Math.round(SLOW_FRACTION * 100)} % stop reading after ${T.slowBaseline / 1000} s, for ${slowDuration / 1000} s${roundLabel}`,
    );
    for (const peer of ordered(round)) {
      console.log(`${peer.label}`);
      const result = await attempt('slow', peer, round, () =>
        runLatency(peer, {
          subscribers: LATENCY_SUBSCRIBERS,
          size: slowSize,
          steps: [
            { rate: slowRate, load: NaN, warmupMs: T.latencyWarmup, durationMs: T.slowBaseline },
            { rate: slowRate, load: NaN, warmupMs: 0, durationMs: slowDuration, slow: true },
          ],
          probeEvery: PROBE_EVERY,
          slowFraction: SLOW_FRACTION,
          env: { BENCH_CHORUS_MAX_PENDING_BYTES: String(CHORUS_DEFAULT_MAX_PENDING) },
          label: `${peer.id} slow`,
        }),
      );
      if (result) runs.slow.push({ ...result, round });
    }
  }

  if (scenarios.includes('yjs')) {
    heading(`Yjs rooms: 100 editors in one room, 10 typing; memory per document (Chorus /yjs and the sample y-websocket server)${roundLabel}`);
    for (const peer of round % 2 === 1 ? YJS_PEERS : [...YJS_PEERS].reverse()) {
      console.log(peer.label);
      const asPeer = { id: peer.id, label: peer.label, script: peer.script, dialect: 'raw' as const };
      const result = await attempt('yjs', asPeer, round, () =>
        runYjs(peer, { editors: 100, writers: 10, window: 20, warmupMs: T.warmup, durationMs: T.measure, documents: quick ? 100 : 500 }),
      );
      if (result) runs.yjs.push({ ...result, round });
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Summary: medians over rounds (the run with the median headline number, so its fields agree)

/** p99 of a latency run's target step (the highest load). */
function targetP99(run: LatencyResult): number {
  return run.steps.at(-1)?.latency.p99 ?? NaN;
}

/**
 * The run with the median `key`. With an even number of runs, the better of the two middle ones:
 * noise on a shared machine only ever makes a number worse.
 */
function medianRun<T extends { server: string }>(
  list: readonly T[],
  server: string,
  key: (run: T) => number,
  better: 'higher' | 'lower',
  filter: (run: T) => boolean = () => true,
): T | undefined {
  const own = list.filter((run) => run.server === server && filter(run)).sort((a, b) => (better === 'higher' ? key(b) - key(a) : key(a) - key(b)));
  return own[Math.floor((own.length - 1) / 2)];
}

const summary: SuiteSummary = {
  peers: peers.map((peer) => ({ id: peer.id, label: peer.label })),
  fanoutSubscribers,
  idleSteps,
  fanout: peers.flatMap((peer) =>
    fanoutSubscribers.flatMap((subscribers) => {
      const run = medianRun(runs.fanout, peer.id, (r) => r.deliveredPerSecond, 'higher', (r) => r.subscribers === subscribers);
      return run
        ? [{ server: peer.id, subscribers, deliveredPerSecond: run.deliveredPerSecond, cpuPerMillion: run.serverCpuSecondsPerMillion, perServerWrite: run.measurement.perServerWrite, generatorBound: run.measurement.generatorBound, warnings: run.warnings }]
        : [];
    }),
  ),
  flood: peers.flatMap((peer) =>
    floodSubscribers.flatMap((subscribers) => {
      const run = medianRun(runs.flood, peer.id, (r) => r.deliveredPerSecond, 'higher', (r) => r.subscribers === subscribers);
      return run
      ? [{ server: peer.id, subscribers, deliveredPerSecond: run.deliveredPerSecond, cpuPerMillion: run.serverCpuSecondsPerMillion, published: run.published, undelivered: run.undelivered, closedSubscribers: run.closedSubscribers, generatorBound: run.measurement.generatorBound, warnings: run.warnings }]
      : [];
    }),
  ),
  latencyAtBunRate: [medianRun(runs.latencyAtBunRate, 'chorus', targetP99, 'lower')].flatMap((run) => {
    const step = run?.steps.at(-1);
    return run && step ? [{ server: run.server, rate: step.rate, p50: step.latency.p50, p99: step.latency.p99, p999: step.latency.p999 }] : [];
  }),
  pusherFanout: chorusPeer
    ? [medianRun(runs.pusher, chorusPeer.id, (r) => r.deliveredPerSecond, 'higher')].flatMap((run) =>
        run
          ? [{ server: run.server, subscribers: run.subscribers, deliveredPerSecond: run.deliveredPerSecond, cpuPerMillion: run.serverCpuSecondsPerMillion, perServerWrite: run.measurement.perServerWrite, generatorBound: run.measurement.generatorBound, warnings: run.warnings }]
          : [],
      )
    : [],
  latency: peers.flatMap((peer) => {
    const run = medianRun(runs.latency, peer.id, targetP99, 'lower');
    return run
      ? [
          {
            server: peer.id,
            subscribers: run.subscribers,
            steps: run.steps.map((step) => ({ load: step.load, rate: step.rate, ...step.latency, generatorLoopDelayP99Ms: step.generatorLoopDelayP99Ms, serverUtilization: step.measurement.serverUtilization })),
            warnings: run.warnings,
          },
        ]
      : [];
  }),
  channels: peers.flatMap((peer) => {
    const run = medianRun(runs.channels, peer.id, (r) => r.deliveredPerSecond, 'higher');
    return run ? [{ server: peer.id, channels: run.channels, deliveredPerSecond: run.deliveredPerSecond, cpuPerMillion: run.serverCpuSecondsPerMillion, generatorBound: run.measurement.generatorBound, warnings: run.warnings }] : [];
  }),
  ingress: peers.flatMap((peer) => {
    const run = medianRun(runs.ingress, peer.id, (r) => r.acceptedPerSecond, 'higher');
    return run ? [{ server: peer.id, acceptedPerSecond: run.acceptedPerSecond, cpuPerMillion: run.serverCpuSecondsPerMillion, generatorBound: run.measurement.generatorBound, warnings: run.warnings }] : [];
  }),
  idle: peers.flatMap((peer) => {
    const run = medianRun(runs.idle, peer.id, (r) => r.steps.at(-1)?.rssPerConnection ?? NaN, 'lower');
    return run
      ? [{ server: peer.id, baselineRss: run.baseline.rss, steps: run.steps.map((step) => ({ connections: step.connections, open: step.open, rssPerConnection: step.rssPerConnection, heapPerConnection: step.heapPerConnection })), warnings: run.warnings }]
      : [];
  }),
  slow: peers.flatMap((peer) => {
    const run = medianRun(runs.slow, peer.id, targetP99, 'lower');
    const step = run?.steps.at(-1);
    const before = run?.steps[0];
    if (!run || !step || !before) return [];
    return [
      {
        server: peer.id,
        rate: step.rate,
        size: slowSize,
        p99: step.latency.p99,
        p999: step.latency.p999,
        baselineP99: before.latency.p99,
        kernelFillSeconds: KERNEL_BUFFER_BYTES / (slowSize * step.rate),
        maxGrowth: maxGrowth(run.rssTimeline),
        finalGrowthRate: finalGrowthRate(run.rssTimeline),
        slowSubscribers: run.slowSubscribers,
        slowDisconnected: run.slowDisconnected,
        durationSeconds: run.rssTimeline.at(-1)?.atSeconds ?? NaN,
        timeline: run.rssTimeline,
        warnings: run.warnings,
      },
    ];
  }),
  chorusSlowConsumerCap: CHORUS_DEFAULT_MAX_PENDING,
};

const targets = evaluateTargets(summary);
const elapsedSeconds = Math.round((performance.now() - suiteStart) / 1000);

console.log(`\n== Results${rounds > 1 ? ` (median of ${rounds} rounds)` : ''}${quick ? ' — QUICK RUN: short phases, indicative only' : ''}\n`);
console.log(printableSummary());
console.log('\nTargets (against peers measured in this run):');
for (const target of targets) console.log(`  ${target.status.padEnd(4)}  ${target.name}: ${target.detail}`);

const warnings = [
  ...runs.fanout.flatMap((run) => run.warnings.map((warning) => `fan-out ${formatInteger(run.subscribers)}, ${run.server}: ${warning}`)),
  ...runs.flood.flatMap((run) => run.warnings.map((warning) => `flood ${formatInteger(run.subscribers)}, ${run.server}: ${warning}`)),
  ...runs.pusher.flatMap((run) => run.warnings.map((warning) => `Pusher fan-out ${formatInteger(run.subscribers)}, ${run.server}: ${warning}`)),
  ...runs.latency.flatMap((run) => run.warnings.map((warning) => `latency, ${run.server}: ${warning}`)),
  ...runs.channels.flatMap((run) => run.warnings.map((warning) => `many channels, ${run.server}: ${warning}`)),
  ...runs.ingress.flatMap((run) => run.warnings.map((warning) => `ingress, ${run.server}: ${warning}`)),
  ...runs.idle.flatMap((run) => run.warnings.map((warning) => `idle, ${run.server}: ${warning}`)),
  ...runs.slow.flatMap((run) => run.warnings.map((warning) => `slow readers, ${run.server}: ${warning}`)),
];
const uniqueWarnings = [...new Set(warnings)];
if (uniqueWarnings.length) console.log(`\nWarnings:\n${uniqueWarnings.map((warning) => `  - ${warning}`).join('\n')}`);
if (failures.length) console.log(`\nFailures:\n${failures.map((failure) => `  - ${failure.scenario}, ${failure.server}: ${failure.error}`).join('\n')}`);

const file = writeResult('suite', {
  benchmark: 'suite',
  date: startedAt.toISOString(),
  elapsedSeconds,
  environment: { ...environment, cores, pinned: isPinned(), serverCpu: SERVER_CPU, generatorCpu: GENERATOR_CPU },
  settings: { quick, scenarios, servers: peers.map((peer) => peer.id), rounds, size, loads, slowRate, slowSize, slowDuration, channels: channelCount, fanoutSubscribers, idleSteps, phases: T },
  summary,
  targets,
  warnings: uniqueWarnings,
  failures,
  runs,
});
console.log(`\nSaved ${file}`);

const complete = scenarios.length === SCENARIOS.length && DEFAULT_PEERS.every((peer) => peers.includes(peer)) && !quick;
if (booleanSetting(settings, 'no-docs')) {
  console.log('Docs left as they are (--no-docs).');
} else if (complete || booleanSetting(settings, 'docs')) {
  const written = writeDocs({ summary, targets, warnings: uniqueWarnings, failures, environment, date: startedAt, rounds, quick, elapsedSeconds, partial: !complete });
  console.log(`Updated ${written.join(' and ')}`);
} else {
  console.log('Docs left as they are (partial or --quick run; pass --docs to write them anyway).');
}
console.log(`Total time ${Math.floor(elapsedSeconds / 60)} min ${elapsedSeconds % 60} s.`);
if (failures.length > 0) process.exitCode = 1;

// ---------------------------------------------------------------------------------------------

function printableSummary(): string {
  const label = (id: string): string => peers.find((peer) => peer.id === id)?.label ?? id;
  const lines: string[] = [];
  const fanoutLine = (row: SuiteSummary['fanout'][number], name: string): string =>
    `fan-out ${formatInteger(row.subscribers).padStart(6)} subs  ${name.padEnd(16)} ${formatInteger(row.deliveredPerSecond).padStart(11)} msg/s  ` +
    `${formatFixed(row.cpuPerMillion, 2).padStart(6)} CPU-s/M${row.generatorBound ? '  (generator-bound)' : ''}`;
  // The Pusher row goes right under the raw row it is judged against.
  const pusherRows = summary.pusherFanout ?? [];
  let pusherPrinted = false;
  for (const row of summary.fanout) {
    lines.push(fanoutLine(row, label(row.server)));
    if (row.server === 'chorus' && pusherRows.some((pusher) => pusher.subscribers === row.subscribers)) {
      for (const pusher of pusherRows) lines.push(fanoutLine(pusher, `${label(pusher.server)} Pusher`));
      pusherPrinted = true;
    }
  }
  if (!pusherPrinted) for (const pusher of pusherRows) lines.push(fanoutLine(pusher, `${label(pusher.server)} Pusher`));
  for (const row of summary.flood ?? []) {
    lines.push(
      `flood ${formatInteger(row.subscribers).padStart(6)} subs    ${label(row.server).padEnd(16)} ${formatInteger(row.deliveredPerSecond).padStart(11)} msg/s  ${formatFixed(row.cpuPerMillion, 2).padStart(6)} CPU-s/M  ` +
        `${formatInteger(row.undelivered)} deliveries missing, ${row.closedSubscribers} subscribers cut${row.generatorBound ? '  (generator-bound)' : ''}`,
    );
  }
  for (const row of summary.latency) {
    for (const step of row.steps) {
      lines.push(
        `latency ${String(Math.round(step.load * 100)).padStart(3)}% ${formatInteger(step.rate).padStart(6)}/s ${label(row.server).padEnd(16)} ` +
          `p50 ${formatFixed(step.p50, 2)} ms  p99 ${formatFixed(step.p99, 2)} ms  p99.9 ${formatFixed(step.p999, 2)} ms`,
      );
    }
  }
  for (const row of summary.latencyAtBunRate ?? []) {
    lines.push(`latency at Bun's rate ${formatInteger(row.rate).padStart(6)}/s ${label(row.server).padEnd(16)} p50 ${formatFixed(row.p50, 2)} ms  p99 ${formatFixed(row.p99, 2)} ms  p99.9 ${formatFixed(row.p999, 2)} ms`);
  }
  for (const row of summary.channels) {
    lines.push(`many channels          ${label(row.server).padEnd(16)} ${formatInteger(row.deliveredPerSecond).padStart(11)} msg/s  ${formatFixed(row.cpuPerMillion, 2).padStart(6)} CPU-s/M${row.generatorBound ? '  (generator-bound)' : ''}`);
  }
  for (const row of summary.ingress) {
    lines.push(`ingress                ${label(row.server).padEnd(16)} ${formatInteger(row.acceptedPerSecond).padStart(11)} msg/s  ${formatFixed(row.cpuPerMillion, 2).padStart(6)} CPU-s/M${row.generatorBound ? '  (generator-bound)' : ''}`);
  }
  for (const row of summary.idle) {
    lines.push(
      `idle memory            ${label(row.server).padEnd(16)} ` +
        row.steps.map((step) => `@${formatInteger(step.connections)}: RSS ${formatKiB(step.rssPerConnection)}/conn, heap ${formatKiB(step.heapPerConnection)}/conn`).join('; '),
    );
  }
  for (const row of summary.slow) {
    lines.push(
      `slow readers           ${label(row.server).padEnd(16)} p99 ${formatFixed(row.p99, 2)} ms (baseline ${formatFixed(row.baselineP99, 2)} ms), RSS growth max ${formatMiB(row.maxGrowth)} ` +
        `, last third ${formatMiB(row.finalGrowthRate)}/s, kernel full after ${formatFixed(row.kernelFillSeconds, 0)} s of ${formatFixed(row.durationSeconds, 0)} s, ` +
        `slow disconnected ${row.slowDisconnected}/${row.slowSubscribers}`,
    );
  }
  for (const id of new Set(runs.yjs.map((run) => run.server))) {
    const run = medianRun(runs.yjs, id, (r) => r.updatesPerSecond, 'higher');
    if (!run) continue;
    lines.push(
      `yjs room of ${run.editors}     ${(YJS_PEERS.find((peer) => peer.id === id)?.label ?? id).padEnd(16)} ${formatInteger(run.updatesPerSecond).padStart(8)} updates/s, ${formatInteger(run.deliveriesPerSecond)} deliveries/s; ` +
        `per ${formatKiB(run.documentBytes)} document: loaded heap ${formatKiB(run.heapPerLoadedDocument)}` +
        (run.heapPerStoredDocument === undefined ? '' : `, unloaded heap ${formatKiB(run.heapPerStoredDocument)} + its ${formatKiB(run.documentBytes)} encoded state`),
    );
  }
  return lines.join('\n');
}

/** The parts of a saved result file that --render needs. */
interface SavedSuite {
  date: string;
  elapsedSeconds: number;
  environment: ReturnType<typeof describeEnvironment>;
  settings: { quick: boolean; scenarios: string[]; servers: string[]; rounds: number };
  summary: SuiteSummary;
  warnings: string[];
  failures: { scenario: string; server: string; round: number; error: string }[];
}

function describeEnvironment(): { node: string; bun: string; socketio: string; ws: string; cpu: string; platform: string; loadAverage: string } {
  const version = (pkg: string): string => {
    try {
      return (JSON.parse(readFileSync(fileURLToPath(new URL(`../node_modules/${pkg}/package.json`, import.meta.url)), 'utf8')) as { version: string }).version;
    } catch {
      return 'not installed';
    }
  };
  let bun = 'not installed';
  try {
    bun = execFileSync(BUN_BINARY, ['--version'], { encoding: 'utf8' }).trim();
  } catch {
    // reported as not installed
  }
  let loadAverage = 'n/a';
  try {
    loadAverage = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  } catch {
    // not Linux
  }
  return { node: process.version, bun, socketio: version('socket.io'), ws: version('ws'), cpu: `${cpus()[0]?.model ?? 'unknown CPU'} × ${cores}`, platform: `${process.platform} ${process.arch}`, loadAverage };
}
