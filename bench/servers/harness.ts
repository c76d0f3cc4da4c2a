/**
 * The little protocol between a server script and the benchmark that spawned it
 * (see lib/process.ts):
 *
 * - once listening, the server prints one JSON line on stdout: `{"ready":true,"port":…,"pid":…}`;
 * - a `cpu` line on stdin is answered with `{"cpu":{"user":s,"system":s}}` from
 *   process.cpuUsage() (used where /proc/PID/stat cannot be read);
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

export function announceReady(port: number): void {
  const ready: ReadyMessage = { ready: true, port, pid: process.pid };
  process.stdout.write(`${JSON.stringify(ready)}\n`);

  const commands = createInterface({ input: process.stdin });
  commands.on('line', (line) => {
    if (line.trim() !== 'cpu') return;
    const usage = process.cpuUsage();
    const reply: CpuMessage = { cpu: { user: usage.user / 1e6, system: usage.system / 1e6 } };
    process.stdout.write(`${JSON.stringify(reply)}\n`);
  });
  // Exiting without a graceful close is deliberate: the load generator drops its sockets first,
  // and a graceful close of thousands of connections would only add time to every run.
  commands.on('close', () => process.exit(0));
  process.on('SIGTERM', () => process.exit(0));
  process.on('SIGINT', () => process.exit(0));
}
