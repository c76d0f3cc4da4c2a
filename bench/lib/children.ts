/**
 * Child processes of the multi-process benchmarks (bench:cluster, bench:soak, bench:scale) that
 * do not speak the server harness protocol: a redis-server started on a free port, and
 * `chorus serve` nodes; each waited for until a line of its output says it is ready.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { BENCH_HOST } from './config.ts';
import { procCpuSeconds } from './process.ts';

const START_TIMEOUT_MS = 15_000;

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, BENCH_HOST, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** A child process started and waited for until `ready` matches its stdout. */
export class Child {
  readonly name: string;
  readonly process: ChildProcess;
  output = '';

  constructor(name: string, command: string, args: string[]) {
    this.name = name;
    this.process = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.process.stdout?.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    this.process.stderr?.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
  }

  get pid(): number {
    return this.process.pid ?? -1;
  }

  /** Resolves with the first match of `ready` in stdout+stderr. */
  waitFor(ready: RegExp): Promise<RegExpExecArray> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error(`${this.name} did not start within ${START_TIMEOUT_MS} ms: ${this.output}`)), START_TIMEOUT_MS);
      const check = (): void => {
        const match = ready.exec(this.output);
        if (!match) return;
        cleanup();
        resolve(match);
      };
      const onExit = (code: number | null): void => fail(new Error(`${this.name} exited with ${code}: ${this.output}`));
      const fail = (error: Error): void => {
        cleanup();
        reject(error);
      };
      const cleanup = (): void => {
        clearTimeout(timer);
        this.process.stdout?.off('data', check);
        this.process.off('exit', onExit);
      };
      this.process.stdout?.on('data', check);
      this.process.once('exit', onExit);
      check();
    });
  }

  cpuSeconds(): number {
    return procCpuSeconds(this.pid) ?? NaN;
  }

  async stop(): Promise<void> {
    const child = this.process;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  }
}

export async function startRedis(): Promise<{ child: Child; url: string }> {
  const port = await freePort();
  const child = new Child('redis-server', 'redis-server', ['--port', String(port), '--bind', BENCH_HOST, '--save', '', '--appendonly', 'no', '--protected-mode', 'no']);
  await child.waitFor(/Ready to accept connections/);
  return { child, url: `redis://${BENCH_HOST}:${port}` };
}
