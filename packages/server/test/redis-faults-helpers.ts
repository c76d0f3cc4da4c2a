/**
 * Helpers for the tests of faults between a node and Redis (redis-faults.test.ts,
 * cluster-sentinel.test.ts): REST and v1 SDK publishers that record every answer, and v1 SDK and
 * pusher-js subscribers that record what they receive, so a test can check that every
 * acknowledged publication arrived.
 */
import WebSocket from 'ws';
import { createClient, type ChorusClient } from '../../client/src/index.ts';
import { TEST_APP, settle } from './helpers.ts';
import { Pusher, type PusherClient } from './pusher-js.ts';

export const FAULTS_CHANNEL = 'faults';

/** One REST publish: its text (`A-12`), the answer's status (-1: no answer) and offset, and how long it took. */
export interface Sent {
  readonly text: string;
  readonly at: number;
  status: number;
  offset: number | undefined;
  ms: number;
}

/** Publishes `<name>-1`, `<name>-2`… through POST /api/publish, one at a time, until stopped. */
export class RestPublisher {
  readonly sent: Sent[] = [];
  readonly #done: Promise<void>;
  #running = true;

  constructor(name: string, port: number, pauseMs: number) {
    this.#done = (async () => {
      for (let n = 1; this.#running; n++) {
        const record: Sent = { text: `${name}-${n}`, at: Date.now(), status: 0, offset: undefined, ms: 0 };
        this.sent.push(record);
        try {
          const res = await fetch(`http://127.0.0.1:${port}/api/publish`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ key: TEST_APP.key, secret: TEST_APP.secret, channelId: FAULTS_CHANNEL, message: record.text }),
            signal: AbortSignal.timeout(15_000),
          });
          const body = (await res.json()) as { offset?: number };
          record.status = res.status;
          record.offset = body.offset;
        } catch {
          record.status = -1;
        }
        record.ms = Date.now() - record.at;
        await settle(pauseMs);
      }
    })();
  }

  /** Publishes started at or after `time` (Date.now()) and, if given, before `until`. */
  between(time: number, until = Infinity): Sent[] {
    return this.sent.filter((s) => s.at >= time && s.at < until);
  }

  get acked(): Sent[] {
    return this.sent.filter((s) => s.status === 200);
  }

  async stop(): Promise<void> {
    this.#running = false;
    await this.#done;
  }
}

/**
 * Publishes `<name>-1`, `<name>-2`… with the v1 SDK, one at a time, each until acknowledged:
 * a refused or unanswered publish is sent again with the same msgId, so one that did happen is
 * not stored twice. `acked` holds each acknowledged text with its offset.
 */
export class SdkPublisher {
  readonly acked: Array<{ readonly text: string; readonly offset: number; readonly epoch: string }> = [];
  refusals = 0;
  readonly #client: ChorusClient;
  readonly #done: Promise<void>;
  #running = true;

  constructor(name: string, port: number, channelName: string, pauseMs: number) {
    this.#client = createClient(`ws://127.0.0.1:${port}`, { key: TEST_APP.key, WebSocket, minDelayMs: 50, maxDelayMs: 500, commandTimeoutMs: 3000 });
    const channel = this.#client.channel(channelName);
    this.#done = (async () => {
      for (let n = 1; this.#running; n++) {
        const text = `${name}-${n}`;
        for (;;) {
          try {
            const { offset, epoch } = await channel.publish('n', text, { msgId: text });
            this.acked.push({ text, offset, epoch });
            break;
          } catch {
            this.refusals++;
            await settle(50);
          }
        }
        await settle(pauseMs);
      }
    })();
  }

  async stop(): Promise<void> {
    this.#running = false;
    await this.#done;
    this.#client.close();
  }
}

/** A v1 SDK subscriber of FAULTS_CHANNEL that records each publication, its disconnects and failed recoveries. */
export interface SdkSubscriber {
  readonly client: ChorusClient;
  readonly received: Array<{ readonly offset: number; readonly text: string; readonly at: number }>;
  readonly closeCodes: number[];
  recoveryFailures: number;
}

export async function sdkSubscriber(port: number, channelName = FAULTS_CHANNEL): Promise<SdkSubscriber> {
  const client = createClient(`ws://127.0.0.1:${port}`, { key: TEST_APP.key, WebSocket, minDelayMs: 100, maxDelayMs: 1000 });
  const sub: SdkSubscriber = { client, received: [], closeCodes: [], recoveryFailures: 0 };
  client.on('disconnected', (event) => sub.closeCodes.push(event.code));
  const channel = client.channel(channelName);
  channel.on('*', (data, publication) => sub.received.push({ offset: publication.offset, text: String(data), at: Date.now() }));
  channel.on('recovery-failed', () => sub.recoveryFailures++);
  await channel.subscribe();
  return sub;
}

/** Offsets that are not one more than the previous one (a gap or a repeat), as `previous→next`. */
export function breaks(sub: SdkSubscriber): string[] {
  const out: string[] = [];
  for (let i = 1; i < sub.received.length; i++) {
    const [prev, next] = [sub.received[i - 1]?.offset ?? 0, sub.received[i]?.offset ?? 0];
    if (next !== prev + 1) out.push(`${prev}→${next}`);
  }
  return out;
}

/** pusher-js subscribed to FAULTS_CHANNEL, recording the texts it receives and the close codes it was given. */
export interface PusherListener {
  readonly client: PusherClient;
  readonly texts: string[];
  readonly errorCodes: Array<number | null>;
}

export async function pusherListener(port: number, channelName = FAULTS_CHANNEL): Promise<PusherListener> {
  const client = new Pusher(TEST_APP.key, { cluster: 'local', wsHost: '127.0.0.1', wsPort: port, forceTLS: false, enabledTransports: ['ws'] });
  const listener: PusherListener = { client, texts: [], errorCodes: [] };
  client.connection.bind('error', (error: { data?: { code?: number | null } }) => listener.errorCodes.push(error.data?.code ?? null));
  const channel = client.subscribe(channelName);
  channel.bind_global((event: string, data: unknown) => {
    if (!event.startsWith('pusher')) listener.texts.push(String(data));
  });
  await new Promise((resolve) => channel.bind('pusher:subscription_succeeded', resolve));
  return listener;
}

/** Median of a list of numbers (0 when empty). */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

export async function waitFor(predicate: () => boolean | Promise<boolean>, what: string, timeoutMs: number): Promise<number> {
  const start = Date.now();
  while (!(await predicate())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await settle(25);
  }
  return Date.now() - start;
}
