#!/usr/bin/env node
/**
 * Summarizes a V8 .cpuprofile (from `node --cpu-prof`, e.g. `npm run bench -- --profile chorus`):
 * self time by function and by file, so a hot path can be found without DevTools.
 *
 *   node bench/tools/cpuprofile-top.mjs bench/results/profiles/CPU.….cpuprofile [rows]
 */
/* global process, console */
import { readFileSync } from 'node:fs';

const [file, rowsArg] = process.argv.slice(2);
if (!file) {
  console.error('usage: node bench/tools/cpuprofile-top.mjs <file.cpuprofile> [rows]');
  process.exit(2);
}
const rows = Number(rowsArg) || 30;
const profile = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(profile.nodes.map((node) => [node.id, node]));
const selfSamples = new Map();
for (const id of profile.samples) selfSamples.set(id, (selfSamples.get(id) ?? 0) + 1);
const total = profile.samples.length;

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
