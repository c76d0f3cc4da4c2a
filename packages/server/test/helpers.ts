/**
 * Test helpers: a real server on port 0 and real `ws` clients. Every wait has a deadline so a
 * broken behaviour fails the test instead of hanging it.
 */
import { once } from 'node:events';
import { after } from 'node:test';
import WebSocket from 'ws';
import { startServer, type ChorusServer, type ChorusConfigInput } from '../src/index.ts';

export const TEST_APP = { id: 'test', key: 'test-key-123', secret: 'test-secret-0123456789' } as const;
export const OTHER_APP = { id: 'other', key: 'other-key-123', secret: 'other-secret-0123456789' } as const;

export async function startTestServer(overrides: ChorusConfigInput = {}): Promise<ChorusServer> {
  return startServer({ port: 0, host: '127.0.0.1', logLevel: 'silent', apps: [{ ...TEST_APP }, { ...OTHER_APP }], ...overrides });
}

/** `ws://` or `wss://`, matching how the server is served. */
export function wsBase(server: ChorusServer): string {
  return `${server.scheme === 'https' ? 'wss' : 'ws'}://127.0.0.1:${server.port}`;
}

export function rawUrl(server: ChorusServer, channel: string, query = `api_key=${TEST_APP.key}`): string {
  return `${wsBase(server)}/v4/${channel}${query ? `?${query}` : ''}`;
}

export interface Received {
  data: Buffer;
  binary: boolean;
  text: string;
}

/** A `ws` client that records every frame, so tests can wait for the n-th one. */
export class TestClient {
  readonly ws: WebSocket;
  readonly received: Received[] = [];
  closeCode: number | undefined;
  closeReason: string | undefined;
  readonly #waiters = new Set<() => void>();

  constructor(url: string, options: WebSocket.ClientOptions = {}) {
    this.ws = new WebSocket(url, { perMessageDeflate: false, ...options });
    this.ws.on('message', (data: Buffer, binary: boolean) => {
      this.received.push({ data, binary, text: data.toString('utf8') });
      this.#notify();
    });
    this.ws.on('close', (code, reason) => {
      this.closeCode = code;
      this.closeReason = reason.toString();
      this.#notify();
    });
    this.ws.on('error', () => this.#notify());
  }

  static async open(url: string, options?: WebSocket.ClientOptions): Promise<TestClient> {
    const client = new TestClient(url, options);
    await client.opened();
    return client;
  }

  async opened(timeoutMs = 5000): Promise<void> {
    if (this.ws.readyState === WebSocket.OPEN) return;
    await withTimeout(once(this.ws, 'open'), timeoutMs, 'socket did not open');
  }

  /**
   * Resolves when `predicate` holds, re-checked after every frame or close; rejects at once if
   * the socket closes while the predicate still fails.
   */
  async until(predicate: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
    if (predicate()) return;
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        const check = (): void => {
          if (predicate()) {
            this.#waiters.delete(check);
            resolve();
          } else if (this.closeCode !== undefined) {
            this.#waiters.delete(check);
            reject(new Error(`socket closed (${this.closeCode} ${this.closeReason ?? ''}) while waiting for ${what}; received ${this.received.length} frames`));
          }
        };
        check();
        this.#waiters.add(check);
      }),
      timeoutMs,
      `timed out waiting for ${what}; received ${JSON.stringify(this.received.map((r) => (r.binary ? `<${r.data.length} bytes>` : r.text)))}`,
    );
  }

  async messages(count: number, timeoutMs = 5000): Promise<Received[]> {
    await this.until(() => this.received.length >= count, `${count} messages`, timeoutMs);
    return this.received.slice(0, count);
  }

  /** JSON frames whose `event` equals the given name. */
  events(name: string): Array<{ event: string; data: unknown }> {
    return this.received
      .filter((r) => !r.binary && r.text.startsWith('{'))
      .map((r) => JSON.parse(r.text) as { event: string; data: unknown })
      .filter((m) => m.event === name);
  }

  async closed(timeoutMs = 5000): Promise<{ code: number; reason: string }> {
    await this.until(() => this.closeCode !== undefined, 'close', timeoutMs);
    return { code: this.closeCode ?? 0, reason: this.closeReason ?? '' };
  }

  close(): void {
    this.ws.close();
  }

  #notify(): void {
    for (const waiter of [...this.#waiters]) waiter();
  }
}

export async function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(message)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Gives in-flight frames time to arrive, to assert that something did NOT arrive. */
export function settle(ms = 150): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * For test files that start many servers and clients: everything started through these is
 * closed in the file's `after` hook. Call once at the top level of the file.
 */
export function closeAfterwards(): {
  serverWith: (overrides?: ChorusConfigInput) => Promise<ChorusServer>;
  track: (client: TestClient) => TestClient;
} {
  const servers: ChorusServer[] = [];
  const clients: TestClient[] = [];
  after(async () => {
    for (const client of clients) client.ws.terminate();
    await Promise.all(servers.map((s) => s.close()));
  });
  return {
    serverWith: async (overrides = {}) => {
      const server = await startTestServer(overrides);
      servers.push(server);
      return server;
    },
    track: (client) => {
      clients.push(client);
      return client;
    },
  };
}
