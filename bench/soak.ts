/**
 * Churn soak (issue 16 part 4): helper processes connect and disconnect thousands of clients per
 * second over every dialect, with presence, subscriptions, publishes and abrupt cuts
 * (lib/churn-process.ts), against one Chorus node on the memory engine (or, with --redis, two
 * nodes on a redis-server started here). Every few seconds the server's memory, live handles,
 * timers and open file descriptors are sampled (after two full GCs, through the harness's
 * `resources` command: servers/harness.ts). At half time the helpers pause until every client
 * has left, and again at the end: what the server holds with no client at the end, minus what it
 * held at half time, per connection served in between, is the leak measure ("flat" or not:
 * lib/soak-report.ts). The least-squares slope over the samples of the second half (taken while
 * churning) is reported next to it.
 *
 *   npm run bench:soak                        (10 minutes)
 *   npm run bench:soak -- --duration 3m       (shorter; the docs say how long the run was)
 *   npm run bench:soak -- --redis --yjs       (2 nodes on Redis; Yjs rooms too)
 *   npm run bench:soak -- --snapshots         (heap snapshots at half time and at the end, diffed)
 *   npm run bench:soak -- --help
 *
 * Output: progress lines, a table, slopes with PASS/MISS against the bound (FLAT_BOUND below),
 * bench/results/soak-<timestamp>.json, the section between `<!-- bench:soak:begin -->` and
 * `<!-- bench:soak:end -->` in docs/benchmarks.md and the chart docs/benchmarks-soak.svg.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { ChurnHelper, sumStats } from './lib/churn.ts';
import type { ChurnDialect } from './lib/churn-process.ts';
import { startRedis, type Child } from './lib/children.ts';
import { SERVER_CPU } from './lib/config.ts';
import { booleanSetting, listSetting, numberSetting, readSettings } from './lib/options.ts';
import { ServerProcess } from './lib/process.ts';
import { leastSquares } from './lib/regression.ts';
import { formatFixed, formatInteger, formatMiB, progress, sleep, writeResult } from './lib/report.ts';
import { FLAT_COUNT, FLAT_HEAP_BYTES_PER_100K, renderSoak, type Metric, type Sample, type Slope, type SoakRun, type Verdict } from './lib/soak-report.ts';
import { diffHeapSnapshots, type SnapshotDiffRow } from './tools/heapsnapshot-diff.ts';

const CHORUS_SCRIPT = fileURLToPath(new URL('./servers/chorus.ts', import.meta.url));
const SNAPSHOT_DIR = fileURLToPath(new URL('./results/soak-snapshots/', import.meta.url));
const DRAIN_TIMEOUT_MS = 20_000;

const settings = readSettings(process.argv.slice(2), 'Usage: npm run bench:soak -- [options]', [
  { name: 'duration', description: 'how long to churn: 10m, 3m, 90s or seconds', default: '10m' },
  { name: 'rate', description: 'new clients per second, over all helpers', default: 2000 },
  { name: 'helpers', description: 'churn helper processes', default: 2 },
  { name: 'lifetime', description: 'client lifetime in ms, min-max', default: '200-3000' },
  { name: 'channels', description: 'channel pool (a tenth of it for Yjs rooms); few enough that their history (100 messages each) fills during the warm-up', default: 100 },
  { name: 'dialects', description: 'dialects to churn', default: 'raw,v1,pusher' },
  { name: 'yjs', description: 'add Yjs rooms (/yjs/{room}) to the dialects', default: false },
  { name: 'cut-share', description: 'share of clients cut without a close frame (half of them with a TCP reset)', default: 0.3 },
  { name: 'sample', description: 'seconds between samples', default: 5 },
  { name: 'redis', description: 'two nodes on a redis-server started by the benchmark (instead of one memory-engine node)', default: false },
  { name: 'snapshots', description: 'write heap snapshots at the two pauses (half time, end) and diff them', default: false },
  { name: 'docs', description: 'update docs/benchmarks.md and docs/benchmarks-soak.svg even after a run shorter than 2 minutes', default: false },
  { name: 'no-docs', description: 'never update the docs', default: false },
  { name: 'render', description: 'only rewrite the docs from a saved run (bench/results/soak-….json)', default: '' },
]);

if (settings.render) {
  // Rewrites the docs from a saved run (bench/results/soak-….json).
  const saved = JSON.parse(readFileSync(settings.render, 'utf8')) as Omit<SoakRun, 'date'> & { date: string };
  console.log(renderSoak({ ...saved, date: new Date(saved.date) }, true).text);
  console.log('Updated docs/benchmarks.md (bench:soak section) and docs/benchmarks-soak.svg');
  process.exit(0);
}

function parseDuration(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(s|m|h)?$/.exec(text.trim());
  if (!match) {
    console.error(`--duration: expected e.g. 10m, 90s or 120, got ${JSON.stringify(text)}`);
    process.exit(2);
  }
  return Number(match[1]) * ({ s: 1, m: 60, h: 3600 }[match[2] as 's' | 'm' | 'h' | undefined ?? 's'] ?? 1) * 1000;
}

const [lifetimeMin = 200, lifetimeMax = 3000] = (settings.lifetime ?? '').split('-').map(Number);
const options = {
  durationMs: parseDuration(settings.duration ?? '10m'),
  rate: numberSetting(settings, 'rate', 1),
  helpers: numberSetting(settings, 'helpers', 1),
  lifetimeMs: [lifetimeMin, lifetimeMax] as [number, number],
  channels: numberSetting(settings, 'channels', 1),
  dialects: [...listSetting(settings, 'dialects'), ...(booleanSetting(settings, 'yjs') ? ['yjs'] : [])] as ChurnDialect[],
  cutShare: numberSetting(settings, 'cut-share', 0),
  sampleMs: numberSetting(settings, 'sample', 1) * 1000,
  redis: booleanSetting(settings, 'redis'),
  snapshots: booleanSetting(settings, 'snapshots'),
};
const writeDocs = !booleanSetting(settings, 'no-docs') && (booleanSetting(settings, 'docs') || options.durationMs >= 120_000);
if (options.dialects.some((dialect) => !['raw', 'v1', 'pusher', 'yjs'].includes(dialect))) {
  console.error(`--dialects: raw, v1, pusher, yjs; got ${settings.dialects}`);
  process.exit(2);
}

// ---- sampling -----------------------------------------------------------------------------------

async function sample(nodes: readonly ServerProcess[], atSeconds: number, connections: number): Promise<Sample> {
  const readings = await Promise.all(nodes.map(async (node) => ({ resources: await node.resources(), fds: node.fdCount() ?? NaN, cpu: await node.cpuSeconds() })));
  const total: Sample = { atSeconds, connections, sockets: 0, heapUsed: 0, rss: 0, otherHandles: 0, timers: 0, fds: 0, cpuSeconds: 0 };
  for (const { resources, fds, cpu } of readings) {
    const sockets = resources.handles.TCPSocketWrap ?? 0;
    total.sockets += sockets;
    total.heapUsed += resources.heapUsed;
    total.rss += resources.rss;
    total.otherHandles += Object.values(resources.handles).reduce((sum, n) => sum + n, 0) - sockets;
    total.timers += resources.timers;
    total.fds += fds;
    total.cpuSeconds += cpu;
  }
  return total;
}

/** Waits until the server holds no more sockets than before any client (the metrics scrape's keep-alive socket, both ends, comes and goes), then samples. */
async function drain(nodes: readonly ServerProcess[], baseline: Sample, atSeconds: number, connections: number): Promise<Sample> {
  const deadline = performance.now() + DRAIN_TIMEOUT_MS;
  let reading: Sample;
  do {
    await sleep(1000);
    reading = await sample(nodes, atSeconds, connections);
  } while (reading.sockets > baseline.sockets && performance.now() < deadline);
  return reading;
}

const METRICS: readonly Metric[] = ['heapUsed', 'rss', 'otherHandles', 'timers', 'fds'];

/** Least squares over samples taken while churning, with the sockets open at each sample as a second regressor. */
function slopes(samples: readonly Sample[]): Slope[] {
  return METRICS.map((metric) => {
    const ys = samples.map((s) => s[metric]);
    return {
      metric,
      per100k: (leastSquares(samples.map((s) => [s.connections, s.sockets]), ys)[1] ?? NaN) * 100_000,
      plainPer100k: (leastSquares(samples.map((s) => [s.connections]), ys)[1] ?? NaN) * 100_000,
    };
  });
}

/** Growth between the two readings without clients, per 100k connections served in between, judged against the bounds. */
function verdicts(mid: Sample, end: Sample): Verdict[] {
  const served = end.connections - mid.connections;
  return METRICS.map((metric) => {
    const growth = end[metric] - mid[metric];
    const per100k = (growth / Math.max(1, served)) * 100_000;
    const flat = metric === 'heapUsed' ? per100k <= FLAT_HEAP_BYTES_PER_100K : metric === 'rss' ? undefined : growth <= FLAT_COUNT;
    return { metric, growth, per100k, flat };
  });
}

// ---- run ----------------------------------------------------------------------------------------

const cores = availableParallelism();
const cpuModel = cpus()[0]?.model ?? 'unknown';
const setup = options.redis ? '2 Chorus nodes, Redis engine' : '1 Chorus node, memory engine';
console.log(
  `Soak: ${setup}; ${formatInteger(options.rate)} new clients/s from ${options.helpers} helper processes over ${options.dialects.join(', ')}, ` +
    `lifetimes ${options.lifetimeMs[0]}–${options.lifetimeMs[1]} ms, ${Math.round(options.cutShare * 100)} % cut without a close frame, ` +
    `${options.channels} channels; ${Math.round(options.durationMs / 1000)} s, a sample every ${options.sampleMs / 1000} s (after 2 full GCs).`,
);

let redis: Child | undefined;
const nodes: ServerProcess[] = [];
const helpers: ChurnHelper[] = [];
const samples: Sample[] = [];
let baseline: Sample | undefined;
let mid: Sample | undefined;
let end: Sample | undefined;
let snapshotDiff: SnapshotDiffRow[] = [];
let snapshotA: string | undefined;
const startedAt = new Date();
const snapshot = async (name: string): Promise<string | undefined> => {
  if (!options.snapshots) return undefined;
  mkdirSync(SNAPSHOT_DIR, { recursive: true });
  const file = await nodes[0]!.heapSnapshot(`${SNAPSHOT_DIR}${name}.heapsnapshot`);
  progress('soak', `heap snapshot ${file}`);
  return file;
};
try {
  if (options.redis) {
    const started = await startRedis();
    redis = started.child;
    for (let i = 0; i < 2; i++) nodes.push(await ServerProcess.start({ name: `chorus-${i + 1}`, script: CHORUS_SCRIPT, cpu: undefined, env: { BENCH_CHORUS_REDIS_URL: started.url } }));
  } else {
    nodes.push(await ServerProcess.start({ name: 'chorus', script: CHORUS_SCRIPT, cpu: SERVER_CPU }));
  }
  progress('soak', `server pid ${nodes.map((node) => node.pid).join(', ')}${redis ? `, redis-server pid ${redis.pid}` : ''}`);
  const before = await sample(nodes, 0, 0);
  baseline = before;

  for (let id = 0; id < options.helpers; id++) {
    helpers.push(
      new ChurnHelper({
        ports: nodes.map((node) => node.port),
        // 127.<20+id>.0.y: apart from the holders' 127.0.0.x; 200 addresses × ~28,000 ports outlast TIME_WAIT at any rate here.
        addresses: Array.from({ length: 200 }, (_, k) => `127.${20 + id}.0.${k + 1}`),
        rate: options.rate / options.helpers,
        lifetimeMs: options.lifetimeMs,
        dialects: options.dialects,
        channels: options.channels,
        cutShare: options.cutShare,
        id,
      }),
    );
  }
  let t0 = performance.now();
  while (performance.now() - t0 < options.durationMs) {
    await sleep(Math.min(options.sampleMs, options.durationMs - (performance.now() - t0)));
    const elapsed = performance.now() - t0;
    const totals = sumStats(helpers);
    const current = await sample(nodes, elapsed / 1000, totals.opened);
    const previous = samples.at(-1) ?? before;
    samples.push(current);
    const cpuShare = (current.cpuSeconds - previous.cpuSeconds) / Math.max(1e-3, current.atSeconds - previous.atSeconds);
    progress(
      'soak',
      `${formatFixed(current.atSeconds, 0).padStart(4)} s  ${formatInteger(totals.opened).padStart(9)} connections (${formatInteger(totals.opened / Math.max(1, elapsed / 1000))}/s; ` +
        `${formatInteger(totals.failed)} failed, ${formatInteger(totals.skipped)} skipped)  server CPU ${formatFixed(cpuShare * 100, 0)} %  sockets ${formatInteger(current.sockets)}  heap ${formatMiB(current.heapUsed)}  RSS ${formatMiB(current.rss)}  ` +
        `handles ${current.otherHandles}  timers ${formatInteger(current.timers)}  fds ${formatInteger(current.fds)}`,
    );
    if (!mid && elapsed >= options.durationMs / 2) {
      // Half time: no clients for a moment, to read what the server keeps once they are gone.
      const pausedAt = performance.now();
      for (const helper of helpers) helper.pause();
      await sleep(options.lifetimeMs[1]);
      mid = await drain(nodes, before, elapsed / 1000, sumStats(helpers).opened);
      progress('soak', `paused, no clients: sockets ${mid.sockets}, heap ${formatMiB(mid.heapUsed)}, timers ${mid.timers}, fds ${mid.fds}, handles ${mid.otherHandles}`);
      snapshotA = await snapshot('half');
      for (const helper of helpers) helper.resume();
      t0 += performance.now() - pausedAt;
    }
  }
} finally {
  await Promise.all(helpers.map((helper) => helper.stop()));
}

// All clients gone again: compare with half time.
const totals = sumStats(helpers);
if (nodes.length > 0 && baseline) {
  end = await drain(nodes, baseline, samples.at(-1)?.atSeconds ?? 0, totals.opened);
  progress('soak', `stopped, no clients: sockets ${end.sockets}, heap ${formatMiB(end.heapUsed)}, timers ${end.timers}, fds ${end.fds}, handles ${end.otherHandles}`);
  const snapshotB = await snapshot('end');
  if (snapshotA && snapshotB) snapshotDiff = diffHeapSnapshots(snapshotA, snapshotB).slice(0, 15);
}
await Promise.all(nodes.map((node) => node.stop()));
await redis?.stop();

if (!baseline || !mid || !end || samples.length < 4) {
  console.error('The run was too short to judge (no reading at half time): use a longer --duration.');
  process.exit(1);
}
const run: SoakRun = {
  date: startedAt,
  environment: { node: process.versions.node, cpu: cpuModel, cores },
  setup,
  options,
  totals,
  baseline,
  samples,
  mid,
  end,
  secondHalf: samples.filter((s) => s.atSeconds >= samples.at(-1)!.atSeconds / 2),
  slopes: [],
  verdicts: verdicts(mid, end),
  snapshotDiff,
};
run.slopes = slopes(run.secondHalf);
const report = renderSoak(run, writeDocs);
console.log(`\n${report.text}`);
if (totals.errors.length) console.log(`Handshake errors (first few): ${[...new Set(totals.errors)].slice(0, 5).join('; ')}`);
console.log(`Saved ${writeResult('soak', { benchmark: 'soak', ...run, date: startedAt.toISOString() })}`);
if (writeDocs) console.log('Updated docs/benchmarks.md (bench:soak section) and docs/benchmarks-soak.svg');
