/**
 * Churn soak (issue 16 part 4): helper processes connect and disconnect thousands of clients per
 * second over every dialect, with presence, subscriptions, publishes and abrupt cuts
 * (lib/churn-process.ts), against one Chorus node on the memory engine (or, with --redis, two
 * nodes on a redis-server started here). Every few seconds the server's memory, live handles,
 * timers and open file descriptors are sampled (after two full GCs, through the harness's
 * `resources` command: servers/harness.ts); the slope over the second half of the run says
 * whether anything grows with the number of connections served.
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
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { ChurnConfig, ChurnDialect, ChurnStats } from './lib/churn-process.ts';
import { startRedis, type Child } from './lib/children.ts';
import { SERVER_CPU } from './lib/config.ts';
import { replaceDocSection } from './lib/docs.ts';
import { spawnHelper } from './lib/holders.ts';
import { renderLineChart } from './lib/line-chart.ts';
import { booleanSetting, listSetting, numberSetting, readSettings } from './lib/options.ts';
import { ServerProcess } from './lib/process.ts';
import { leastSquares } from './lib/regression.ts';
import { formatFixed, formatInteger, formatMiB, markdownTable, progress, sleep, writeResult } from './lib/report.ts';
import { diffHeapSnapshots, type SnapshotDiffRow } from './tools/heapsnapshot-diff.ts';

const CHORUS_SCRIPT = fileURLToPath(new URL('./servers/chorus.ts', import.meta.url));
const SVG_FILE = fileURLToPath(new URL('../docs/benchmarks-soak.svg', import.meta.url));
const SNAPSHOT_DIR = fileURLToPath(new URL('./results/soak-snapshots/', import.meta.url));
/**
 * "Flat": the JS heap (after two full GCs) grows by at most this much per 100,000 connections
 * served, once the number of sockets open at the sample is accounted for. 1 MiB per 100k is
 * ~10 bytes per connection: far below any per-connection leak (a forgotten listener, a map
 * entry, a timer closure each cost hundreds of bytes) and above the sampling noise measured here.
 */
const FLAT_HEAP_BYTES_PER_100K = 1024 * 1024;
/** Handles, timers and file descriptors: at most this many more per 100,000 connections served. */
const FLAT_COUNT_PER_100K = 10;
const DRAIN_TIMEOUT_MS = 20_000;

const settings = readSettings(process.argv.slice(2), 'Usage: npm run bench:soak -- [options]', [
  { name: 'duration', description: 'how long to churn: 10m, 3m, 90s or seconds', default: '10m' },
  { name: 'rate', description: 'new clients per second, over all helpers', default: 2000 },
  { name: 'helpers', description: 'churn helper processes', default: 2 },
  { name: 'lifetime', description: 'client lifetime in ms, min-max', default: '200-3000' },
  { name: 'channels', description: 'channel pool (10 per room pool for Yjs)', default: 300 },
  { name: 'dialects', description: 'dialects to churn', default: 'raw,v1,pusher' },
  { name: 'yjs', description: 'add Yjs rooms (/yjs/{room}) to the dialects', default: false },
  { name: 'cut-share', description: 'share of clients cut without a close frame (half of them with a TCP reset)', default: 0.3 },
  { name: 'sample', description: 'seconds between samples', default: 5 },
  { name: 'redis', description: 'two nodes on a redis-server started by the benchmark (instead of one memory-engine node)', default: false },
  { name: 'snapshots', description: 'write heap snapshots at half time and at the end, and diff them', default: false },
  { name: 'docs', description: 'update docs/benchmarks.md and docs/benchmarks-soak.svg even after a run shorter than 2 minutes', default: false },
  { name: 'no-docs', description: 'never update the docs', default: false },
]);

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

// ---- processes ----------------------------------------------------------------------------------

class ChurnHelper {
  stats: ChurnStats | undefined;
  readonly #child: ReturnType<typeof spawnHelper>;
  readonly #exited: Promise<void>;

  constructor(config: ChurnConfig) {
    this.#child = spawnHelper(fileURLToPath(new URL('./lib/churn-process.ts', import.meta.url)), config, `churn ${config.id}`);
    this.#exited = new Promise((resolve) => this.#child.once('exit', () => resolve()));
    createInterface({ input: this.#child.stdout }).on('line', (line) => {
      try {
        this.stats = (JSON.parse(line) as { stats: ChurnStats }).stats;
      } catch {
        process.stdout.write(`[churn ${config.id}] ${line}\n`);
      }
    });
  }

  async stop(): Promise<void> {
    this.#child.stdin.end();
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), 10_000);
    await this.#exited;
    clearTimeout(timer);
  }
}

function sumStats(helpers: readonly ChurnHelper[]): Omit<ChurnStats, 'errors'> & { errors: string[] } {
  const total = { started: 0, opened: 0, failed: 0, ended: 0, cut: 0, closedByServer: 0, skipped: 0, open: 0, errors: [] as string[] };
  for (const helper of helpers) {
    const stats = helper.stats;
    if (!stats) continue;
    for (const key of ['started', 'opened', 'failed', 'ended', 'cut', 'closedByServer', 'skipped', 'open'] as const) total[key] += stats[key];
    total.errors.push(...stats.errors);
  }
  return total;
}

// ---- sampling -----------------------------------------------------------------------------------

interface Sample {
  atSeconds: number;
  /** Connections opened so far (upgrade completed), all helpers. */
  connections: number;
  /** TCP sockets the server(s) held at the sample (handle type TCPSocketWrap: clients, plus Redis and the scraper). */
  sockets: number;
  heapUsed: number;
  rss: number;
  /** Live handles other than TCP sockets (servers, pipes, signal handlers…). */
  otherHandles: number;
  timers: number;
  fds: number;
  /** CPU seconds the server process(es) used so far. */
  cpuSeconds: number;
}

async function sample(nodes: readonly ServerProcess[], atSeconds: number, connections: number): Promise<Sample> {
  const readings = await Promise.all(nodes.map(async (node) => ({ resources: await node.resources(), fds: node.fdCount() ?? NaN })));
  const cpu = await Promise.all(nodes.map((node) => node.cpuSeconds()));
  const total: Sample = { atSeconds, connections, sockets: 0, heapUsed: 0, rss: 0, otherHandles: 0, timers: 0, fds: 0, cpuSeconds: cpu.reduce((sum, value) => sum + value, 0) };
  for (const { resources, fds } of readings) {
    const sockets = resources.handles.TCPSocketWrap ?? 0;
    total.sockets += sockets;
    total.heapUsed += resources.heapUsed;
    total.rss += resources.rss;
    total.otherHandles += Object.values(resources.handles).reduce((sum, n) => sum + n, 0) - sockets;
    total.timers += resources.timers;
    total.fds += fds;
  }
  return total;
}

type Metric = 'heapUsed' | 'rss' | 'otherHandles' | 'timers' | 'fds';

interface Slope {
  metric: Metric;
  /** Per 100,000 connections served, with the sockets open at each sample as a second regressor. */
  per100k: number;
  /** The same without that correction (plain y on connections). */
  plainPer100k: number;
  bound: number | undefined;
  verdict: 'PASS' | 'MISS' | 'n/a';
}

function slopes(samples: readonly Sample[]): Slope[] {
  const metrics: { metric: Metric; bound: number | undefined }[] = [
    { metric: 'heapUsed', bound: FLAT_HEAP_BYTES_PER_100K },
    { metric: 'rss', bound: undefined },
    { metric: 'otherHandles', bound: FLAT_COUNT_PER_100K },
    { metric: 'timers', bound: FLAT_COUNT_PER_100K },
    { metric: 'fds', bound: FLAT_COUNT_PER_100K },
  ];
  return metrics.map(({ metric, bound }) => {
    const ys = samples.map((s) => s[metric]);
    const per100k = (leastSquares(samples.map((s) => [s.connections, s.sockets]), ys)[1] ?? NaN) * 100_000;
    const plainPer100k = (leastSquares(samples.map((s) => [s.connections]), ys)[1] ?? NaN) * 100_000;
    const verdict = bound === undefined || !Number.isFinite(per100k) ? 'n/a' : per100k <= bound ? 'PASS' : 'MISS';
    return { metric, per100k, plainPer100k, bound, verdict };
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
let drained: Sample | undefined;
let baseline: Sample | undefined;
let snapshotDiff: SnapshotDiffRow[] = [];
const startedAt = new Date();
try {
  if (options.redis) {
    const started = await startRedis();
    redis = started.child;
    for (let i = 0; i < 2; i++) nodes.push(await ServerProcess.start({ name: `chorus-${i + 1}`, script: CHORUS_SCRIPT, cpu: undefined, env: { BENCH_CHORUS_REDIS_URL: started.url } }));
  } else {
    nodes.push(await ServerProcess.start({ name: 'chorus', script: CHORUS_SCRIPT, cpu: SERVER_CPU }));
  }
  progress('soak', `server pid ${nodes.map((node) => node.pid).join(', ')}${redis ? `, redis-server pid ${redis.pid}` : ''}`);
  baseline = await sample(nodes, 0, 0);
  const before = baseline;

  for (let id = 0; id < options.helpers; id++) {
    helpers.push(
      new ChurnHelper({
        ports: nodes.map((node) => node.port),
        // 127.<20+id>.x.y: apart from the holders' 127.0.0.x; 200 addresses × ~28,000 ports outlast TIME_WAIT at any rate here.
        addresses: Array.from({ length: 200 }, (_, k) => `127.${20 + id}.${Math.floor(k / 250)}.${(k % 250) + 1}`),
        rate: options.rate / options.helpers,
        lifetimeMs: options.lifetimeMs,
        dialects: options.dialects,
        channels: options.channels,
        cutShare: options.cutShare,
        id,
      }),
    );
  }
  const t0 = performance.now();
  const snapshotAt = options.durationMs / 2;
  let snapshotA: string | undefined;
  if (options.snapshots) mkdirSync(SNAPSHOT_DIR, { recursive: true });
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
    if (options.snapshots && !snapshotA && elapsed >= snapshotAt) {
      snapshotA = await nodes[0]!.heapSnapshot(`${SNAPSHOT_DIR}half.heapsnapshot`);
      progress('soak', `heap snapshot ${snapshotA}`);
    }
  }
  if (options.snapshots && snapshotA) {
    const snapshotB = await nodes[0]!.heapSnapshot(`${SNAPSHOT_DIR}end.heapsnapshot`);
    progress('soak', `heap snapshot ${snapshotB}`);
    snapshotDiff = diffHeapSnapshots(snapshotA, snapshotB).slice(0, 15);
  }
} finally {
  await Promise.all(helpers.map((helper) => helper.stop()));
}

// All clients gone: the server should be back near its baseline.
const totals = sumStats(helpers);
if (nodes.length > 0 && baseline) {
  const deadline = performance.now() + DRAIN_TIMEOUT_MS;
  do {
    await sleep(1000);
    drained = await sample(nodes, samples.at(-1)?.atSeconds ?? 0, totals.opened);
  } while (drained.sockets > baseline.sockets && performance.now() < deadline);
  progress('soak', `after the clients left: sockets ${drained.sockets} (baseline ${baseline.sockets}), heap ${formatMiB(drained.heapUsed)} (baseline ${formatMiB(baseline.heapUsed)}), timers ${drained.timers} (${baseline.timers}), fds ${drained.fds} (${baseline.fds})`);
}
await Promise.all(nodes.map((node) => node.stop()));
await redis?.stop();

const secondHalf = samples.filter((s) => s.atSeconds >= samples.at(-1)!.atSeconds / 2);
const fitted = slopes(secondHalf);
const heapSlope = fitted.find((slope) => slope.metric === 'heapUsed')!;
const seconds = samples.at(-1)?.atSeconds ?? 0;

const LABELS: Record<Metric, string> = { heapUsed: 'JS heap (after GC)', rss: 'RSS', otherHandles: 'handles (not sockets)', timers: 'timers', fds: 'open fds' };
const formatSlope = (slope: Slope, value: number): string => (slope.metric === 'heapUsed' || slope.metric === 'rss' ? formatMiB(value) : formatFixed(value, 1));
const slopeTable = markdownTable(
  ['metric', 'growth per 100k connections', 'without the open-socket term', 'bound', 'flat'],
  fitted.map((slope) => [
    LABELS[slope.metric],
    formatSlope(slope, slope.per100k),
    formatSlope(slope, slope.plainPer100k),
    slope.bound === undefined ? 'reported only' : `≤ ${formatSlope(slope, slope.bound)}`,
    slope.verdict === 'n/a' ? 'n/a' : `**${slope.verdict}**`,
  ]),
);
const shown = samples.filter((_, i) => i % Math.max(1, Math.ceil(samples.length / 12)) === 0 || i === samples.length - 1);
const sampleTable = markdownTable(
  ['time', 'connections', 'open sockets', 'heap', 'RSS', 'handles', 'timers', 'fds'],
  [
    ...(baseline ? [['before', '0', formatInteger(baseline.sockets), formatMiB(baseline.heapUsed), formatMiB(baseline.rss), String(baseline.otherHandles), formatInteger(baseline.timers), formatInteger(baseline.fds)]] : []),
    ...shown.map((s) => [`${formatFixed(s.atSeconds, 0)} s`, formatInteger(s.connections), formatInteger(s.sockets), formatMiB(s.heapUsed), formatMiB(s.rss), String(s.otherHandles), formatInteger(s.timers), formatInteger(s.fds)]),
    ...(drained ? [['clients gone', formatInteger(drained.connections), formatInteger(drained.sockets), formatMiB(drained.heapUsed), formatMiB(drained.rss), String(drained.otherHandles), formatInteger(drained.timers), formatInteger(drained.fds)]] : []),
  ],
);
const diffTable =
  snapshotDiff.length > 0
    ? markdownTable(
        ['constructor (heap snapshot, half time → end)', 'objects +', 'self size +'],
        snapshotDiff.map((row) => [row.name, formatInteger(row.countDelta), `${formatFixed(row.sizeDelta / 1024, 1)} KiB`]),
      )
    : '';
const rate = totals.opened / Math.max(1, seconds);
console.log(`\n${sampleTable}\n\nSlopes over the second half (${secondHalf.length} samples, ${formatInteger(secondHalf.at(-1)!.connections - secondHalf[0]!.connections)} connections):\n\n${slopeTable}`);
if (diffTable) console.log(`\n${diffTable}`);
console.log(
  `\n${heapSlope.verdict === 'PASS' ? 'PASS' : 'MISS'}: heap ${formatMiB(heapSlope.per100k)} per 100k connections (bound ${formatMiB(FLAT_HEAP_BYTES_PER_100K)}); ` +
    `${formatInteger(totals.opened)} connections in ${formatFixed(seconds, 0)} s (${formatInteger(rate)}/s), ${formatInteger(totals.failed)} failed handshakes, ` +
    `${formatInteger(totals.skipped)} skipped (300 handshakes already in flight per helper: the server or the generator fell behind), ${formatInteger(totals.cut)} cut, ${formatInteger(totals.closedByServer)} closed by the server first.`,
);
if (totals.errors.length) console.log(`Handshake errors (first few): ${[...new Set(totals.errors)].slice(0, 5).join('; ')}`);

const file = writeResult('soak', {
  benchmark: 'soak',
  date: startedAt.toISOString(),
  environment: { node: process.version, cpu: cpuModel, cores },
  options,
  totals,
  baseline,
  samples,
  drained,
  slopes: fitted,
  snapshotDiff,
});
console.log(`Saved ${file}`);

if (writeDocs && samples.length > 3) {
  const fit = leastSquares(secondHalf.map((s) => [s.connections]), secondHalf.map((s) => s.heapUsed));
  const k = (value: number): number => value / 1000;
  const mib = (value: number): number => value / 1024 / 1024;
  writeFileSync(
    SVG_FILE,
    renderLineChart(
      `Chorus churn soak — npm run bench:soak, ${startedAt.toISOString().slice(0, 10)}`,
      `${setup}; ${formatInteger(rate)} connections/s over ${options.dialects.join(', ')}; ${formatFixed(seconds / 60, 1)} min; samples after 2 full GCs.`,
      [
        {
          title: 'Memory',
          xLabel: 'connections served (thousands)',
          yLabel: 'MiB',
          series: [
            { label: 'JS heap used', color: '#2563eb', points: samples.map((s) => ({ x: k(s.connections), y: mib(s.heapUsed) })) },
            { label: 'RSS', color: '#f59e0b', points: samples.map((s) => ({ x: k(s.connections), y: mib(s.rss) })) },
            {
              label: 'heap fit, 2nd half',
              color: '#111827',
              dashed: true,
              points: [secondHalf[0]!, secondHalf.at(-1)!].map((s) => ({ x: k(s.connections), y: mib(fit[0]! + fit[1]! * s.connections) })),
            },
          ],
        },
        {
          title: 'Handles, timers, descriptors',
          xLabel: 'connections served (thousands)',
          yLabel: 'count',
          series: [
            { label: 'open fds', color: '#10b981', points: samples.map((s) => ({ x: k(s.connections), y: s.fds })) },
            { label: 'open TCP sockets', color: '#9ca3af', points: samples.map((s) => ({ x: k(s.connections), y: s.sockets })) },
            { label: 'timers', color: '#ef4444', points: samples.map((s) => ({ x: k(s.connections), y: s.timers })) },
            { label: 'other handles', color: '#7c3aed', points: samples.map((s) => ({ x: k(s.connections), y: s.otherHandles })) },
          ],
        },
      ],
      2,
    ),
  );
  replaceDocSection(
    '<!-- bench:soak:begin -->',
    '<!-- bench:soak:end -->',
    [
      '## Churn soak (`npm run bench:soak`)',
      '',
      `Run of ${startedAt.toISOString().slice(0, 10)} (Node ${process.versions.node}, ${cores} vCPU, ${cpuModel}), **${formatFixed(seconds / 60, 1)} minutes**` +
        `${options.durationMs < 600_000 ? ' (shortened with `--duration`; the default is 10)' : ''}; ${setup}. ` +
        `Two helper processes opened ${formatInteger(totals.opened)} connections (${formatInteger(rate)}/s) over ${options.dialects.join(', ')} ` +
        `(raw \`/v3/{channel}\` half with presence; v1 connect + subscribe, half with presence, + publish; Pusher half on presence- channels with a client event), ` +
        `each living ${options.lifetimeMs[0]}–${options.lifetimeMs[1]} ms on one of ${options.channels} channels; ${Math.round(options.cutShare * 100)} % were cut without a close frame ` +
        `(half of those with a TCP reset). ${formatInteger(totals.failed)} handshakes failed, ${formatInteger(totals.skipped)} clients were skipped because 300 handshakes per helper were still in flight (the server or the generator behind). ` +
        'Samples every few seconds after two full GCs (the bench wrapper\'s `resources` command: `process.getActiveResourcesInfo()`, `/proc/PID/fd`). ' +
        'The machine was shared with other jobs: read the slopes, not the absolute numbers.',
      '',
      '![Soak chart](benchmarks-soak.svg)',
      '',
      sampleTable,
      '',
      `Slopes: least squares over the second half of the run (${secondHalf.length} samples); the metric is fitted on connections served *and* the sockets open at the sample, ` +
        'so that how many clients happened to be connected at that instant does not read as growth. ' +
        `**Flat** means the heap grows by at most ${formatMiB(FLAT_HEAP_BYTES_PER_100K)} per 100,000 connections (~10 bytes each, below any per-connection leak), ` +
        `and handles, timers and descriptors by at most ${FLAT_COUNT_PER_100K}; RSS is shown, not judged (the allocator keeps freed pages).`,
      '',
      slopeTable,
      ...(diffTable ? ['', 'Heap snapshot diff (largest growth by constructor):', '', diffTable] : []),
    ].join('\n'),
    'end',
  );
  console.log('Updated docs/benchmarks.md (bench:soak section) and docs/benchmarks-soak.svg');
}
