/**
 * How cost grows with connections (issue 14 part 6): 5 Chorus nodes on one redis-server (both
 * started here), connections opened by helper processes (lib/holder-process.ts, each from its own
 * 127.0.0.x address) in steps of 10k, 25k, 50k and 100k, in channels of 10, each channel's members
 * spread over the nodes (member i on node i mod 5), and 1 % of the connections publishing 1
 * stamped message a second (chat traffic: one publisher in every tenth channel). At each step:
 *
 * - node RSS and JS heap per connection (sum over the nodes, after two full GCs, minus the
 *   reading before any connection), and redis-server's RSS;
 * - Redis CPU per publication (/proc of redis-server) and the nodes' CPU per publication;
 * - deliveries/s, and p50/p99 publish→deliver latency (every connection is a probe; timestamps
 *   share one clock origin across the helper processes).
 *
 * A calibration at the start (fresh nodes, 10k connections in channels of 1, no traffic; then the
 * nodes are restarted) separates what a channel costs from what a connection costs.
 *
 *   npm run bench:scale                     (≈ 4–6 minutes)
 *   npm run bench:scale -- --max 25000      (steps up to 25k: ≈ 1–2 minutes, for development)
 *   npm run bench:scale -- --help
 *
 * Each process may hold 20,000 open files here, so a node takes at most NODE_CONNECTION_CAP
 * connections: the 100k step is 5 × 19,900 = 99,500. The run stops by itself; it stops early
 * (and says so) when the machine's available memory falls below --min-free-gb.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { startRedis, type Child } from './lib/children.ts';
import { ConnectionHolder, nextSourceAddress } from './lib/holders.ts';
import { booleanSetting, listSetting, numberSetting, readSettings } from './lib/options.ts';
import { procCpuSeconds, procRssBytes, ServerProcess } from './lib/process.ts';
import { formatFixed, formatInteger, formatKiB, formatMiB, progress, sleep, writeResult } from './lib/report.ts';
import { renderScale, type Calibration, type ScaleRun, type StepResult } from './lib/scale-report.ts';

const CHORUS_SCRIPT = fileURLToPath(new URL('./servers/chorus.ts', import.meta.url));
/** 20,000 open files per process here, minus what a node needs besides its clients (listener, Redis, epoll, stdio). */
const NODE_CONNECTION_CAP = 19_900;

const settings = readSettings(process.argv.slice(2), 'Usage: npm run bench:scale -- [options]', [
  { name: 'steps', description: 'connection counts to measure, comma-separated', default: '10000,25000,50000,100000' },
  { name: 'max', description: 'leave out steps above this many connections (0: none)', default: 0 },
  { name: 'nodes', description: 'Chorus nodes on the one Redis', default: 5 },
  { name: 'members', description: 'connections per channel', default: 10 },
  { name: 'publish-every', description: 'every n-th connection publishes (100 = 1 %)', default: 100 },
  { name: 'publish-rate', description: 'messages per second per publisher', default: 1 },
  { name: 'size', description: 'message size in bytes', default: 100 },
  { name: 'per-holder', description: 'connections per helper process (≤ 19,000: the open-files limit)', default: 10000 },
  { name: 'warmup', description: 'seconds of traffic before each measurement', default: 3 },
  { name: 'measure', description: 'measured seconds per step', default: 15 },
  { name: 'min-free-gb', description: 'stop before a step when the machine has less memory available than this', default: 4 },
  { name: 'max-minutes', description: 'start no step after this many minutes (a busy box opens connections slowly)', default: 15 },
  { name: 'no-calibration', description: 'skip the channels-of-1 calibration (channel vs connection cost)', default: false },
  { name: 'no-docs', description: 'do not update docs/benchmarks.md and docs/benchmarks-scale.svg', default: false },
  { name: 'render', description: 'only rewrite the docs from a saved run (bench/results/scale-….json)', default: '' },
]);

if (settings.render) {
  const saved = JSON.parse(readFileSync(settings.render, 'utf8')) as Omit<ScaleRun, 'date' | 'nodeCap'> & { date: string; nodeCap?: number };
  console.log(renderScale({ ...saved, nodeCap: saved.nodeCap ?? NODE_CONNECTION_CAP, date: new Date(saved.date) }, true).text);
  console.log('Updated docs/benchmarks.md (bench:scale section) and docs/benchmarks-scale.svg');
  process.exit(0);
}

const nodeCount = numberSetting(settings, 'nodes', 1);
const max = numberSetting(settings, 'max', 0);
const capacity = nodeCount * NODE_CONNECTION_CAP;
const requested = listSetting(settings, 'steps').map(Number);
if (requested.some((n) => !Number.isInteger(n) || n < 1)) {
  console.error(`--steps must list positive integers, got ${settings.steps}`);
  process.exit(2);
}
const steps = [...new Set(requested.filter((n) => max === 0 || n <= max).map((n) => Math.min(n, capacity)))].sort((a, b) => a - b);
const options = {
  steps,
  nodes: nodeCount,
  members: numberSetting(settings, 'members', 2),
  publishEvery: numberSetting(settings, 'publish-every', 1),
  publishRate: numberSetting(settings, 'publish-rate', 0.01),
  size: numberSetting(settings, 'size', 40),
  perHolder: Math.min(19_000, numberSetting(settings, 'per-holder', 100)),
  warmupMs: numberSetting(settings, 'warmup') * 1000,
  measureMs: numberSetting(settings, 'measure', 1) * 1000,
  minFreeBytes: numberSetting(settings, 'min-free-gb') * 1024 ** 3,
  maxMs: numberSetting(settings, 'max-minutes', 1) * 60_000,
  calibration: !booleanSetting(settings, 'no-calibration'),
  docs: !booleanSetting(settings, 'no-docs'),
};
if (steps.length === 0) {
  console.error('no step left: check --steps and --max');
  process.exit(2);
}

function availableMemory(): number {
  const match = /^MemAvailable:\s*(\d+) kB$/m.exec(readFileSync('/proc/meminfo', 'utf8'));
  return match ? Number(match[1]) * 1024 : Infinity;
}

// ---- the cluster --------------------------------------------------------------------------------

interface Memory {
  rss: number;
  heapUsed: number;
  redisRss: number;
}

class Cluster {
  nodes: ServerProcess[] = [];
  readonly holders: ConnectionHolder[] = [];
  readonly redis: Child;
  readonly redisUrl: string;
  readonly clockOrigin = Date.now();

  constructor(redis: Child, url: string) {
    this.redis = redis;
    this.redisUrl = url;
  }

  get connections(): number {
    return this.holders.reduce((sum, holder) => sum + holder.config.count, 0);
  }

  /** One after the other: five compiling at once on a busy 2-core box outlast the ready timeout. */
  async startNodes(): Promise<void> {
    for (let i = 0; i < options.nodes; i++) {
      this.nodes.push(await ServerProcess.start({ name: `node-${i + 1}`, script: CHORUS_SCRIPT, cpu: undefined, env: { BENCH_CHORUS_REDIS_URL: this.redisUrl, BENCH_CHORUS_SCRAPE_MS: '15000' } }));
    }
  }

  async stopNodes(): Promise<void> {
    await Promise.all(this.holders.splice(0).map((holder) => holder.stop()));
    await Promise.all(this.nodes.splice(0).map((node) => node.stop()));
  }

  /** Opens connections (chat traffic unless `perChannel` is 1: the calibration) until there are `target`. */
  async grow(target: number, perChannel: number, label: string): Promise<void> {
    while (this.connections < target) {
      const first = this.connections;
      const count = Math.min(options.perHolder, target - first);
      const chat = perChannel > 1 ? { publishEvery: options.publishEvery, perSecond: options.publishRate, size: options.size, clockOrigin: this.clockOrigin } : undefined;
      const holder = await ConnectionHolder.start(
        { peer: 'chorus', port: 0, ports: this.nodes.map((node) => node.port), count, localAddress: nextSourceAddress(), perChannel, firstChannel: 0, firstConnection: first, ...(chat ? { chat } : {}) },
        (opened) => progress(label, `${formatInteger(first + opened)} connections…`),
        600_000,
        false,
      );
      this.holders.push(holder);
    }
  }

  async memory(): Promise<Memory> {
    const readings = await Promise.all(this.nodes.map((node) => node.memory()));
    return {
      rss: readings.reduce((sum, reading) => sum + reading.rss, 0),
      heapUsed: readings.reduce((sum, reading) => sum + reading.heapUsed, 0),
      redisRss: procRssBytes(this.redis.pid) ?? NaN,
    };
  }

  async chatTotals(): Promise<{ delivered: number; published: number; latencies: number[] }> {
    const all = await Promise.all(this.holders.map((holder) => holder.chatStats()));
    return {
      delivered: all.reduce((sum, stats) => sum + stats.delivered, 0),
      published: all.reduce((sum, stats) => sum + stats.published, 0),
      latencies: all.flatMap((stats) => stats.latencies),
    };
  }

  nodesCpu(): number {
    return this.nodes.reduce((sum, node) => sum + (procCpuSeconds(node.pid) ?? NaN), 0);
  }
}

// ---- measuring ----------------------------------------------------------------------------------

function percentile(sorted: Float64Array, q: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! / 1000 : NaN;
}

async function measureStep(cluster: Cluster, baseline: Memory): Promise<StepResult> {
  const connections = cluster.connections;
  await sleep(options.warmupMs);
  const start = await cluster.chatTotals();
  const startAt = performance.now();
  const redisStart = procCpuSeconds(cluster.redis.pid) ?? NaN;
  const nodesStart = cluster.nodesCpu();
  await sleep(options.measureMs);
  const end = await cluster.chatTotals();
  const seconds = (performance.now() - startAt) / 1000;
  const redisSeconds = (procCpuSeconds(cluster.redis.pid) ?? NaN) - redisStart;
  const nodesSeconds = cluster.nodesCpu() - nodesStart;
  const published = end.published - start.published;
  const delivered = end.delivered - start.delivered;
  const sorted = Float64Array.from(end.latencies).sort();
  const memory = await cluster.memory();
  return {
    connections,
    channels: Math.ceil(connections / options.members),
    publishers: Math.ceil(connections / options.publishEvery),
    rssPerConnection: (memory.rss - baseline.rss) / connections,
    heapPerConnection: (memory.heapUsed - baseline.heapUsed) / connections,
    rss: memory.rss,
    heapUsed: memory.heapUsed,
    redisRss: memory.redisRss,
    publishedPerSecond: published / seconds,
    deliveredPerSecond: delivered / seconds,
    deliveryRatio: delivered / (published * (options.members - 1)),
    redisMicrosPerPublication: (redisSeconds / published) * 1e6,
    nodesMicrosPerPublication: (nodesSeconds / published) * 1e6,
    redisCpu: redisSeconds / seconds,
    nodesCpu: nodesSeconds / seconds,
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
    max: sorted.length ? sorted[sorted.length - 1]! / 1000 : NaN,
    samples: sorted.length,
    machineFreeBytes: availableMemory(),
  };
}

// ---- run ----------------------------------------------------------------------------------------

const cores = availableParallelism();
const cpuModel = cpus()[0]?.model ?? 'unknown';
const startedAt = new Date();
const t0 = performance.now();
console.log(
  `Scale: ${options.nodes} Chorus nodes on one redis-server, steps ${steps.map(formatInteger).join(', ')} connections (raw dialect, ${options.members} per channel, ` +
    `members spread over the nodes), every ${options.publishEvery}th connection publishing ${options.publishRate} msg/s of ${options.size} bytes; ` +
    `${options.warmupMs / 1000} s warm-up + ${options.measureMs / 1000} s measured per step; ${formatInteger(options.perHolder)} connections per helper process. ` +
    `Nothing pinned: ${cores} cores (${cpuModel}) shared by the nodes, Redis and the helpers${requested.some((n) => n > capacity) ? `; ${formatInteger(capacity)} = ${options.nodes} × ${formatInteger(NODE_CONNECTION_CAP)} is the most the open-files limit allows` : ''}.`,
);

const { child: redisChild, url } = await startRedis();
const cluster = new Cluster(redisChild, url);
const results: StepResult[] = [];
const warnings: string[] = [];
let calibration: Calibration | undefined;
try {
  if (options.calibration) {
    const calibrationSize = Math.min(5_000, steps[0]!);
    await cluster.startNodes();
    const before = await cluster.memory();
    await cluster.grow(calibrationSize, 1, 'calibration');
    await sleep(1000);
    const after = await cluster.memory();
    calibration = {
      connections: calibrationSize,
      rssPerConnection: (after.rss - before.rss) / calibrationSize,
      heapPerConnection: (after.heapUsed - before.heapUsed) / calibrationSize,
      redisRssPerChannel: (after.redisRss - before.redisRss) / calibrationSize,
    };
    progress('calibration', `${formatInteger(calibrationSize)} connections in channels of 1: RSS ${formatKiB(calibration.rssPerConnection)}, heap ${formatKiB(calibration.heapPerConnection)} per connection; Redis ${formatFixed(calibration.redisRssPerChannel, 0)} B per channel`);
    await cluster.stopNodes();
  }
  await cluster.startNodes();
  progress('scale', `nodes ${cluster.nodes.map((node) => `${node.port} (pid ${node.pid})`).join(', ')}; redis-server pid ${cluster.redis.pid}`);
  await sleep(2000);
  const baseline = await cluster.memory();
  for (const step of steps) {
    const free = availableMemory();
    if (free < options.minFreeBytes) {
      warnings.push(`stopped before ${formatInteger(step)} connections: ${formatMiB(free)} of memory available, below --min-free-gb`);
      progress('scale', `WARNING: ${warnings.at(-1)}`);
      break;
    }
    if (performance.now() - t0 > options.maxMs) {
      warnings.push(`stopped before ${formatInteger(step)} connections: the run had taken ${formatFixed((performance.now() - t0) / 60_000, 1)} min, past --max-minutes`);
      progress('scale', `WARNING: ${warnings.at(-1)}`);
      break;
    }
    const label = `${formatInteger(step)}`;
    const growStart = performance.now();
    const before = cluster.connections;
    try {
      await cluster.grow(step, options.members, label);
    } catch (error) {
      warnings.push(`stopped at ${formatInteger(step)} connections: ${error instanceof Error ? error.message : String(error)}`);
      progress(label, `WARNING: ${warnings.at(-1)}`);
      break;
    }
    progress(label, `opened ${formatInteger(step - before)} connections at ${formatInteger((step - before) / ((performance.now() - growStart) / 1000))}/s`);
    const result = await measureStep(cluster, baseline);
    results.push(result);
    progress(
      label,
      `RSS ${formatKiB(result.rssPerConnection)}/conn, heap ${formatKiB(result.heapPerConnection)}/conn (nodes ${formatMiB(result.rss)}, redis ${formatMiB(result.redisRss)}); ` +
        `${formatInteger(result.publishedPerSecond)} pub/s → ${formatInteger(result.deliveredPerSecond)} deliveries/s (${formatFixed(result.deliveryRatio * 100, 1)} %); ` +
        `Redis ${formatFixed(result.redisMicrosPerPublication, 0)} µs/pub (${formatFixed(result.redisCpu * 100, 0)} % of a core), nodes ${formatFixed(result.nodesMicrosPerPublication, 0)} µs/pub (${formatFixed(result.nodesCpu * 100, 0)} %); ` +
        `p50 ${formatFixed(result.p50, 2)} ms, p99 ${formatFixed(result.p99, 2)} ms (${formatInteger(result.samples)} samples); ${formatMiB(result.machineFreeBytes)} free`,
    );
    if (result.deliveryRatio < 0.95) warnings.push(`${label}: only ${formatFixed(result.deliveryRatio * 100, 1)} % of the expected deliveries arrived within the window`);
  }
} finally {
  await cluster.stopNodes();
  await cluster.redis.stop();
}

const run: ScaleRun = {
  date: startedAt,
  environment: { node: process.versions.node, cpu: cpuModel, cores },
  options,
  nodeCap: NODE_CONNECTION_CAP,
  calibration,
  results,
  warnings,
  minutes: (performance.now() - t0) / 60_000,
};
console.log(`\n${renderScale(run, options.docs).text}\nTook ${formatFixed(run.minutes ?? NaN, 1)} min.`);
console.log(`Saved ${writeResult('scale', { benchmark: 'scale', ...run, date: startedAt.toISOString() })}`);
if (options.docs && results.length >= 2) console.log('Updated docs/benchmarks.md (bench:scale section) and docs/benchmarks-scale.svg');
