/** The parent side of churn-process.ts (bench:soak): start a churn helper, read its counters, pause, resume, stop it. */
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { ChurnConfig, ChurnStats } from './churn-process.ts';
import { spawnHelper } from './holders.ts';

const SCRIPT = fileURLToPath(new URL('./churn-process.ts', import.meta.url));
const STOP_TIMEOUT_MS = 10_000;

export class ChurnHelper {
  /** The helper's last report (every second). */
  stats: ChurnStats | undefined;
  readonly #child: ReturnType<typeof spawnHelper>;
  readonly #exited: Promise<void>;

  constructor(config: ChurnConfig) {
    this.#child = spawnHelper(SCRIPT, config, `churn ${config.id}`);
    this.#exited = new Promise((resolve) => this.#child.once('exit', () => resolve()));
    createInterface({ input: this.#child.stdout }).on('line', (line) => {
      try {
        this.stats = (JSON.parse(line) as { stats: ChurnStats }).stats;
      } catch {
        process.stdout.write(`[churn ${config.id}] ${line}\n`);
      }
    });
  }

  /** No new clients until resume(); open ones end as planned. */
  pause(): void {
    this.#child.stdin.write('pause\n');
  }

  resume(): void {
    this.#child.stdin.write('resume\n');
  }

  /** Drops the helper's clients and waits for it to exit. */
  async stop(): Promise<void> {
    this.#child.stdin.end();
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    await this.#exited;
    clearTimeout(timer);
  }
}

export type ChurnTotals = Omit<ChurnStats, 'errors'> & { errors: string[] };

/** The helpers' counters added up. */
export function sumStats(helpers: readonly ChurnHelper[]): ChurnTotals {
  const total: ChurnTotals = { started: 0, opened: 0, failed: 0, ended: 0, cut: 0, closedByServer: 0, skipped: 0, open: 0, errors: [] };
  for (const helper of helpers) {
    const stats = helper.stats;
    if (!stats) continue;
    for (const key of ['started', 'opened', 'failed', 'ended', 'cut', 'closedByServer', 'skipped', 'open'] as const) total[key] += stats[key];
    total.errors.push(...stats.errors);
  }
  return total;
}
