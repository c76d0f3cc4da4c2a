/**
 * A real HTTP webhook receiver for tests: records every request (headers, raw body), checks each
 * with the `pusher` SDK's own webhook validation, and can be told to fail or to go away.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import PusherServer from 'pusher';
import { withTimeout } from './helpers.ts';

export interface ReceivedHook {
  readonly headers: IncomingHttpHeaders;
  readonly rawBody: string;
  readonly events: Array<Record<string, unknown> & { name: string; channel: string }>;
  readonly timeMs: number;
}

export class WebhookReceiver {
  /** Requests answered 2xx, in arrival order. */
  readonly accepted: ReceivedHook[] = [];
  /** Requests answered with a failure status. */
  refused = 0;
  /** Answer the next this many requests with 503. */
  failNext = 0;
  #server: Server;
  #port = 0;

  private constructor() {
    this.#server = this.#create();
  }

  static async start(): Promise<WebhookReceiver> {
    const receiver = new WebhookReceiver();
    await receiver.#listen(0);
    return receiver;
  }

  get url(): string {
    return `http://127.0.0.1:${this.#port}/hooks`;
  }

  /** Every event received, in order. */
  get events(): ReceivedHook['events'] {
    return this.accepted.flatMap((hook) => hook.events);
  }

  /** The events of one kind and channel, in order. */
  named(name: string, channel?: string): ReceivedHook['events'] {
    return this.events.filter((e) => e.name === name && (channel === undefined || e.channel === channel));
  }

  /** True when the `pusher` SDK accepts every request's key and signature for this app. */
  allValidFor(app: { id: string; key: string; secret: string }): boolean {
    const sdk = new PusherServer({ appId: app.id, key: app.key, secret: app.secret, host: '127.0.0.1' });
    return this.accepted.every((hook) => sdk.webhook({ headers: hook.headers, rawBody: hook.rawBody }).isValid());
  }

  async until(predicate: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; received ${JSON.stringify(this.events)}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** Stops listening (an outage: connections are refused) until `resume()`. */
  async pause(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  /** Listens again on the same port. */
  async resume(): Promise<void> {
    this.#server = this.#create();
    await this.#listen(this.#port);
  }

  async stop(): Promise<void> {
    if (!this.#server.listening) return;
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #create(): Server {
    return createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        if (this.failNext > 0) {
          this.failNext--;
          this.refused++;
          res.writeHead(503).end();
          return;
        }
        const rawBody = Buffer.concat(chunks).toString('utf8');
        const body = JSON.parse(rawBody) as { time_ms: number; events: ReceivedHook['events'] };
        this.accepted.push({ headers: req.headers, rawBody, events: body.events, timeMs: body.time_ms });
        res.writeHead(200).end('{}');
      });
    });
  }

  async #listen(port: number): Promise<void> {
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        this.#server.once('error', reject);
        this.#server.listen(port, '127.0.0.1', () => resolve());
      }),
      3000,
      'the webhook receiver did not listen',
    );
    this.#port = (this.#server.address() as AddressInfo).port;
  }
}
