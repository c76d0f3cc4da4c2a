/**
 * Test helpers for the client SDK: real Chorus servers (from the server's test helpers), a TCP
 * proxy that can cut, refuse, freeze or half-blackhole connections the way networks do, and a
 * recorder of client events. Every wait has a deadline so a broken behaviour fails, not hangs.
 */
import { createServer, type Server, type Socket, connect as netConnect } from 'node:net';
import WebSocket from 'ws';
import { createClient, type ChorusClient, type ClientOptions } from '../src/index.ts';
import { TEST_APP } from '../../server/test/helpers.ts';

export { Recorder, eventually, promiseState, settle, type RecordedEvent } from './events.ts';

export { OTHER_APP, TEST_APP, startTestServer, withTimeout } from '../../server/test/helpers.ts';
export { channelToken, connectionToken } from '../../server/test/v1-helpers.ts';

interface Pair {
  readonly downstream: Socket;
  readonly upstream: Socket;
  frozen: boolean;
  /** Server→client chunks held back by latencyMs, in order, each with when it is due. */
  readonly delayed: Array<{ readonly chunk: Buffer; readonly at: number }>;
}

/**
 * A TCP proxy in front of a server. `cut()` resets every connection (the client sees 1006 with no
 * close frame), `refusing` drops new connections at once, `hanging` accepts them and never answers,
 * `freeze()` silently stops forwarding on the current connections (a dead link), `dropReplies`
 * loses server→client bytes in transit. For faults between a server and its Redis: `latencyMs`
 * delays every server→client chunk (replies, pub/sub messages; like toxiproxy's downstream
 * latency, so a round trip takes that much longer), and `partition()` stops forwarding in both
 * directions without closing anything, as a network partition does (TCP buffers the bytes; new
 * connections are accepted and stay silent too) until `heal()` lets everything through again.
 */
export class TcpProxy {
  readonly #server: Server;
  readonly #pairs = new Set<Pair>();
  targetPort: number;
  refusing = false;
  /** New connections are accepted and then left hanging: no upstream, no bytes back. */
  hanging = false;
  dropReplies = false;
  latencyMs = 0;
  #partitioned = false;
  readonly #hung = new Set<Socket>();
  /** Connections accepted so far (refused ones included). */
  accepted = 0;

  private constructor(targetPort: number) {
    this.targetPort = targetPort;
    this.#server = createServer((downstream) => this.#accept(downstream));
  }

  static async start(targetPort: number): Promise<TcpProxy> {
    const proxy = new TcpProxy(targetPort);
    await new Promise<void>((resolve) => proxy.#server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get port(): number {
    const address = this.#server.address();
    if (address === null || typeof address === 'string') throw new Error('proxy not listening');
    return address.port;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}`;
  }

  get openConnections(): number {
    return this.#pairs.size;
  }

  /** Resets every current connection, both sides. */
  cut(): void {
    for (const pair of this.#pairs) {
      pair.downstream.resetAndDestroy();
      pair.upstream.destroy();
    }
    this.#pairs.clear();
    for (const socket of this.#hung) socket.resetAndDestroy();
    this.#hung.clear();
  }

  /** Stops forwarding both ways, on current and new connections, without closing any. */
  partition(): void {
    this.#partitioned = true;
    for (const pair of this.#pairs) pause(pair);
  }

  /** Ends a partition: what was held back flows on. */
  heal(): void {
    this.#partitioned = false;
    for (const pair of this.#pairs) {
      pair.downstream.resume();
      pair.upstream.resume();
    }
  }

  /** Stops forwarding anything on the current connections, without closing them. */
  freeze(): void {
    for (const pair of this.#pairs) pair.frozen = true;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #accept(downstream: Socket): void {
    this.accepted++;
    downstream.on('error', () => undefined);
    if (this.refusing) {
      downstream.resetAndDestroy();
      return;
    }
    if (this.hanging) {
      this.#hung.add(downstream);
      downstream.on('close', () => this.#hung.delete(downstream));
      return;
    }
    const upstream = netConnect(this.targetPort, '127.0.0.1');
    upstream.on('error', () => undefined);
    const pair: Pair = { downstream, upstream, frozen: false, delayed: [] };
    this.#pairs.add(pair);
    downstream.on('data', (chunk) => {
      if (!pair.frozen) upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (pair.frozen || this.dropReplies) return;
      if (this.latencyMs <= 0 && pair.delayed.length === 0) return void downstream.write(chunk);
      pair.delayed.push({ chunk, at: Date.now() + this.latencyMs });
      if (pair.delayed.length === 1) setTimeout(() => releaseDue(pair), this.latencyMs);
    });
    if (this.#partitioned) pause(pair);
    const end = (): void => {
      if (!this.#pairs.delete(pair)) return;
      downstream.destroy();
      upstream.destroy();
    };
    downstream.on('close', end);
    upstream.on('close', end);
  }
}

/** Writes the delayed chunks that are due, in order, and waits for the next one. */
function releaseDue(pair: Pair): void {
  while (pair.delayed.length > 0 && (pair.delayed[0]?.at ?? 0) <= Date.now()) pair.downstream.write(pair.delayed.shift()?.chunk ?? Buffer.alloc(0));
  const next = pair.delayed[0];
  if (next) setTimeout(() => releaseDue(pair), Math.max(0, next.at - Date.now()));
}

function pause(pair: Pair): void {
  pair.downstream.pause();
  pair.upstream.pause();
}

const clients = new Set<ChorusClient>();

/** A client with `ws`, the test app's key and short backoff; closed by closeClients(). */
export function testClient(url: string, options: Partial<ClientOptions> = {}): ChorusClient {
  const client = createClient(url, { key: TEST_APP.key, WebSocket, minDelayMs: 20, maxDelayMs: 200, ...options });
  clients.add(client);
  return client;
}

export function closeClients(): void {
  for (const client of clients) client.close();
  clients.clear();
}

export function serverUrl(server: { port: number }): string {
  return `ws://127.0.0.1:${server.port}`;
}
