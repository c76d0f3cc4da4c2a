/**
 * A real redis-server for tests, started on a free loopback port with persistence off (a
 * restart loses everything, like a crash of a cache-only Redis). `npm test` provisions the
 * redis-server package (scripts/provision.mjs).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { withTimeout } from './helpers.ts';

export class TestRedis {
  readonly port: number;
  #process: ChildProcess | undefined;

  private constructor(port: number) {
    this.port = port;
  }

  /** Starts on `port`, or on a free one. */
  static async start(port?: number): Promise<TestRedis> {
    const redis = new TestRedis(port ?? (await freePort()));
    await redis.#spawn();
    return redis;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** A plain client for the test's own commands (CLIENT KILL, FLUSHALL…). */
  client(): Redis {
    return new Redis(this.url, { maxRetriesPerRequest: 1, lazyConnect: false });
  }

  async stop(): Promise<void> {
    const child = this.#process;
    this.#process = undefined;
    // Already gone (exited, or killed by a signal): its 'exit' has been emitted and will not come again.
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  /** Stops and starts again on the same port: every key is gone (no persistence). */
  async restart(): Promise<void> {
    await this.stop();
    await this.#spawn();
  }

  async #spawn(): Promise<void> {
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no'];
    await startRedisServer(args, /Ready to accept connections/, (child) => (this.#process = child));
  }
}

const processes: ChildProcess[] = [];

/** Kills what redisProcess started (their pipes keep a test file's process alive). */
export function killRedisProcesses(): void {
  for (const child of processes) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

/**
 * Starts redis-server with `args` (a replica, a sentinel…), resolving once its output matches
 * `ready`. Call killRedisProcesses() after the test.
 */
export async function redisProcess(args: string[], ready: RegExp): Promise<ChildProcess> {
  return startRedisServer(args, ready, (child) => processes.push(child));
}

/**
 * Spawns redis-server with `args` and resolves once its output matches `ready` (within 10 s);
 * `spawned` sees the process at once, so a caller can kill it even if it never gets ready.
 */
export async function startRedisServer(args: string[], ready: RegExp, spawned?: (child: ChildProcess) => void): Promise<ChildProcess> {
  const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  spawned?.(child);
  let output = '';
  await withTimeout(
    new Promise<void>((resolve, reject) => {
      child.stdout?.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        if (ready.test(output)) resolve();
      });
      child.once('error', reject);
      child.once('exit', (code) => reject(new Error(`redis-server ${args.join(' ')} exited with ${code}: ${output}`)));
    }),
    10_000,
    `redis-server ${args.join(' ')} did not start`,
  );
  return child;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
