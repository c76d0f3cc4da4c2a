/**
 * The parent side of holder-process.ts: start a child that holds `count` idle connections to a
 * server, from a source address of its own, pinned to the generator's core.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { GENERATOR_CPU } from './config.ts';
import { canPin } from './process.ts';

export interface HolderConfig {
  /** Peer id (lib/peers.ts): decides the URL and the dialect. */
  peer: string;
  port: number;
  count: number;
  /** Source address, e.g. 127.0.0.2. */
  localAddress: string;
  /** Connections per channel, and the number of the first channel (channels are `idle-<n>`). */
  perChannel: number;
  firstChannel: number;
  /**
   * Several nodes (bench:scale): connection i of this holder is the cluster's connection
   * `firstConnection + i` and goes to ports[(firstConnection + i) % ports.length]; `port` is ignored.
   */
  ports?: number[];
  firstConnection?: number;
  /**
   * Chat traffic (bench:scale): channels are `chat-<n>`; every `publishEvery`-th connection of the
   * cluster publishes `perSecond` stamped messages of `size` bytes a second, and every connection
   * records publish→deliver latencies; timestamps count from `clockOrigin` (Date.now() of the
   * benchmark) so that they compare across processes.
   */
  chat?: { publishEvery: number; perSecond: number; size: number; clockOrigin: number };
}

/** A chat holder's counters since it started, and the latencies (µs) recorded since the last call. */
export interface ChatStats {
  delivered: number;
  published: number;
  latencies: number[];
}

const SCRIPT = fileURLToPath(new URL('./holder-process.ts', import.meta.url));
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const STOP_TIMEOUT_MS = 10_000;

/**
 * Starts a helper script (`node --import tsx <script> '<config JSON>'`) pinned to the generator's
 * core (unless `pinned` is false: bench:scale shares every core), with its stderr shown under `label`.
 */
export function spawnHelper(script: string, config: unknown, label: string, pinned = true): ChildProcessWithoutNullStreams {
  const args = ['--import', 'tsx', script, JSON.stringify(config)];
  const child = canPin && pinned ? spawn('taskset', ['--cpu-list', String(GENERATOR_CPU), process.execPath, ...args], { cwd: REPO_ROOT }) : spawn(process.execPath, args, { cwd: REPO_ROOT });
  child.stderr.on('data', (chunk: Buffer) => process.stderr.write(`[${label}] ${chunk.toString()}`));
  return child;
}

/** Hands out a fresh source address per holder (127.0.0.2 … 127.0.0.254), so ports left in TIME_WAIT by an earlier run never run out. */
let nextAddress = 2;
export function nextSourceAddress(): string {
  const address = `127.0.0.${nextAddress}`;
  nextAddress = nextAddress >= 254 ? 2 : nextAddress + 1;
  return address;
}

export class ConnectionHolder {
  readonly config: HolderConfig;
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #statusReplies: ((status: { open: number; closed: number }) => void)[] = [];
  readonly #chatReplies: ((stats: ChatStats) => void)[] = [];
  readonly #exited: Promise<void>;

  private constructor(config: HolderConfig, child: ChildProcessWithoutNullStreams, exited: Promise<void>) {
    this.config = config;
    this.#child = child;
    this.#exited = exited;
  }

  /** Starts a holder and waits until all its connections are open; `onProgress` gets the count while connecting. */
  static start(config: HolderConfig, onProgress?: (opened: number) => void, timeoutMs = 120_000, pinned = true): Promise<ConnectionHolder> {
    const child = spawnHelper(SCRIPT, config, `holder ${config.localAddress}`, pinned);
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const holder = new ConnectionHolder(config, child, exited);
    return new Promise((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => fail(new Error(`holder ${config.localAddress}: not ready within ${timeoutMs} ms`)), timeoutMs);
      const fail = (error: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        child.kill('SIGKILL');
        reject(error);
      };
      child.once('exit', (code) => fail(new Error(`holder ${config.localAddress} exited (code ${code})`)));
      createInterface({ input: child.stdout }).on('line', (line) => {
        let message: { progress?: number; ready?: boolean; error?: string; status?: { open: number; closed: number }; chat?: ChatStats };
        try {
          message = JSON.parse(line) as typeof message;
        } catch {
          return;
        }
        if (message.status) holder.#statusReplies.shift()?.(message.status);
        else if (message.chat) holder.#chatReplies.shift()?.(message.chat);
        else if (message.progress !== undefined) onProgress?.(message.progress);
        else if (message.error !== undefined) fail(new Error(`holder ${config.localAddress}: ${message.error}`));
        else if (message.ready && !settled) {
          settled = true;
          clearTimeout(timer);
          resolve(holder);
        }
      });
    });
  }

  /** Connections still open (and closed by the server) right now. */
  status(): Promise<{ open: number; closed: number }> {
    return new Promise((resolve) => {
      this.#statusReplies.push(resolve);
      this.#child.stdin.write('status\n');
    });
  }

  /** Chat holders: messages received and published so far, and the latencies since the last call. */
  chatStats(): Promise<ChatStats> {
    return new Promise((resolve) => {
      this.#chatReplies.push(resolve);
      this.#child.stdin.write('chat\n');
    });
  }

  /** Closes the holder's connections and waits for it to exit. */
  async stop(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    this.#child.stdin.end();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.#exited, new Promise<void>((resolve) => (timer = setTimeout(resolve, STOP_TIMEOUT_MS)))]);
    clearTimeout(timer);
    if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill('SIGKILL');
  }
}
