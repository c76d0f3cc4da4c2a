/**
 * `chorus bench`: finding bench/, passing flags through, stdout/stderr split, the progress bar
 * (parsed from the benchmark's own output; see src/cli/bench-progress.ts), and one short real
 * fan-out run so a change in bench/'s output format shows up here.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { BenchProgress, renderProgress } from '../src/cli/bench-progress.ts';
import { run, runPty, screen, tempDir } from './cli-helpers.ts';

const benchDir = join(tempDir, 'bench');
mkdirSync(benchDir, { recursive: true });
writeFileSync(join(tempDir, 'package.json'), '{"type": "module"}'); // the checkout's root, as in the repository
const resultFile = join(tempDir, 'fake-result.json');
writeFileSync(resultFile, JSON.stringify({ benchmark: 'fake', summary: [{ server: 'chorus', deliveredPerSecond: 100 }] }));

/** Prints what the suite prints, quickly; FAKE_EXIT sets its exit code. */
writeFileSync(
  join(benchDir, 'fake.ts'),
  `const lines: string[] = [
  'Chorus benchmark suite: fanout, idle × Chorus, naive ws.',
  'Cores: servers on CPU 0, load generator on CPU 1.',
  '',
  '== Fan-out: 1 publisher → 100 subscribers, 100-byte messages, at saturation  (0:00 elapsed)',
  'Chorus',
  '  [fake] args: ' + process.argv.slice(2).join(' '),
  '  [chorus] measure  1.0 s    3,688,019 msg/s',
  'naive ws',
  '  [naive-ws] measure  1.0 s    64,394 msg/s',
  '',
  '== Idle memory: 10,000 idle connections  (0:01 elapsed)',
  'Chorus',
  '  [chorus] connecting: 5,000 of 10,000',
  'naive ws',
  '  [naive-ws] FAILED: boom',
  '',
  '== Results',
  '',
  '| server | msg/s |',
  '|--------|------:|',
  '| Chorus | 3,688,019 |',
  '',
  'Saved ${resultFile}',
];
console.error('a line on stderr');
for (const line of lines) {
  console.log(line);
  await new Promise((resolve) => setTimeout(resolve, Number(process.env['FAKE_DELAY'] ?? 0)));
}
process.exitCode = Number(process.env['FAKE_EXIT'] ?? 0);
`,
);
const RESULTS = ['== Results', '', '| server | msg/s |', '|--------|------:|', '| Chorus | 3,688,019 |', '', `Saved ${resultFile}`, ''].join('\n');
const env = { CHORUS_BENCH_DIR: benchDir };

describe('chorus bench', () => {
  it('runs bench/NAME.ts with the other flags passed through: progress to stderr, results to stdout', async () => {
    const r = run(['bench', 'fake', '--fanout-subscribers', '100', '--only', 'fanout,idle', '--', '--json'], { env });
    assert.equal(await r.exited(), 0, r.stderr());
    assert.equal(r.stdout(), RESULTS);
    assert.match(r.stderr(), /^a line on stderr\n|\na line on stderr\n/);
    assert.match(r.stderr(), /^ {2}\[fake\] args: --fanout-subscribers 100 --only fanout,idle --json$/m, 'flags after -- go through too');
    assert.match(r.stderr(), /^Chorus benchmark suite: /m);
    assert.match(r.stderr(), /\[naive-ws\] FAILED: boom/);
  });

  it('--json prints the result file the benchmark saved', async () => {
    const r = run(['bench', 'fake', '--json'], { env });
    assert.equal(await r.exited(), 0, r.stderr());
    assert.deepEqual(JSON.parse(r.stdout()), JSON.parse(readFileSync(resultFile, 'utf8')));
  });

  it('passes the benchmark\'s exit code on', async () => {
    const r = run(['bench', 'fake'], { env: { ...env, FAKE_EXIT: '1' } });
    assert.equal(await r.exited(), 1);
    const usage = run(['bench', 'fake'], { env: { ...env, FAKE_EXIT: '2' } });
    assert.equal(await usage.exited(), 2);
  });

  it('on a terminal: a progress bar on stderr, FAILED lines kept above it, the table after it', async () => {
    const r = runPty(['bench', 'fake', '--fanout-subscribers', '100'], { env: { ...env, FAKE_DELAY: '150' }, columns: 160 });
    assert.equal(await r.exited(), 0, screen(r.stdout()));
    const raw = r.stdout();
    assert.match(raw, /\[░{24}\] 1\/4 {2}0:0\d {2}Chorus · measure 1\.0 s 3,688,019 msg\/s · Fan-out: 1 publisher → 100 subscribers/, 'the first of four runs');
    assert.match(raw, /\[█{6}░{18}\] 2\/4 {2}0:0\d {2}naive ws · measure 1\.0 s 64,394 msg\/s · Fan-out/);
    assert.match(raw, /\[█{12}░{12}\] 3\/4 {2}0:0\d {2}Chorus · connecting: 5,000 of 10,000 · Idle memory/);
    for (const line of raw.split(/\r\n|\r|\n/)) assert.ok([...screen(line)].length <= 160, `fits the terminal: ${line}`);
    const shown = screen(raw);
    assert.match(shown, /^a line on stderr$/m);
    assert.match(shown, /^\[naive-ws\] FAILED: boom$/m);
    assert.ok(shown.trimEnd().endsWith(RESULTS.trimEnd()), shown);
    assert.doesNotMatch(shown, /█/, 'the bar is cleared at the end');
    assert.doesNotMatch(shown, /\[chorus\] measure/, 'progress lines only feed the bar');
  });

  it('without bench/ (an installed package) explains where benchmarks live: exit 1', async () => {
    const r = run(['bench'], { env: { CHORUS_BENCH_DIR: join(tempDir, 'no-bench-here') } });
    assert.equal(await r.exited(), 1);
    assert.match(r.stderr(), /^chorus: bench: no benchmarks here \(.*no-bench-here does not exist\)\. They live in the Chorus source repository, not in the installed package/);
  });

  it('an unknown benchmark: exit 2 listing the ones there are', async () => {
    const r = run(['bench', 'nope'], { env });
    assert.equal(await r.exited(), 2);
    assert.match(r.stderr(), /no benchmark "nope" in .*; available: fake/);
  });

  it('runs the real fan-out benchmark of this repository (a one-second run)', async () => {
    const r = run(['bench', 'fanout', '--duration', '1', '--warmup', '0', '--subscribers', '20', '--servers', 'chorus']);
    const code = await r.exited(60_000);
    const saved = /^Saved (.+\.json)$/m.exec(r.stdout())?.[1];
    if (saved) rmSync(saved, { force: true });
    assert.equal(code, 0, r.stderr());
    assert.match(r.stdout(), /^Results/);
    assert.match(r.stdout(), /^\| Chorus +\| +[\d,]+ \|/m);
    assert.match(r.stderr(), /^Fan-out: 1 publisher → 20 subscribers/);
    assert.ok(saved, 'the result file is named');
  });
});

describe('bench progress parsing', () => {
  const hints = { fanoutSteps: 3, servers: 2 };

  it('counts the suite\'s runs from its first line: phases × servers × rounds', () => {
    const progress = new BenchProgress(hints);
    progress.feed('Chorus benchmark suite: fanout, latency, idle × Chorus, Bun pub/sub, Socket.IO, 2 rounds (--quick).');
    assert.equal(progress.total, (3 + 2) * 3 * 2, 'fanout has 3 steps');
    assert.equal(progress.fraction, 0);
    progress.feed('Cores: servers on CPU 0');
    progress.feed('');
    progress.feed('== Fan-out: 1 publisher → 100 subscribers  (0:03 elapsed)');
    assert.equal(progress.phase, 'Fan-out: 1 publisher → 100 subscribers');
    progress.feed('Chorus');
    progress.feed('  [chorus] warm-up  1.0 s    2,682,080 msg/s');
    assert.deepEqual([progress.started, progress.run, progress.detail], [1, 'Chorus', 'warm-up 1.0 s 2,682,080 msg/s']);
    progress.feed('Bun pub/sub');
    assert.equal(progress.fraction, 1 / 30);
    assert.equal(progress.feed('== Results (median of 2 rounds)'), 'result');
    assert.equal(progress.feed('| a | b |'), 'result');
    assert.equal(progress.fraction, 1);
  });

  it('fanout.ts: rounds × servers; a total that was too small grows', () => {
    const progress = new BenchProgress({ fanoutSteps: 3, servers: 1 });
    progress.feed('Fan-out: 1 publisher → 1,000 subscribers on one channel, 100-byte messages; warm-up 2 s, measure 5 s, 1 round(s).');
    assert.equal(progress.total, 1);
    for (const line of ['Cores: x', '', 'Chorus', '  [chorus] result: 1 msg/s', '', 'naive ws']) progress.feed(line);
    assert.deepEqual([progress.started, progress.total], [2, 2]);
    assert.equal(progress.feed(''), 'log');
    assert.equal(progress.feed('Results:'), 'result');
  });

  it('an unknown first line: no total, an indeterminate bar', () => {
    const progress = new BenchProgress(hints);
    progress.feed('Something else entirely');
    progress.feed('');
    progress.feed('Chorus');
    assert.equal(progress.total, undefined);
    assert.equal(progress.fraction, undefined);
    const frames = [0, 5, 10].map((tick) => renderProgress(progress, 65_000, 80, tick));
    assert.match(frames[0] ?? '', /^\[█{4} {20}\] run 1 {2}1:05 {2}Chorus$/);
    assert.notEqual(frames[1], frames[2], 'the block moves');
  });

  it('renders within the terminal width', () => {
    const progress = new BenchProgress(hints);
    progress.feed('Chorus benchmark suite: idle × Chorus.');
    progress.feed('');
    progress.feed(`== ${'A very long phase title '.repeat(10)}`);
    progress.feed('Chorus');
    const line = renderProgress(progress, 1000, 60, 0);
    assert.equal([...line].length, 59);
    assert.ok(line.endsWith('…'));
    assert.match(line, /^\[░{24}\] 1\/1 {2}0:01 {2}Chorus · A very/);
  });
});
