/**
 * Processes and cores: start a server under test in its own process pinned to one core, read
 * its CPU time, stop it; pin this process (the load generator) to another core.
 *
 * Pinning uses `taskset` (util-linux) when it exists; without it everything still runs, but
 * server and generator may share a core and the results say so.
 */
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { CpuMessage, MemMessage, ReadyMessage, ResourcesMessage, SnapshotMessage } from '../servers/harness.ts';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const READY_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 5_000;

export const hasTaskset: boolean = commandSucceeds('taskset', ['--version']);

/** Pinning is only meaningful with taskset and at least two cores. */
export const canPin: boolean = hasTaskset && availableParallelism() >= 2;

/** Pins every thread of this process to `cpu`. Returns false when it could not. */
export function pinThisProcess(cpu: number): boolean {
  if (!canPin) return false;
  return commandSucceeds('taskset', ['--all-tasks', '--cpu-list', '--pid', String(cpu), String(process.pid)]);
}

/** user + system CPU seconds this process has used so far. */
export function ownCpuSeconds(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
}

/** Kernel clock ticks per second, the unit of utime/stime in /proc/PID/stat. */
const CLOCK_TICKS = ((): number => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** utime + stime of a whole process (all threads) in seconds, or undefined off Linux. */
export function procCpuSeconds(pid: number): number | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // Fields after "(comm)": state is field 3, utime field 14, stime field 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return Number.isFinite(ticks) ? ticks / CLOCK_TICKS : undefined;
}

/** write-class syscalls (write, writev…) a process has made, from /proc/PID/io, or undefined off Linux. */
export function procWriteSyscalls(pid: number): number | undefined {
  try {
    const match = /^syscw:\s*(\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

export interface CoreTimes {
  /** Seconds since boot, per /proc/stat. */
  busy: number;
  idle: number;
  /** Interrupt time (irq + softirq): on loopback, the receive side of TCP mostly runs here, charged to no process. */
  interrupt: number;
}

/** Time accounting of one core from /proc/stat, or undefined off Linux. */
export function coreTimes(cpu: number): CoreTimes | undefined {
  let stat: string;
  try {
    stat = readFileSync('/proc/stat', 'utf8');
  } catch {
    return undefined;
  }
  const line = stat.split('\n').find((candidate) => candidate.startsWith(`cpu${cpu} `));
  if (!line) return undefined;
  // user nice system idle iowait irq softirq steal (guest time is already inside user/nice)
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = line.trim().split(/\s+/).slice(1).map(Number);
  return {
    busy: (user + nice + system + irq + softirq + steal) / CLOCK_TICKS,
    idle: (idle + iowait) / CLOCK_TICKS,
    interrupt: (irq + softirq) / CLOCK_TICKS,
  };
}

export interface ServerProcessOptions {
  /** For messages: "chorus", "naive-ws"… */
  name: string;
  /** A server script speaking the harness protocol (bench/servers/harness.ts). */
  script: string;
  /** Core to pin the server to (ignored without taskset); undefined: not pinned (several nodes sharing the cores). */
  cpu: number | undefined;
  /**
   * The program and its arguments before the script; default: this Node with `--expose-gc`
   * (so the harness can collect garbage before a memory reading) and tsx.
   */
  command?: readonly string[];
  /** Extra environment variables for the server. */
  env?: Record<string, string>;
}

/** Memory of a server process, in bytes. */
export interface ServerMemory {
  /** Resident set size from /proc/PID/status (the process's own report off Linux). */
  rss: number;
  /** JS heap in use, as the runtime reports it after a full GC. */
  heapUsed: number;
  /** Whether the runtime could collect garbage before the reading. */
  gc: boolean;
}

/** VmRSS of a process in bytes, or undefined off Linux. */
export function procRssBytes(pid: number): number | undefined {
  try {
    const match = /^VmRSS:\s*(\d+)\s*kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Open file descriptors of a process (entries of /proc/PID/fd), or undefined off Linux. */
export function procFdCount(pid: number): number | undefined {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return undefined;
  }
}

/** A server under test, running in its own process. */
export class ServerProcess {
  readonly name: string;
  readonly port: number;
  readonly pid: number;
  readonly pinned: boolean;
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #replies: Replies;
  readonly #exited: Promise<void>;

  private constructor(name: string, ready: ReadyMessage, pinned: boolean, child: ChildProcessWithoutNullStreams, replies: Replies, exited: Promise<void>) {
    this.name = name;
    this.port = ready.port;
    this.pid = ready.pid;
    this.pinned = pinned;
    this.#child = child;
    this.#replies = replies;
    this.#exited = exited;
  }

  /** Spawns `node --expose-gc --import tsx <script>` (or `command`), under `taskset -c <cpu>` when possible, and waits for its ready line. */
  static start(options: ServerProcessOptions): Promise<ServerProcess> {
    const [program = process.execPath, ...args] = options.command ?? [process.execPath, '--expose-gc', '--import', 'tsx'];
    const argv = [...args, options.script];
    const spawnOptions = { cwd: REPO_ROOT, env: { ...process.env, ...options.env } };
    const pin = canPin && options.cpu !== undefined;
    const child = pin ? spawn('taskset', ['--cpu-list', String(options.cpu), program, ...argv], spawnOptions) : spawn(program, argv, spawnOptions);
    child.stderr.on('data', (chunk: Buffer) => process.stderr.write(`[${options.name}] ${chunk.toString()}`));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const replies: Replies = { cpu: [], mem: [], resources: [], snapshot: [] };

    return new Promise((resolve, reject) => {
      let server: ServerProcess | undefined;
      const timer = setTimeout(() => fail(new Error(`${options.name}: no ready line within ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
      const fail = (error: Error): void => {
        clearTimeout(timer);
        child.kill('SIGKILL');
        reject(error);
      };
      child.once('error', fail);
      child.once('exit', (code, signal) => {
        if (!server) fail(new Error(`${options.name} exited before it was ready (code ${code}, signal ${signal})`));
      });
      createInterface({ input: child.stdout }).on('line', (line) => {
        let message: unknown;
        try {
          message = JSON.parse(line);
        } catch {
          process.stdout.write(`[${options.name}] ${line}\n`);
          return;
        }
        if (!server && isReady(message)) {
          clearTimeout(timer);
          server = new ServerProcess(options.name, message, pin, child, replies, exited);
          resolve(server);
        } else if (isCpu(message)) {
          replies.cpu.shift()?.(message);
        } else if (isMem(message)) {
          replies.mem.shift()?.(message);
        } else if (isObjectWith(message, 'resources')) {
          replies.resources.shift()?.(message as ResourcesMessage);
        } else if (isObjectWith(message, 'snapshot')) {
          replies.snapshot.shift()?.(message as SnapshotMessage);
        }
      });
    });
  }

  /** CPU seconds (user + system, all threads) the server has used so far. */
  async cpuSeconds(): Promise<number> {
    const fromProc = procCpuSeconds(this.pid);
    if (fromProc !== undefined) return fromProc;
    // Not Linux: ask the server itself (slightly late when it is saturated, but close enough).
    const reply = await new Promise<CpuMessage>((resolve) => {
      this.#replies.cpu.push(resolve);
      this.#child.stdin.write('cpu\n');
    });
    return reply.cpu.user + reply.cpu.system;
  }

  /** Asks the server to collect garbage (twice), then reads its memory. */
  async memory(): Promise<ServerMemory> {
    const reply = await new Promise<MemMessage>((resolve) => {
      this.#replies.mem.push(resolve);
      this.#child.stdin.write('mem\n');
    });
    return { rss: procRssBytes(this.pid) ?? reply.mem.rss, heapUsed: reply.mem.heapUsed, gc: reply.mem.gc };
  }

  /** After two full GCs: memory, live handles by type and timers (harness `resources`). */
  async resources(): Promise<ResourcesMessage['resources']> {
    const reply = await new Promise<ResourcesMessage>((resolve) => {
      this.#replies.resources.push(resolve);
      this.#child.stdin.write('resources\n');
    });
    return { ...reply.resources, rss: procRssBytes(this.pid) ?? reply.resources.rss };
  }

  /** Writes a V8 heap snapshot of the server to `path` (harness `snapshot`); resolves with the file written. */
  async heapSnapshot(path: string): Promise<string> {
    const reply = await new Promise<SnapshotMessage>((resolve) => {
      this.#replies.snapshot.push(resolve);
      this.#child.stdin.write(`snapshot ${path}\n`);
    });
    return reply.snapshot;
  }

  /** Open file descriptors right now (undefined off Linux). */
  fdCount(): number | undefined {
    return procFdCount(this.pid);
  }

  /** Resident set size right now, without a GC (undefined off Linux). */
  rss(): number | undefined {
    return procRssBytes(this.pid);
  }

  /** write syscalls the server has made so far (Linux only): shows how well it coalesces writes. */
  writeSyscalls(): number | undefined {
    return procWriteSyscalls(this.pid);
  }

  /** Stops the server (closing its stdin is the polite request; SIGKILL if it does not go). */
  async stop(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    this.#child.stdin.end();
    this.#child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, STOP_TIMEOUT_MS)));
    await Promise.race([this.#exited, timeout]);
    clearTimeout(timer);
    if (this.#child.exitCode === null && this.#child.signalCode === null) {
      this.#child.kill('SIGKILL');
      await this.#exited;
    }
  }
}

function isReady(message: unknown): message is ReadyMessage {
  return typeof message === 'object' && message !== null && (message as Partial<ReadyMessage>).ready === true;
}

interface Replies {
  cpu: ((message: CpuMessage) => void)[];
  mem: ((message: MemMessage) => void)[];
  resources: ((message: ResourcesMessage) => void)[];
  snapshot: ((message: SnapshotMessage) => void)[];
}

function isObjectWith(message: unknown, key: string): boolean {
  return typeof message === 'object' && message !== null && key in message;
}

function isMem(message: unknown): message is MemMessage {
  return typeof message === 'object' && message !== null && typeof (message as Partial<MemMessage>).mem === 'object';
}

function isCpu(message: unknown): message is CpuMessage {
  return typeof message === 'object' && message !== null && typeof (message as Partial<CpuMessage>).cpu === 'object';
}

function commandSucceeds(command: string, args: string[]): boolean {
  try {
    execFileSync(command, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
