/**
 * Reads the benchmark's stdout line by line and turns it into a progress bar. This is the whole
 * coupling between `chorus bench` and bench/, kept to what those scripts print for people:
 *
 * - the first line names the work:
 *     "Chorus benchmark suite: fanout, latency × Chorus, Bun pub/sub, 2 rounds (--quick)."  (suite.ts)
 *     "Fan-out: 1 publisher → … 3 round(s)."                                               (fanout.ts)
 * - "== Title (m:ss elapsed)" starts a phase;
 * - an unindented line after the preamble starts one server's run ("Chorus", "naive ws");
 * - "  [id] text" lines say what that run is doing;
 * - "Results" (or "== Results") starts the results, which go to stdout as they are.
 *
 * When the first line is not recognised the bar is indeterminate (a moving block, the run count
 * and the elapsed time); when more runs come than expected the total grows. Nothing here can
 * fail a benchmark.
 */

export interface ProgressHints {
  /** Fan-out steps of the suite (its --fanout-subscribers list; the suite runs 3 by default). */
  fanoutSteps: number;
  /** Servers of fanout.ts (its --servers list; chorus and naive-ws by default). */
  servers: number;
}

export type LineKind = 'log' | 'result';

export class BenchProgress {
  /** Runs (one server in one phase) started so far. */
  started = 0;
  /** Runs expected, when the first line told; undefined: unknown. */
  total: number | undefined;
  phase = '';
  run = '';
  detail = '';
  inResults = false;
  readonly #hints: ProgressHints;
  #lines = 0;
  #afterPreamble = false;

  constructor(hints: ProgressHints) {
    this.#hints = hints;
  }

  /** Feeds one stdout line; says whether it belongs to the progress log or to the results. */
  feed(line: string): LineKind {
    if (this.inResults) return 'result';
    const first = this.#lines++ === 0;
    if (/^(== )?Results\b/.test(line)) {
      this.inResults = true;
      return 'result';
    }
    if (first) {
      this.total = this.#expectedRuns(line);
      return 'log';
    }
    const heading = /^== (.+?)(?:\s+\(\d+:\d+ elapsed\))?\s*$/.exec(line);
    if (heading) {
      this.phase = heading[1] as string;
      this.#afterPreamble = true;
    } else if (line.trim() === '') {
      this.#afterPreamble = true;
    } else if (/^\S/.test(line) && this.#afterPreamble && !/^(WARNING|Cores|Saved |Warnings|Failures)/.test(line)) {
      this.started++;
      this.run = line.trim();
      this.detail = '';
      if (this.total !== undefined && this.started > this.total) this.total = this.started;
    } else {
      const activity = /^\s+\[[^\]]+\]\s+(.*)$/.exec(line);
      if (activity) this.detail = (activity[1] as string).replace(/\s+/g, ' ');
    }
    return 'log';
  }

  /** Share of the runs finished, 0–1, or undefined when the total is unknown. */
  get fraction(): number | undefined {
    if (this.inResults) return 1;
    if (this.total === undefined || this.total === 0) return undefined;
    return Math.min(1, Math.max(0, this.started - 1) / this.total);
  }

  #expectedRuns(line: string): number | undefined {
    const suite = /^Chorus benchmark suite: (.+) × (.+?)(?:, (\d+) rounds)?(?: \(--quick\))?\.$/.exec(line);
    if (suite) {
      const scenarios = (suite[1] as string).split(', ');
      const servers = (suite[2] as string).split(', ').length;
      const rounds = Number(suite[3] ?? 1);
      const phases = scenarios.length + (scenarios.includes('fanout') ? Math.max(0, this.#hints.fanoutSteps - 1) : 0);
      return phases * servers * rounds;
    }
    const fanout = /^Fan-out: .*\b(\d+) round\(s\)\.$/.exec(line);
    if (fanout) return Number(fanout[1]) * this.#hints.servers;
    return undefined;
  }
}

const BAR_WIDTH = 24;

/** One line: `[█████░░░░░] 3/12  1:05  Chorus · measure 1.0 s 3,688,019 msg/s · Fan-out: …`. */
export function renderProgress(progress: BenchProgress, elapsedMs: number, columns: number, tick: number): string {
  const fraction = progress.fraction;
  let bar: string;
  if (fraction === undefined) {
    const block = 4;
    const span = BAR_WIDTH - block;
    const position = span - Math.abs((tick % (2 * span)) - span);
    bar = `${' '.repeat(position)}${'█'.repeat(block)}${' '.repeat(span - position)}`;
  } else {
    const filled = Math.round(fraction * BAR_WIDTH);
    bar = `${'█'.repeat(filled)}${'░'.repeat(BAR_WIDTH - filled)}`;
  }
  const seconds = Math.floor(elapsedMs / 1000);
  const clock = `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, '0')}`;
  const count = progress.total !== undefined ? `${Math.max(progress.started, 1)}/${progress.total}` : `run ${progress.started}`;
  const parts = [progress.run, progress.detail, progress.phase].filter(Boolean).join(' · ');
  const line = `[${bar}] ${count}  ${clock}  ${parts}`;
  const chars = [...line];
  return chars.length >= columns ? `${chars.slice(0, Math.max(columns - 2, 0)).join('')}…` : line;
}
