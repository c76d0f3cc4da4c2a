/** Server-free test helpers: waiting with deadlines and recording client events. */
import type { ChorusClient, ClientEvents } from '../src/index.ts';

/** Polls `predicate` every few ms until it holds; rejects after `timeoutMs` with `what` and `detail()`. */
export async function eventually(predicate: () => boolean, what: string, timeoutMs = 5000, detail: () => unknown = () => ''): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} ${JSON.stringify(detail())}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Gives in-flight frames time to arrive, to assert that something did NOT happen. */
export function settle(ms = 150): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

type EventName = keyof ClientEvents;

export interface RecordedEvent {
  readonly name: EventName;
  readonly args: unknown[];
  readonly at: number;
}

/** Records every client event in order. */
export class Recorder {
  readonly events: RecordedEvent[] = [];

  constructor(client: ChorusClient) {
    for (const name of ['state', 'connecting', 'connected', 'disconnected', 'reconnecting', 'closed', 'error'] as const) {
      client.on(name, (...args: unknown[]) => this.events.push({ name, args, at: Date.now() }));
    }
  }

  /** Event names in order, without the `state` ones. */
  names(): string[] {
    return this.events.filter((e) => e.name !== 'state').map((e) => e.name);
  }

  all<T = unknown>(name: EventName): T[] {
    return this.events.filter((e) => e.name === name).map((e) => e.args[0] as T);
  }

  count(name: EventName): number {
    return this.events.filter((e) => e.name === name).length;
  }

  async until(name: EventName, count = 1, timeoutMs = 5000): Promise<void> {
    await eventually(() => this.count(name) >= count, `${count} "${name}" events`, timeoutMs, () => this.names());
  }

  clear(): void {
    this.events.length = 0;
  }
}

/** Promise state without waiting: 'pending' | 'fulfilled' | 'rejected'. */
export async function promiseState(promise: Promise<unknown>): Promise<'pending' | 'fulfilled' | 'rejected'> {
  const marker = Symbol('pending');
  try {
    const value = await Promise.race([promise, Promise.resolve(marker)]);
    return value === marker ? 'pending' : 'fulfilled';
  } catch {
    return 'rejected';
  }
}
