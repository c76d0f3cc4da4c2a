/**
 * The little protocol between a server script and the benchmark that spawned it
 * (see lib/process.ts):
 *
 * - once listening, the server prints one JSON line on stdout: `{"ready":true,"port":…,"pid":…}`;
 * - a `cpu` line on stdin is answered with `{"cpu":{"user":s,"system":s}}` from
 *   process.cpuUsage() (used where /proc/PID/stat cannot be read);
 * - a `mem` line runs two full GCs (when the server was started with --expose-gc) and is
 *   answered with `{"mem":{"rss":bytes,"heapUsed":bytes,"gc":true|false}}`;
 * - stdin closing (the benchmark exited or crashed) or SIGTERM/SIGINT stops the server, so no
 *   server outlives its benchmark.
 */
import { createInterface } from 'node:readline';

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
      const gc = (globalThis as { gc?: () => void }).gc;
      gc?.();
      gc?.();
      const usage = process.memoryUsage();
      const reply: MemMessage = { mem: { rss: usage.rss, heapUsed: usage.heapUsed, gc: gc !== undefined } };
      process.stdout.write(`${JSON.stringify(reply)}\n`);
    }
  });
  // Exiting without a graceful close is deliberate: the load generator drops its sockets first,
  // and a graceful close of thousands of connections would only add time to every run.
  commands.on('close', () => process.exit(0));
  process.on('SIGTERM', () => process.exit(0));
  process.on('SIGINT', () => process.exit(0));
}
