/**
 * bench:scale's results: the slopes (what one more connection and one more channel cost), the
 * table printed and put in docs/benchmarks.md (between `<!-- bench:scale:begin -->` and
 * `<!-- bench:scale:end -->`), and the chart docs/benchmarks-scale.svg.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { replaceDocSection } from './docs.ts';
import { renderLineChart } from './line-chart.ts';
import { leastSquares } from './regression.ts';
import { formatFixed, formatInteger, formatKiB, formatMiB, markdownTable } from './report.ts';

const SVG_FILE = fileURLToPath(new URL('../../docs/benchmarks-scale.svg', import.meta.url));

export interface StepResult {
  connections: number;
  channels: number;
  publishers: number;
  /** Node RSS and heap (sum over the nodes, after GC) minus the reading before any connection, per connection. */
  rssPerConnection: number;
  heapPerConnection: number;
  rss: number;
  heapUsed: number;
  redisRss: number;
  publishedPerSecond: number;
  deliveredPerSecond: number;
  /** Deliveries over publications × (members − 1): 1 when everything arrived within the window. */
  deliveryRatio: number;
  redisMicrosPerPublication: number;
  nodesMicrosPerPublication: number;
  /** Share of one core used by redis-server and by all nodes together. */
  redisCpu: number;
  nodesCpu: number;
  p50: number;
  p99: number;
  max: number;
  samples: number;
  machineFreeBytes: number;
}

/** Fresh nodes, each connection alone in its channel, no traffic. */
export interface Calibration {
  connections: number;
  rssPerConnection: number;
  heapPerConnection: number;
  redisRssPerChannel: number;
}

export interface ScaleRun {
  date: Date;
  environment: { node: string; cpu: string; cores: number };
  options: { nodes: number; members: number; publishEvery: number; publishRate: number; size: number; perHolder: number; warmupMs: number; measureMs: number };
  /** The most connections a node may hold here (open-files limit). */
  nodeCap: number;
  calibration: Calibration | undefined;
  results: StepResult[];
  warnings: string[];
  minutes?: number;
}

export interface Slopes {
  /** Bytes per connection (in channels of `members`): least squares over the steps. */
  rss: number;
  heap: number;
  redisRss: number;
  /** With the calibration: a connection alone costs a + c, one in a channel of m costs a + c/m. */
  heapPerChannel: number;
  heapPerConnectionAlone: number;
  rssPerChannel: number;
  rssPerConnectionAlone: number;
  /**
   * Marginal CPU µs per publication (least squares of CPU share on publications/s over the steps)
   * and the CPU share left at no publication (intercept): Redis does some work whatever the
   * traffic (its cron, the nodes' housekeeping), which the plain µs/pub column divides among
   * the publications.
   */
  redisMarginalMicros: number;
  redisBackground: number;
  nodesMarginalMicros: number;
  nodesBackground: number;
}

export function scaleSlopes(run: ScaleRun): Slopes | undefined {
  const { results, calibration } = run;
  if (results.length < 2) return undefined;
  const xs = results.map((result) => [result.connections]);
  const fit = (ys: number[]): number => leastSquares(xs, ys)[1] ?? NaN;
  const rss = fit(results.map((result) => result.rss));
  const heap = fit(results.map((result) => result.heapUsed));
  const m = run.options.members;
  const perChannel = (alone: number | undefined, inChannels: number): number => (alone === undefined ? NaN : ((alone - inChannels) * m) / (m - 1));
  const redis = marginal(results, (result) => result.redisCpu);
  const nodes = marginal(results, (result) => result.nodesCpu);
  const heapPerChannel = perChannel(calibration?.heapPerConnection, heap);
  const rssPerChannel = perChannel(calibration?.rssPerConnection, rss);
  return {
    rss,
    heap,
    redisRss: fit(results.map((result) => result.redisRss)),
    heapPerChannel,
    heapPerConnectionAlone: heap - heapPerChannel / m,
    rssPerChannel,
    rssPerConnectionAlone: rss - rssPerChannel / m,
    redisMarginalMicros: redis.micros,
    redisBackground: redis.background,
    nodesMarginalMicros: nodes.micros,
    nodesBackground: nodes.background,
  };
}

/** CPU share ≈ background + µs per publication × publications/s, over the steps. */
function marginal(results: readonly StepResult[], cpu: (result: StepResult) => number): { micros: number; background: number } {
  const [background = NaN, perPublication = NaN] = leastSquares(
    results.map((result) => [result.publishedPerSecond]),
    results.map(cpu),
  );
  return { micros: perPublication * 1e6, background };
}

/** The table and the slopes (printed), and the docs section and chart when `writeDocs`. */
export function renderScale(run: ScaleRun, writeDocs: boolean): { text: string } {
  const { results, calibration, options } = run;
  const slope = scaleSlopes(run);
  const table = markdownTable(
    ['connections', 'channels', 'node RSS/conn', 'heap/conn', 'nodes RSS', 'Redis RSS', 'publications/s', 'deliveries/s', 'Redis µs/pub', 'nodes µs/pub', 'p50', 'p99'],
    results.map((result) => [
      formatInteger(result.connections),
      formatInteger(result.channels),
      formatKiB(result.rssPerConnection),
      formatKiB(result.heapPerConnection),
      formatMiB(result.rss),
      formatMiB(result.redisRss),
      formatInteger(result.publishedPerSecond),
      formatInteger(result.deliveredPerSecond),
      formatFixed(result.redisMicrosPerPublication, 0),
      formatFixed(result.nodesMicrosPerPublication, 0),
      `${formatFixed(result.p50, 2)} ms`,
      `${formatFixed(result.p99, 2)} ms`,
    ]),
  );
  const slopeText = slope
    ? `**Slopes** (least squares over the steps): one more connection, in channels of ${options.members}, costs **${formatKiB(slope.heap)} of JS heap** and ${formatKiB(slope.rss)} of RSS over the nodes, ` +
      `and ${formatFixed(slope.redisRss, 0)} B of Redis RSS. ` +
      (calibration
        ? `With the calibration (${formatInteger(calibration.connections)} connections each alone in its channel: ${formatKiB(calibration.heapPerConnection)} heap, ${formatKiB(calibration.rssPerConnection)} RSS each) ` +
          `that splits into **${formatKiB(slope.heapPerConnectionAlone)} of heap per connection** and **${formatKiB(slope.heapPerChannel)} per channel** ` +
          `(a channel here has members on all ${options.nodes} nodes, so that is ${options.nodes} nodes' channel state), plus ${formatFixed(calibration.redisRssPerChannel, 0)} B per channel in Redis ` +
          `(RSS split: ${formatKiB(slope.rssPerConnectionAlone)} per connection, ${formatKiB(slope.rssPerChannel)} per channel — noisier: RSS does not shrink with the heap). `
        : '') +
      `**CPU**: fitted on publications/s over the steps, one more publication costs redis-server **${formatFixed(slope.redisMarginalMicros, 0)} µs** ` +
      `(on top of ${formatFixed(slope.redisBackground * 100, 1)} % of a core it uses at no traffic, which the µs/pub column spreads over the publications) and the nodes together ${formatFixed(slope.nodesMarginalMicros, 0)} µs ` +
      `(${formatFixed(slope.nodesBackground * 100, 0)} % of a core at no traffic: heartbeats, housekeeping, on a box whose other jobs slow every process). ` +
      'Per publication Redis runs one script and one PUBLISH to the nodes, whatever the number of connections; the nodes deliver to 9 members each.'
    : 'Fewer than two steps: no slope.';
  const text = [table, '', slopeText, ...(run.warnings.length ? ['', 'Warnings:', ...run.warnings.map((warning) => `  - ${warning}`)] : [])].join('\n');
  if (writeDocs && results.length >= 2) {
    writeFileSync(SVG_FILE, renderChart(run));
    replaceDocSection('<!-- bench:scale:begin -->', '<!-- bench:scale:end -->', renderSection(run, table, slopeText), 'end');
  }
  return { text };
}

function renderSection(run: ScaleRun, table: string, slopeText: string): string {
  const { options } = run;
  const capacity = options.nodes * run.nodeCap;
  return [
    '## How cost grows: 5 nodes on one Redis, up to 100k connections (`npm run bench:scale`)',
    '',
    `Run of ${run.date.toISOString().slice(0, 10)} (Node ${run.environment.node}, ${run.environment.cores} vCPU, ${run.environment.cpu}${run.minutes ? `; ${formatFixed(run.minutes, 1)} min` : ''}). ` +
      `${options.nodes} Chorus nodes (\`bench/servers/chorus.ts\`, Redis engine) and one \`redis-server\`, both started by the benchmark; connections opened by helper processes ` +
      `(${formatInteger(options.perHolder)} each, each from its own 127.0.0.x address), raw dialect, in channels of ${options.members} whose members are spread over all nodes; ` +
      `every ${options.publishEvery}th connection publishes ${options.publishRate} message/s of ${options.size} bytes with a timestamp (one channel in ten is active), and every connection measures publish→deliver latency ` +
      `(${options.warmupMs / 1000} s warm-up, ${options.measureMs / 1000} s measured per step). *RSS/conn* and *heap/conn*: the sum over the nodes after two full GCs, minus the reading before any connection. ` +
      'A node just started holds memory it gives back within its first minute (start-up, the wrapper\'s TypeScript compile), so RSS/conn at the first step can even come out below zero; ' +
      'the slopes below do not depend on that baseline. ' +
      `*µs/pub*: CPU time of redis-server and of all nodes per publication. The open-files limit (20,000 per process) caps a node at ${formatInteger(run.nodeCap)} connections, so the top step is ${formatInteger(capacity)}. ` +
      'Nothing is pinned, and the machine (2 cores) was shared with other jobs (load average 12–20 during the run): CPU and latency are inflated by that, memory is not; compare the steps with each other.',
    '',
    '![Scale chart](benchmarks-scale.svg)',
    '',
    table,
    '',
    slopeText,
    ...(run.warnings.length ? ['', ...run.warnings.map((warning) => `- ${warning}`)] : []),
  ].join('\n');
}

function renderChart(run: ScaleRun): string {
  const { results, options } = run;
  const k = (value: number): number => value / 1000;
  return renderLineChart(
    `Chorus at scale — npm run bench:scale, ${run.date.toISOString().slice(0, 10)}`,
    `${options.nodes} nodes on one Redis; channels of ${options.members}; 1 connection in ${options.publishEvery} publishes ${options.publishRate} msg/s; shared 2-core box.`,
    [
      {
        title: 'Memory, all nodes',
        xLabel: 'connections (thousands)',
        yLabel: 'MiB (after 2 full GCs)',
        series: [
          { label: 'nodes RSS', color: '#2563eb', points: results.map((r) => ({ x: k(r.connections), y: r.rss / 1024 / 1024 })) },
          { label: 'nodes JS heap', color: '#f59e0b', points: results.map((r) => ({ x: k(r.connections), y: r.heapUsed / 1024 / 1024 })) },
          { label: 'redis-server RSS', color: '#ef4444', points: results.map((r) => ({ x: k(r.connections), y: r.redisRss / 1024 / 1024 })) },
        ],
      },
      {
        title: 'CPU per publication',
        xLabel: 'connections (thousands)',
        yLabel: 'µs per publication',
        series: [
          { label: 'redis-server', color: '#ef4444', points: results.map((r) => ({ x: k(r.connections), y: r.redisMicrosPerPublication })) },
          { label: 'all nodes', color: '#2563eb', points: results.map((r) => ({ x: k(r.connections), y: r.nodesMicrosPerPublication })) },
        ],
      },
      {
        title: 'Latency, publish → deliver',
        xLabel: 'connections (thousands)',
        yLabel: 'ms',
        series: [
          { label: 'p99', color: '#7c3aed', points: results.map((r) => ({ x: k(r.connections), y: r.p99 })) },
          { label: 'p50', color: '#a78bfa', points: results.map((r) => ({ x: k(r.connections), y: r.p50 })) },
        ],
      },
    ],
  );
}
