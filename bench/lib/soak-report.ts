/**
 * bench:soak's results: the bound for "flat", the tables printed and put in docs/benchmarks.md
 * (between `<!-- bench:soak:begin -->` and `<!-- bench:soak:end -->`), and the chart
 * docs/benchmarks-soak.svg.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ChurnTotals } from './churn.ts';
import { replaceDocSection } from './docs.ts';
import { renderLineChart } from './line-chart.ts';
import { leastSquares } from './regression.ts';
import { formatFixed, formatInteger, formatMiB, markdownTable } from './report.ts';
import type { SnapshotDiffRow } from '../tools/heapsnapshot-diff.ts';

const SVG_FILE = fileURLToPath(new URL('../../docs/benchmarks-soak.svg', import.meta.url));

/**
 * "Flat": with no client connected, the JS heap (after two full GCs) at the end of the run is at
 * most this much above its reading at half time, per 100,000 connections served in between.
 * 1 MiB per 100k is ~10 bytes per connection: far below any per-connection leak (a forgotten
 * listener, map entry or timer closure costs hundreds of bytes), and above what a reading without
 * clients varies by here (a few hundred KiB: lazily compiled code, the metrics registry's buckets).
 */
export const FLAT_HEAP_BYTES_PER_100K = 1024 * 1024;
/** Handles, timers and file descriptors with no client connected: at most this many more at the end than at half time. */
export const FLAT_COUNT = 2;

export interface Sample {
  atSeconds: number;
  /** Connections opened so far (upgrade completed), all helpers. */
  connections: number;
  /** TCP sockets the server(s) held at the sample (handle type TCPSocketWrap: clients, plus Redis and the metrics scrape). */
  sockets: number;
  heapUsed: number;
  rss: number;
  /** Live handles other than TCP sockets (the listener, pipes, signal handlers…). */
  otherHandles: number;
  timers: number;
  fds: number;
  /** CPU seconds the server process(es) used so far. */
  cpuSeconds: number;
}

export type Metric = 'heapUsed' | 'rss' | 'otherHandles' | 'timers' | 'fds';

/** A least-squares slope over the samples taken while churning, per 100k connections served. */
export interface Slope {
  metric: Metric;
  /** Fitted on connections served and the sockets open at the sample. */
  per100k: number;
  /** Fitted on connections served only. */
  plainPer100k: number;
}

/** Growth between the two readings without clients (half time, end). */
export interface Verdict {
  metric: Metric;
  growth: number;
  per100k: number;
  /** undefined: reported, not judged (RSS). */
  flat: boolean | undefined;
}

export interface SoakRun {
  date: Date;
  environment: { node: string; cpu: string; cores: number };
  setup: string;
  options: { durationMs: number; rate: number; helpers: number; lifetimeMs: [number, number]; channels: number; dialects: string[]; cutShare: number; redis: boolean };
  totals: ChurnTotals;
  baseline: Sample;
  samples: Sample[];
  mid: Sample;
  end: Sample;
  secondHalf: Sample[];
  slopes: Slope[];
  verdicts: Verdict[];
  snapshotDiff: SnapshotDiffRow[];
}

const LABELS: Record<Metric, string> = { heapUsed: 'JS heap (after GC)', rss: 'RSS', otherHandles: 'handles (not sockets)', timers: 'timers', fds: 'open fds' };

function formatMetric(metric: Metric, value: number): string {
  return metric === 'heapUsed' || metric === 'rss' ? formatMiB(value) : formatFixed(value, metric === 'fds' || metric === 'timers' || metric === 'otherHandles' ? 1 : 0);
}

/** The tables (printed), and the docs section and chart when `writeDocs`. */
export function renderSoak(run: SoakRun, writeDocs: boolean): { text: string } {
  const { samples, totals, verdicts } = run;
  const seconds = samples.at(-1)!.atSeconds;
  const rate = totals.opened / Math.max(1, seconds);
  const heap = verdicts.find((verdict) => verdict.metric === 'heapUsed')!;
  const flat = verdicts.every((verdict) => verdict.flat !== false);
  const row = (label: string, s: Sample): string[] => [
    label,
    formatInteger(s.connections),
    formatInteger(s.sockets),
    formatMiB(s.heapUsed),
    formatMiB(s.rss),
    String(s.otherHandles),
    formatInteger(s.timers),
    formatInteger(s.fds),
  ];
  const every = Math.max(1, Math.ceil(samples.length / 12));
  const shown = samples.map((s, i) => ({ s, i })).filter(({ i }) => i % every === 0 || i === samples.length - 1);
  const midAt = shown.findIndex(({ s }) => s.atSeconds > run.mid.atSeconds);
  const sampleRows = shown.map(({ s }) => row(`${formatFixed(s.atSeconds, 0)} s`, s));
  sampleRows.splice(midAt < 0 ? sampleRows.length : midAt, 0, row('**half time, no clients**', run.mid));
  const sampleTable = markdownTable(['time', 'connections served', 'open sockets', 'heap', 'RSS', 'handles', 'timers', 'fds'], [
    row('before', run.baseline),
    ...sampleRows,
    row('**end, no clients**', run.end),
  ]);
  const served = run.end.connections - run.mid.connections;
  const verdictTable = markdownTable(
    ['metric', 'half time → end, no clients', `per 100k connections (${formatInteger(served)} served)`, 'bound', 'flat', 'slope while churning, per 100k'],
    verdicts.map((verdict) => {
      const slope = run.slopes.find((candidate) => candidate.metric === verdict.metric)!;
      return [
        LABELS[verdict.metric],
        `${verdict.growth >= 0 ? '+' : ''}${formatMetric(verdict.metric, verdict.growth)}`,
        formatMetric(verdict.metric, verdict.per100k),
        verdict.metric === 'heapUsed' ? `≤ ${formatMiB(FLAT_HEAP_BYTES_PER_100K)} per 100k` : verdict.metric === 'rss' ? 'reported only' : `≤ +${FLAT_COUNT}`,
        verdict.flat === undefined ? 'n/a' : verdict.flat ? '**PASS**' : '**MISS**',
        formatMetric(verdict.metric, slope.per100k),
      ];
    }),
  );
  const diffTable =
    run.snapshotDiff.length > 0
      ? markdownTable(
          ['constructor (heap snapshots at the two readings without clients)', 'objects +', 'self size +'],
          run.snapshotDiff.map((diff) => [diff.name, formatInteger(diff.countDelta), `${formatFixed(diff.sizeDelta / 1024, 1)} KiB`]),
        )
      : '';
  const summary =
    `${flat ? 'PASS' : 'MISS'} (flat): with no client connected the heap grew ${formatMiB(heap.growth)} from half time to the end, ${formatMiB(heap.per100k)} per 100k connections ` +
    `(bound ${formatMiB(FLAT_HEAP_BYTES_PER_100K)}). ${formatInteger(totals.opened)} connections in ${formatFixed(seconds, 0)} s (${formatInteger(rate)}/s), ` +
    `${formatInteger(totals.failed)} failed handshakes, ${formatInteger(totals.skipped)} clients not started (300 handshakes already in flight per helper: the server or the generator was behind), ` +
    `${formatInteger(totals.cut)} cut without a close frame, ${formatInteger(totals.closedByServer)} closed by the server first.`;
  const text = [sampleTable, '', verdictTable, ...(diffTable ? ['', diffTable] : []), '', summary].join('\n');
  if (writeDocs) {
    writeFileSync(SVG_FILE, renderChart(run, rate));
    replaceDocSection('<!-- bench:soak:begin -->', '<!-- bench:soak:end -->', renderSection(run, rate, sampleTable, verdictTable, diffTable, summary), 'end');
  }
  return { text };
}

function renderSection(run: SoakRun, rate: number, sampleTable: string, verdictTable: string, diffTable: string, summary: string): string {
  const { options, totals } = run;
  const minutes = run.samples.at(-1)!.atSeconds / 60;
  return [
    '## Churn soak (`npm run bench:soak`)',
    '',
    `Run of ${run.date.toISOString().slice(0, 10)} (Node ${run.environment.node}, ${run.environment.cores} vCPU, ${run.environment.cpu}), **${formatFixed(minutes, 1)} minutes** of churn` +
      `${options.durationMs < 600_000 ? ' (shortened with `--duration`; the default is 10)' : ''}; ${run.setup}. ` +
      `${options.helpers} helper processes opened ${formatInteger(totals.opened)} connections (${formatInteger(rate)}/s of the ${formatInteger(options.rate)}/s asked for) over ${options.dialects.join(', ')}: ` +
      'raw `/v3/{channel}` (half with presence) sending one message; v1 `connect` + `subscribe` (half with presence) + `publish`; Pusher, half on `presence-` channels with signed auth and a client event, half on public channels' +
      `${options.dialects.includes('yjs') ? '; Yjs rooms with a sync step 1' : ''}. Each client lives ${options.lifetimeMs[0]}–${options.lifetimeMs[1]} ms on one of ${options.channels} channels; ` +
      `${Math.round(options.cutShare * 100)} % are cut without a close frame (half of those with a TCP reset). ` +
      'Samples every few seconds after two full GCs, through the bench wrapper (`process.getActiveResourcesInfo()`, `/proc/PID/fd`; no endpoint in the server). ' +
      'The machine (2 cores) was shared with other jobs, which is why the connection rate is what it is: read the growth, not the absolute numbers.',
    '',
    '![Soak chart](benchmarks-soak.svg)',
    '',
    sampleTable,
    '',
    'At half time the helpers pause until every client has left, and again at the end. **Flat** compares those two readings without clients: ' +
      `the heap may grow by at most ${formatMiB(FLAT_HEAP_BYTES_PER_100K)} per 100,000 connections served in between (~10 bytes each, below any per-connection leak), ` +
      `handles, timers and descriptors by at most ${FLAT_COUNT}; RSS is shown, not judged (the allocator keeps pages it freed). ` +
      `The last column is the least-squares slope over the ${run.secondHalf.length} samples of the second half, taken while churning, fitted on connections served and the sockets open at the sample (noisier).`,
    '',
    verdictTable,
    ...(diffTable ? ['', 'Heap snapshot diff between the two readings without clients (largest growth by constructor):', '', diffTable] : []),
    '',
    summary,
  ].join('\n');
}

function renderChart(run: SoakRun, rate: number): string {
  const { samples, secondHalf } = run;
  const fit = leastSquares(secondHalf.map((s) => [s.connections]), secondHalf.map((s) => s.heapUsed));
  const k = (value: number): number => value / 1000;
  const mib = (value: number): number => value / 1024 / 1024;
  const idle = [run.baseline, run.mid, run.end];
  return renderLineChart(
    `Chorus churn soak — npm run bench:soak, ${run.date.toISOString().slice(0, 10)}`,
    `${run.setup}; ${formatInteger(rate)} connections/s over ${run.options.dialects.join(', ')}; ${formatFixed(samples.at(-1)!.atSeconds / 60, 1)} min; after 2 full GCs; shared 2-core box.`,
    [
      {
        title: 'JS heap (after 2 full GCs)',
        xLabel: 'connections served (thousands)',
        yLabel: 'MiB',
        series: [
          { label: 'while churning', color: '#2563eb', points: samples.map((s) => ({ x: k(s.connections), y: mib(s.heapUsed) })) },
          { label: 'no clients', color: '#111827', points: idle.map((s) => ({ x: k(s.connections), y: mib(s.heapUsed) })) },
          { label: 'fit, 2nd half', color: '#6b7280', dashed: true, points: [secondHalf[0]!, secondHalf.at(-1)!].map((s) => ({ x: k(s.connections), y: mib(fit[0]! + fit[1]! * s.connections) })) },
        ],
      },
      {
        title: 'RSS',
        xLabel: 'connections served (thousands)',
        yLabel: 'MiB (a heap snapshot adds its own)',
        series: [
          { label: 'while churning', color: '#f59e0b', points: samples.map((s) => ({ x: k(s.connections), y: mib(s.rss) })) },
          { label: 'no clients', color: '#111827', points: idle.map((s) => ({ x: k(s.connections), y: mib(s.rss) })) },
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
    3,
  );
}
