/**
 * Benchmark settings from command-line flags (`npm run bench:fanout -- --duration 10`) or the
 * environment (`BENCH_DURATION=10`); flags win. Every setting is a number except lists.
 */
import { parseArgs } from 'node:util';

export interface Setting {
  /** Flag name; the environment variable is BENCH_<NAME> (upper case, dashes as underscores). */
  name: string;
  description: string;
  /** A boolean default makes the setting a flag without a value (`--quick`; BENCH_QUICK=1). */
  default: number | string | boolean;
}

export type Settings = Record<string, string>;

/** Parses `args` against `settings`; prints usage and exits on --help or an unknown flag. */
export function readSettings(args: string[], usage: string, settings: readonly Setting[]): Settings {
  const options: Record<string, { type: 'string' } | { type: 'boolean' }> = { help: { type: 'boolean' } };
  for (const setting of settings) options[setting.name] = typeof setting.default === 'boolean' ? { type: 'boolean' } : { type: 'string' };
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args, options, strict: true, allowPositionals: false }));
  } catch (error) {
    console.error(error instanceof Error ? error.message : error);
    printUsage(usage, settings);
    process.exit(2);
  }
  if (values.help) {
    printUsage(usage, settings);
    process.exit(0);
  }
  const result: Settings = {};
  for (const setting of settings) {
    const flag = values[setting.name];
    const env = process.env[envName(setting.name)];
    if (typeof setting.default === 'boolean') {
      result[setting.name] = String(flag === true || (env !== undefined && env !== '' && env !== '0' && env !== 'false') || (flag === undefined && env === undefined && setting.default));
    } else {
      result[setting.name] = typeof flag === 'string' ? flag : (env ?? String(setting.default));
    }
  }
  return result;
}

/** A setting as a finite number ≥ `min`; exits with a message otherwise. */
export function numberSetting(settings: Settings, name: string, min = 0): number {
  const value = Number(settings[name]);
  if (!Number.isFinite(value) || value < min) {
    console.error(`--${name} (${envName(name)}) must be a number ≥ ${min}, got ${JSON.stringify(settings[name])}`);
    process.exit(2);
  }
  return value;
}

/** A flag setting (`--quick`). */
export function booleanSetting(settings: Settings, name: string): boolean {
  return settings[name] === 'true';
}

/** A comma-separated setting as a list of non-empty items. */
export function listSetting(settings: Settings, name: string): string[] {
  return (settings[name] ?? '')
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean);
}

function envName(name: string): string {
  return `BENCH_${name.toUpperCase().replaceAll('-', '_')}`;
}

function printUsage(usage: string, settings: readonly Setting[]): void {
  console.log(`${usage}\n\nOptions (flag, or environment variable):`);
  for (const setting of settings) {
    const flag = typeof setting.default === 'boolean' ? `--${setting.name}` : `--${setting.name} <value>`;
    const fallback = typeof setting.default === 'boolean' ? '' : ` (default ${setting.default === '' ? 'none' : setting.default})`;
    console.log(`  ${flag.padEnd(22)} ${envName(setting.name).padEnd(22)} ${setting.description}${fallback}`);
  }
}
