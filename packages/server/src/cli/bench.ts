/**
 * `chorus bench`: runs a benchmark of the source repository (bench/NAME.ts, through tsx) with a
 * progress bar on stderr and the results on stdout. The benchmarks are not part of the installed
 * package; without bench/ this says so and exits 1. bench-progress.ts reads the output.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { EXIT_FAILURE, EXIT_USAGE, UsageError, fail } from './args.js';
import { BenchProgress, renderProgress, type ProgressHints } from './bench-progress.js';

export const BENCH_USAGE = `Usage: chorus bench [NAME] [options] [-- benchmark options]

Runs a benchmark of the Chorus source repository (bench/NAME.ts) and shows a progress bar on
stderr; the results table goes to stdout. Needs a checkout with "npm install" done: bench/ is
not part of the installed package.

NAME:
  suite                 Every scenario, Chorus next to its peers (the default; about 8-10 min;
                        "npm run bench")
  fanout                1 publisher to 1,000 subscribers, Chorus against a naive ws loop
                        (about 20 s; "npm run bench:fanout")
                        Any other bench/NAME.ts works the same way.

Options:
      --json            Print the result file the benchmark saved (JSON) instead of the table
      --no-progress     No bar: the benchmark's progress lines go to stderr as they are
                        (always so when stderr is not a terminal)
  -h, --help            Show this help (the benchmark's own: chorus bench NAME -- --help)

Every other option is the benchmark's own and is passed to it, e.g.
  chorus bench --quick --only fanout,latency --servers chorus,bun
  chorus bench fanout --duration 10 --rounds 3
  chorus bench fanout -- --help

Environment: BENCH_* variables reach the benchmark (BENCH_DURATION=10 = --duration 10);
CHORUS_BENCH_DIR points at another bench/ folder.

Exit codes (the benchmark's own):
  0  finished (a benchmark never fails on a number)
  1  a run failed, the benchmark was interrupted, or bench/ or its dependencies are missing
  2  bad options`;

const LOG_TAIL_LINES = 40;

export async function benchCommand(argv: readonly string[]): Promise<number> {
  const separator = argv.indexOf('--');
  const own = separator >= 0 ? argv.slice(0, separator) : [...argv];
  const passed: string[] = [];
  let name = 'suite';
  let json = false;
  let showBar = true;
  own.forEach((arg, index) => {
    if (index === 0 && !arg.startsWith('-')) name = arg;
    else if (arg === '--json') json = true;
    else if (arg === '--no-progress') showBar = false;
    else passed.push(arg);
  });
  if (separator >= 0) passed.push(...argv.slice(separator + 1));
  if (!/^[a-z][a-z0-9-]*$/.test(name)) throw new UsageError(`bench: "${name}" is not a benchmark name\nRun "chorus help bench" for usage.`);

  const benchDir = resolve(process.env['CHORUS_BENCH_DIR'] ?? fileURLToPath(new URL('../../../../bench/', import.meta.url)));
  if (!existsSync(benchDir)) {
    return fail(
      EXIT_FAILURE,
      `bench: no benchmarks here (${benchDir} does not exist). They live in the Chorus source repository, not in the installed package: clone it, run "npm install", then "npx chorus bench" there.`,
    );
  }
  const entry = join(benchDir, `${name}.ts`);
  if (!existsSync(entry)) {
    const available = readdirSync(benchDir)
      .filter((file) => file.endsWith('.ts'))
      .map((file) => file.slice(0, -3));
    return fail(EXIT_USAGE, `bench: no benchmark "${name}" in ${benchDir}; available: ${available.join(', ') || 'none'}`);
  }
  const root = dirname(benchDir);
  const tsx = resolveTsx(root);
  if (!tsx) return fail(EXIT_FAILURE, `bench: the benchmarks run through tsx, a dev dependency: run "npm install" in ${root}`);

  return runBenchmark({
    args: ['--import', pathToFileURL(tsx).href, entry, ...passed],
    cwd: root,
    json,
    bar: showBar && Boolean(process.stderr.isTTY),
    hints: hintsFrom(passed),
  });
}

function resolveTsx(root: string): string | undefined {
  for (const from of [join(root, 'package.json'), fileURLToPath(import.meta.url)]) {
    try {
      return createRequire(from).resolve('tsx');
    } catch {
      // try the next place
    }
  }
  return undefined;
}

/** What the bar needs to know up front that the benchmark's first line does not say. */
function hintsFrom(args: readonly string[]): ProgressHints {
  const flag = (name: string): string | undefined => {
    for (const [index, arg] of args.entries()) {
      if (arg === `--${name}`) return args[index + 1];
      if (arg.startsWith(`--${name}=`)) return arg.slice(name.length + 3);
    }
    return process.env[`BENCH_${name.toUpperCase().replaceAll('-', '_')}`];
  };
  const count = (list: string | undefined, fallback: number): number => (list === undefined ? fallback : list.split(',').filter((item) => item.trim()).length || fallback);
  return { fanoutSteps: count(flag('fanout-subscribers'), 3), servers: count(flag('servers'), 2) };
}

interface RunOptions {
  args: string[];
  cwd: string;
  json: boolean;
  bar: boolean;
  hints: ProgressHints;
}

function runBenchmark(options: RunOptions): Promise<number> {
  const progress = new BenchProgress(options.hints);
  const startedAt = Date.now();
  const tail: string[] = [];
  const results: string[] = [];
  let tick = 0;
  let barShown = false;

  const clearBar = (): void => {
    if (barShown) process.stderr.write('\r\x1b[K');
    barShown = false;
  };
  const drawBar = (): void => {
    if (!options.bar || progress.inResults) return;
    process.stderr.write(`\r\x1b[K${renderProgress(progress, Date.now() - startedAt, process.stderr.columns || 80, tick++)}`);
    barShown = true;
  };
  /** A line for stderr that must stay visible: above the bar. */
  const above = (line: string): void => {
    clearBar();
    process.stderr.write(`${line}\n`);
    drawBar();
  };

  const child = spawn(process.execPath, options.args, { cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
  const forward = (signal: NodeJS.Signals): void => {
    child.kill(signal);
  };
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  const timer = setInterval(drawBar, 1000);
  timer.unref();
  drawBar();

  createInterface({ input: child.stdout }).on('line', (line) => {
    if (progress.feed(line) === 'result') {
      clearBar();
      results.push(line);
      if (!options.json) process.stdout.write(`${line}\n`);
      return;
    }
    if (!options.bar) {
      process.stderr.write(`${line}\n`);
      return;
    }
    tail.push(line);
    if (tail.length > LOG_TAIL_LINES) tail.shift();
    if (/\bFAILED\b|^WARNING/.test(line)) above(line.trim());
    else drawBar();
  });
  createInterface({ input: child.stderr }).on('line', (line) => (options.bar ? above(line) : process.stderr.write(`${line}\n`)));

  return new Promise<number>((resolveExit) => {
    child.on('error', (error) => {
      clearBar();
      resolveExit(fail(EXIT_FAILURE, `bench: cannot start ${process.execPath}: ${error.message}`));
    });
    child.on('close', (code, signal) => {
      clearInterval(timer);
      process.off('SIGINT', forward);
      process.off('SIGTERM', forward);
      clearBar();
      if (code !== 0 && options.bar && results.length === 0 && tail.length > 0) {
        process.stderr.write(`${tail.join('\n')}\n`);
      }
      if (signal) return resolveExit(fail(EXIT_FAILURE, `bench: interrupted (${signal})`));
      if (code !== 0) return resolveExit(code ?? EXIT_FAILURE);
      if (options.json) {
        const saved = results.map((line) => /^Saved (.+\.json)\s*$/.exec(line)?.[1]).find(Boolean);
        if (!saved) return resolveExit(fail(EXIT_FAILURE, 'bench: the benchmark did not say where it saved its results ("Saved FILE.json")'));
        process.stdout.write(readFileSync(resolve(options.cwd, saved), 'utf8').trimEnd() + '\n');
      }
      resolveExit(0);
    });
  });
}
