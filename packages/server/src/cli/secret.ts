/** `chorus secret`: print a fresh random secret, the one way the config's refusals point to. */
import { randomBytes } from 'node:crypto';
import { UsageError, expectPositionals, parseFlags } from './args.js';

const DEFAULT_BYTES = 24;
/** 12 bytes are 16 base64url characters, the shortest secret a config accepts. */
const MIN_BYTES = 12;
/** 768 bytes are 1024 characters, the longest. */
const MAX_BYTES = 768;

export const SECRET_USAGE = `Usage: chorus secret [--bytes N]

Prints a new random secret (${DEFAULT_BYTES} random bytes from the system's CSPRNG, base64url: ${Math.ceil((DEFAULT_BYTES * 4) / 3)} characters)
for an app's "secret" or a tokenKeys entry in the config file. Nothing is stored:
  chorus secret            # paste it into chorus.json
  SECRET=$(chorus secret)

Options:
      --bytes N         Random bytes, ${MIN_BYTES} to ${MAX_BYTES} (default ${DEFAULT_BYTES}; 64 for an HS512 tokenKeys entry)
  -h, --help            Show this help

Exit codes:
  0  printed
  2  bad usage: an unknown flag or a bad --bytes`;

export function secretCommand(argv: readonly string[]): Promise<number> {
  const { values, positionals } = parseFlags('secret', argv, { bytes: { type: 'string' } });
  expectPositionals('secret', positionals, 0, 0, '');
  const bytes = values.bytes === undefined ? DEFAULT_BYTES : Number(values.bytes);
  if (values.bytes !== undefined && (!/^\d+$/.test(values.bytes) || bytes < MIN_BYTES || bytes > MAX_BYTES)) {
    throw new UsageError(`--bytes ${values.bytes}: must be a whole number from ${MIN_BYTES} to ${MAX_BYTES}`);
  }
  process.stdout.write(`${randomBytes(bytes).toString('base64url')}\n`);
  return Promise.resolve(0);
}
