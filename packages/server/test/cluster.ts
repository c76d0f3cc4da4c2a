/**
 * Cluster test helpers: Chorus nodes as real processes (`chorus serve` with the Redis engine)
 * and a tiny TCP load balancer that sends each new connection to the next live node.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChorusConfigInput } from '../src/index.ts';
import { TEST_APP, withTimeout } from './helpers.ts';

const CHORUS_BIN = fileURLToPath(new URL('../../../node_modules/.bin/chorus', import.meta.url));
const configDir = mkdtempSync(join(tmpdir(), 'chorus-cluster-'));
let configCount = 0;

export class Node {
  readonly child: ChildProcess;
  port = 0;
  #output = '';

  private constructor(child: ChildProcess) {
    this.child = child;
    child.stdout?.on('data', (d: Buffer) => (this.#output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (this.#output += d.toString()));
  }

  /** Starts `chorus serve` with the Redis engine at `redisUrl` and waits for its banner. */
  static async start(redisUrl: string, overrides: ChorusConfigInput = {}): Promise<Node> {
    const config: ChorusConfigInput = {
      port: 0,
      host: '127.0.0.1',
      logLevel: 'info',
      apps: [{ ...TEST_APP, limits: { messagesPerSecond: 0, maxConnectionsPerIp: 10_000 } }],
      engine: { type: 'redis', url: redisUrl, probeIntervalMs: 300, presenceTtlMs: 2000 },
      ...overrides,
    };
    const file = join(configDir, `node-${++configCount}.json`);
    writeFileSync(file, JSON.stringify(config));
    const node = new Node(spawn(CHORUS_BIN, ['serve', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] }));
    node.port = await withTimeout(
      new Promise<number>((resolve, reject) => {
        const check = (): void => {
          const match = /Chorus is running on http:\/\/localhost:(\d+)/.exec(node.#output);
          if (match) resolve(Number(match[1]));
        };
        node.child.stdout?.on('data', check);
        node.child.once('exit', (code) => reject(new Error(`node exited with ${code}: ${node.#output}`)));
      }),
      15_000,
      'node did not start',
    );
    return node;
  }

  /** Everything the node printed (JSON log lines and the banner). */
  get output(): string {
    return this.#output;
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill(signal);
    await exited;
  }
}

/**
 * Round-robin TCP balancer over node ports; a node that refuses is skipped. With
 * `healthCheckMs`, it also polls each node's /health like HAProxy's `option httpchk` and sends
 * new connections only to nodes that answer 200 (a draining node answers 503), while any are up;
 * `healthPath: '/ready'` also passes over a node that cannot reach Redis.
 */
export class Balancer {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  backends: number[];
  #next = 0;
  /** Ports whose last health check failed. */
  readonly #unhealthy = new Set<number>();
  #healthTimer: NodeJS.Timeout | undefined;

  private constructor(backends: number[]) {
    this.backends = backends;
    this.#server = createServer((client) => this.#route(client, 0));
  }

  static async start(backends: number[], options: { healthCheckMs?: number; healthPath?: string } = {}): Promise<Balancer> {
    const balancer = new Balancer(backends);
    await new Promise<void>((resolve) => balancer.#server.listen(0, '127.0.0.1', resolve));
    if (options.healthCheckMs !== undefined) balancer.#healthTimer = setInterval(() => void balancer.#checkHealth(options.healthPath ?? '/health'), options.healthCheckMs);
    return balancer;
  }

  async #checkHealth(path: string): Promise<void> {
    await Promise.all(this.backends.map(async (port) => {
      const healthy = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(1000) }).then(
        (res) => (void res.body?.cancel(), res.ok),
        () => false,
      );
      if (healthy) this.#unhealthy.delete(port);
      else this.#unhealthy.add(port);
    }));
  }

  /** The next backend in turn, passing over unhealthy ones unless every one is. */
  #pick(): number {
    for (let i = 0; i < this.backends.length; i++) {
      const port = this.backends[this.#next++ % this.backends.length] as number;
      if (!this.#unhealthy.has(port)) return port;
    }
    return this.backends[this.#next++ % this.backends.length] as number;
  }

  get port(): number {
    const address = this.#server.address();
    return typeof address === 'object' && address ? address.port : 0;
  }

  #route(client: Socket, tries: number): void {
    if (tries >= this.backends.length) return void client.destroy();
    const port = this.#pick();
    const upstream = createConnection({ port, host: '127.0.0.1' });
    let connected = false;
    upstream.once('error', () => {
      if (!connected) this.#route(client, tries + 1);
    });
    upstream.once('connect', () => {
      connected = true;
      this.#sockets.add(client).add(upstream);
      client.pipe(upstream).pipe(client);
      const done = (): void => {
        client.destroy();
        upstream.destroy();
        this.#sockets.delete(client);
        this.#sockets.delete(upstream);
      };
      client.once('close', done).once('error', done);
      upstream.once('close', done).once('error', done);
    });
  }

  async close(): Promise<void> {
    clearInterval(this.#healthTimer);
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
