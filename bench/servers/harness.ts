/**
 * The little protocol between a server script and the benchmark that spawned it
 * (see lib/process.ts):
 *
 * - once listening, the server prints one JSON line on stdout: `{"ready":true,"port":…,"pid":…}`;
 * - a `cpu` line on stdin is answered with `{"cpu":{"user":s,"system":s}}` from
 *   process.cpuUsage() (used where /proc/PID/stat cannot be read);
 * - a `mem` line runs two full GCs (when the server was started with --expose-gc) and is
 *   answered with `{"mem":{"rss":bytes,"heapUsed":bytes,"gc":true|false}}`;
 * - a `resources` line (the soak benchmark, a few times a minute) runs two full GCs too and is
 *   answered with `{"resources":{"rss","heapUsed","external","arrayBuffers","handles":{type:n},"timers"}}`:
 *   the live handles and requests by type from process.getActiveResourcesInfo(), timers
 *   (`Timeout`, `Immediate`) counted apart;
 * - a `snapshot <path>` line writes a V8 heap snapshot there (v8.writeHeapSnapshot; blocks the
 *   server for a moment) and is answered with `{"snapshot":"<path>"}`;
 * - stdin closing (the benchmark exited or crashed) or SIGTERM/SIGINT stops the server, so no
 *   server outlives its benchmark.
 */
import { createInterface } from 'node:readline';
import { writeHeapSnapshot } from 'node:v8';

export interface ReadyMessage {
  ready: true;
  port: number;
  pid: number;
}

export interface CpuMessage {
  cpu: { user: number; system: number };
}

export interface MemMessage {
  mem: { rss: number; heapUsed: number; gc: boolean };
}

export interface ResourcesMessage {
  resources: { rss: number; heapUsed: number; external: number; arrayBuffers: number; handles: Record<string, number>; timers: number; gc: boolean };
}

export interface SnapshotMessage {
  snapshot: string;
}

/** Resource types that are timers rather than handles or requests. */
const TIMER_TYPES = new Set(['Timeout', 'Immediate']);

function collectGarbage(): boolean {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  gc?.();
  return gc !== undefined;
}

function resources(): ResourcesMessage {
  const gc = collectGarbage();
  const usage = process.memoryUsage();
  const handles: Record<string, number> = {};
  let timers = 0;
  for (const type of process.getActiveResourcesInfo()) {
    if (TIMER_TYPES.has(type)) timers++;
    else handles[type] = (handles[type] ?? 0) + 1;
  }
  return { resources: { rss: usage.rss, heapUsed: usage.heapUsed, external: usage.external, arrayBuffers: usage.arrayBuffers, handles, timers, gc } };
}

export function announceReady(port: number): void {
  const ready: ReadyMessage = { ready: true, port, pid: process.pid };
  process.stdout.write(`${JSON.stringify(ready)}\n`);

  const commands = createInterface({ input: process.stdin });
  commands.on('line', (line) => {
    const command = line.trim();
    if (command === 'cpu') {
      const usage = process.cpuUsage();
      const reply: CpuMessage = { cpu: { user: usage.user / 1e6, system: usage.system / 1e6 } };
      process.stdout.write(`${JSON.stringify(reply)}\n`);
    } else if (command === 'mem') {
      const gc = collectGarbage();
      const usage = process.memoryUsage();
      const reply: MemMessage = { mem: { rss: usage.rss, heapUsed: usage.heapUsed, gc } };
      process.stdout.write(`${JSON.stringify(reply)}\n`);
    } else if (command === 'resources') {
      process.stdout.write(`${JSON.stringify(resources())}\n`);
    } else if (command.startsWith('snapshot ')) {
      const reply: SnapshotMessage = { snapshot: writeHeapSnapshot(command.slice('snapshot '.length)) };
      process.stdout.write(`${JSON.stringify(reply)}\n`);
    }
  });
  // Exiting without a graceful close is deliberate: the load generator drops its sockets first,
  // and a graceful close of thousands of connections would only add time to every run.
  commands.on('close', () => process.exit(0));
  process.on('SIGTERM', () => process.exit(0));
  process.on('SIGINT', () => process.exit(0));
}
