// Runs every *.test.ts under packages/*/test with Node's test runner (TypeScript through tsx).
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const files = [];
for (const pkg of readdirSync('packages')) {
  const dir = join('packages', pkg, 'test');
  let entries;
  try {
    entries = readdirSync(dir, { recursive: true });
  } catch {
    continue;
  }
  for (const entry of entries) if (String(entry).endsWith('.test.ts')) files.push(join(dir, String(entry)));
}
if (files.length === 0) {
  console.error('run-tests: no test files found');
  process.exit(1);
}
const filter = process.argv.slice(2);
const selected = filter.length ? files.filter((f) => filter.some((needle) => f.includes(needle))) : files;
const result = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=2', ...selected.sort()], { stdio: 'inherit' });
process.exit(result.status ?? 1);
