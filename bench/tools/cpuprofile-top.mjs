#!/usr/bin/env node
/**
 * Summarizes a V8 .cpuprofile (from `node --cpu-prof`, e.g. `npm run bench -- --profile chorus`):
 * self time by function and by file, so a hot path can be found without DevTools.
 *
 *   node bench/tools/cpuprofile-top.mjs bench/results/profiles/CPU.….cpuprofile [rows]
 */
/* global process, console */
import { readFileSync } from 'node:fs';

const [file, rowsArg, windowArg] = process.argv.slice(2);
if (!file) {
  console.error('usage: node bench/tools/cpuprofile-top.mjs <file.cpuprofile> [rows] [busiest-seconds]');
  process.exit(2);
}
const rows = Number(rowsArg) || 30;
const profile = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(profile.nodes.map((node) => [node.id, node]));
const samples = busiestWindow(profile, Number(windowArg) || 0);
const selfSamples = new Map();
for (const id of samples) selfSamples.set(id, (selfSamples.get(id) ?? 0) + 1);
const total = samples.length;

/**
 * With a window length, only the samples of the busiest stretch that long (fewest idle
 * samples): a benchmark's profile also holds connecting, draining and waiting, and the measured
 * phase is what matters.
 */
function busiestWindow({ samples: ids, timeDeltas, nodes }, seconds) {
  if (!seconds) return ids;
  const idleIds = new Set(nodes.filter((node) => node.callFrame.functionName === '(idle)').map((node) => node.id));
  const times = [];
  let now = 0;
  for (const delta of timeDeltas) times.push((now += delta));
  const span = seconds * 1e6;
  let best = [0, 0];
  let bestBusy = -1;
  let busy = 0;
  let start = 0;
  for (let end = 0; end < ids.length; end++) {
    if (!idleIds.has(ids[end])) busy++;
    while (times[end] - times[start] > span) if (!idleIds.has(ids[start++])) busy--;
    if (busy > bestBusy) [bestBusy, best] = [busy, [start, end + 1]];
  }
  console.log(`busiest ${seconds} s: ${bestBusy} busy samples of ${best[1] - best[0]}`);
  return ids.slice(...best);
}

const shortUrl = (url) => url.replace(/^file:\/\/.*?\/node_modules\//, '').replace(/^file:\/\/.*?\/(packages|bench)\//, '$1/');
const byFunction = new Map();
const byFile = new Map();
for (const [id, count] of selfSamples) {
  const { callFrame } = byId.get(id);
  const where = callFrame.url ? `${shortUrl(callFrame.url)}:${callFrame.lineNumber + 1}` : '(native)';
  const key = `${callFrame.functionName || '(anonymous)'}  ${where}`;
  byFunction.set(key, (byFunction.get(key) ?? 0) + count);
  const fileKey = callFrame.url ? shortUrl(callFrame.url) : callFrame.functionName || '(native)';
  byFile.set(fileKey, (byFile.get(fileKey) ?? 0) + count);
}
const print = (title, map) => {
  console.log(`\n${title} (self time, ${total} samples)`);
  for (const [key, count] of [...map].sort((a, b) => b[1] - a[1]).slice(0, rows)) {
    console.log(`${((count / total) * 100).toFixed(1).padStart(6)} %  ${key}`);
  }
};
print('By function', byFunction);
print('By file', byFile);
