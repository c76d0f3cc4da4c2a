/**
 * SDK behaviour the real server cannot be made to show on demand (duplicate or replayed pushes,
 * a given retryAfterMs, unanswered commands), against a scripted in-memory WebSocket. Its send()
 * throws like a browser's does outside the OPEN state, so a premature send fails the test.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { ChorusError, backoffCeiling, backoffDelay, createClient, type ChorusClient, type ClientOptions, type Publication, type ReconnectingEvent } from '../src/index.ts';
import { Recorder, eventually, promiseState, settle } from './events.ts';

type Listener = (event: never) => void;

class ScriptedSocket {
  static instances: ScriptedSocket[] = [];
  readyState = 0;
  readonly sent: Array<Record<string, unknown>> = [];
  readonly #listeners = new Map<string, Listener[]>();

  constructor(readonly url: string) {
    ScriptedSocket.instances.push(this);
  }

  static get last(): ScriptedSocket {
    const socket = ScriptedSocket.instances.at(-1);
    if (!socket) throw new Error('no socket yet');
    return socket;
  }

  addEventListener(type: string, listener: Listener): void {
    this.#listeners.set(type, [...(this.#listeners.get(type) ?? []), listener]);
  }

  send(data: string): void {
    if (this.readyState !== 1) throw new Error(`Failed to execute 'send' on 'WebSocket': Still in ${this.readyState === 0 ? 'CONNECTING' : 'CLOSING'} state.`);
    this.sent.push(JSON.parse(data) as Record<string, unknown>);
  }

  close(): void {
    if (this.readyState >= 2) return;
    this.readyState = 2;
    setTimeout(() => this.serverClose(1005, ''), 1);
  }

  // ---- the scripted server side ----

  open(): void {
    this.readyState = 1;
    this.#emit('open', {});
  }

  push(frame: Record<string, unknown>): void {
    this.#emit('message', { data: JSON.stringify(frame) });
  }

  serverClose(code: number, reason = ''): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.#emit('close', { code, reason });
  }

  /** Sent commands of a type. */
  commands(type?: string): Array<Record<string, unknown>> {
    return this.sent.filter((frame) => type === undefined || frame['type'] === type);
  }

  reply(command: Record<string, unknown> | undefined, result: unknown = {}): void {
    if (!command) throw new Error('no such command');
    this.push({ id: command['id'], ok: true, result });
  }

  refuse(command: Record<string, unknown> | undefined, code: number, name: string): void {
    if (!command) throw new Error('no such command');
    this.push({ id: command['id'], ok: false, error: { code, name, message: `refused: ${name}` } });
  }

  /** Opens and acknowledges the connect. */
  accept(result: Record<string, unknown> = { client: 'c1', user: '', pingIntervalMs: 25_000 }): void {
    this.open();
    this.reply(this.commands('connect')[0], result);
  }

  #emit(type: string, event: unknown): void {
    for (const listener of this.#listeners.get(type) ?? []) (listener as (e: unknown) => void)(event);
  }
}

const clients: ChorusClient[] = [];

function scriptedClient(options: Partial<ClientOptions> = {}): ChorusClient {
  const client = createClient('ws://scripted.test', { key: 'k', WebSocket: ScriptedSocket, minDelayMs: 5, maxDelayMs: 20, ...options });
  clients.push(client);
  return client;
}

/** The newest socket, once the client created it (sockets are created asynchronously). */
async function nextSocket(count: number): Promise<ScriptedSocket> {
  await eventually(() => ScriptedSocket.instances.length >= count, `socket #${count}`);
  return ScriptedSocket.last;
}

/** The n-th command of a type on a socket, once sent (subscribes go out after a microtask). */
async function sentCommand(socket: ScriptedSocket, type: string, index = 0): Promise<Record<string, unknown>> {
  await eventually(() => socket.commands(type).length > index, `${type} #${index + 1}`);
  return socket.commands(type)[index] ?? {};
}

afterEach(() => {
  for (const client of clients.splice(0)) client.close();
  ScriptedSocket.instances = [];
});

describe('sending', () => {
  it('nothing but connect is sent before the connect is acknowledged; queued commands follow in order', async () => {
    const client = scriptedClient();
    const channel = client.channel('c');
    const first = channel.publish('e', 1);
    const history = channel.history({ limit: 5 });
    const second = channel.publish('e', 2);
    const socket = await nextSocket(1);
    assert.equal(socket.url, 'ws://scripted.test/v1/connect?key=k');
    assert.equal(socket.sent.length, 0, 'nothing while CONNECTING');
    socket.open();
    assert.deepEqual([...socket.sent], [{ id: 1, type: 'connect', client: 'chorus-js/0.1.0' }]);
    await settle(10);
    assert.equal(socket.sent.length, 1, 'nothing else before the connect reply');
    socket.reply(socket.commands('connect')[0], { client: 'c1', user: '', pingIntervalMs: 25_000 });
    assert.deepEqual(
      socket.sent.slice(1).map((f) => [f['id'], f['type'], f['data'] ?? f['limit']]),
      [
        [2, 'publish', 1],
        [3, 'history', 5],
        [4, 'publish', 2],
      ],
    );
    const [a, b] = socket.commands('publish');
    assert.match(String(a?.['msgId']), /^[0-9a-z]{16}-1$/);
    assert.match(String(b?.['msgId']), /^[0-9a-z]{16}-2$/);
    socket.reply(a, { offset: 1, epoch: 'E' });
    socket.reply(b, { offset: 2, epoch: 'E' });
    socket.reply(socket.commands('history')[0], { epoch: 'E', offset: 2, publications: [] });
    assert.deepEqual(await first, { offset: 1, epoch: 'E' });
    assert.deepEqual(await second, { offset: 2, epoch: 'E' });
    assert.deepEqual(await history, { epoch: 'E', offset: 2, publications: [] });
  });

  it('in-flight publishes go back to the front of the queue in order and are re-sent with the same msgId; reads are re-sent too', async () => {
    const client = scriptedClient();
    const channel = client.channel('c');
    let socket = await nextSocket(1);
    socket.accept();
    const a = channel.publish('e', 'a');
    const b = channel.publish('e', 'b');
    const presence = channel.presence();
    const sentFirst = socket.commands('publish').map((f) => f['msgId']);
    socket.serverClose(1006);
    const c = channel.publish('e', 'c');
    socket = await nextSocket(2);
    socket.accept();
    assert.deepEqual(
      socket.sent.slice(1).map((f) => [f['type'], f['data']]),
      [
        ['publish', 'a'],
        ['publish', 'b'],
        ['presence', undefined],
        ['publish', 'c'],
      ],
    );
    assert.deepEqual(socket.commands('publish').slice(0, 2).map((f) => f['msgId']), sentFirst);
    for (const [i, command] of socket.commands('publish').entries()) socket.reply(command, { offset: i + 1, epoch: 'E' });
    socket.reply(socket.commands('presence')[0], { members: [] });
    assert.deepEqual((await Promise.all([a, b, c])).map((r) => r.offset), [1, 2, 3]);
    assert.deepEqual(await presence, { members: [] });
  });

  it('a close 1009 rejects the largest publish in flight with 109 and re-sends the others', async () => {
    const client = scriptedClient();
    const channel = client.channel('c');
    let socket = await nextSocket(1);
    socket.accept();
    const small = channel.publish('e', 'small');
    const big = channel.publish('e', 'x'.repeat(5000));
    socket.serverClose(1009);
    await assert.rejects(big, (error: unknown) => error instanceof ChorusError && error.code === 109);
    socket = await nextSocket(2);
    socket.accept();
    assert.deepEqual(socket.commands('publish').map((f) => f['data']), ['small']);
    socket.reply(socket.commands('publish')[0], { offset: 1, epoch: 'E' });
    assert.equal((await small).offset, 1);
  });

  it('a command without reply rejects with 202 after commandTimeoutMs; the connection stays', async () => {
    const client = scriptedClient({ commandTimeoutMs: 50 });
    const socket = await nextSocket(1);
    socket.accept();
    const publish = client.channel('c').publish('e', 1);
    await assert.rejects(publish, (error: unknown) => error instanceof ChorusError && error.code === 202 && /same msgId/.test(error.message));
    assert.equal(client.state, 'connected');
    socket.reply(socket.commands('publish')[0], { offset: 1, epoch: 'E' }); // a late reply is ignored
  });

  it('a disconnect push closes the door: nothing more is sent on that socket, and its retryAfterMs is the next delay', async () => {
    const client = scriptedClient();
    const recorder = new Recorder(client);
    const socket = await nextSocket(1);
    socket.accept();
    socket.push({ type: 'disconnect', code: 1001, reason: 'Server shutting down', reconnect: true, retryAfterMs: 1234 });
    const publish = client.channel('c').publish('e', 1);
    assert.equal(socket.commands('publish').length, 0);
    socket.serverClose(1001, 'Server shutting down');
    assert.deepEqual(recorder.all<ReconnectingEvent>('reconnecting'), [{ attempt: 1, delayMs: 1234 }]);
    assert.equal(await promiseState(publish), 'pending');
  });

  it('a disconnect push with reconnect false stops the client even on a non-terminal close code', async () => {
    const client = scriptedClient();
    const recorder = new Recorder(client);
    const socket = await nextSocket(1);
    socket.accept();
    socket.push({ type: 'disconnect', code: 4500, reason: 'go away', reconnect: false });
    socket.serverClose(4500, 'go away');
    assert.equal(client.state, 'closed');
    assert.equal(recorder.count('reconnecting'), 0);
  });
});

describe('listeners', () => {
  it('close() from a connecting listener stops the attempt before a socket is made', async () => {
    const client = scriptedClient();
    const recorder = new Recorder(client);
    client.on('connecting', () => client.close());
    await settle(30);
    assert.equal(client.state, 'closed');
    assert.equal(ScriptedSocket.instances.length, 0);
    assert.deepEqual(recorder.names(), ['connecting', 'disconnected', 'closed']);
  });
});

describe('dedupe and recovery', () => {
  it('drops publications at or before the last seen offset of the epoch, live and in the replay', async () => {
    const client = scriptedClient();
    const channel = client.channel('c');
    const delivered: Publication[] = [];
    channel.on('*', (_data, publication) => delivered.push(publication));
    const subscribing = channel.subscribe();
    let socket = await nextSocket(1);
    socket.accept();
    socket.reply(await sentCommand(socket, 'subscribe'), { channel: 'c', epoch: 'E', offset: 5 });
    await subscribing;
    const pub = (offset: number, epoch = 'E'): void => socket.push({ type: 'pub', channel: 'c', offset, epoch, event: 'e', data: offset, ts: 1 });
    pub(5); // at the subscribe position: already seen
    pub(6);
    pub(7);
    pub(6);
    pub(7);
    pub(8);
    assert.deepEqual(delivered.map((p) => p.offset), [6, 7, 8]);

    socket.serverClose(1006);
    socket = await nextSocket(2);
    socket.accept();
    const resubscribe = await sentCommand(socket, 'subscribe');
    assert.deepEqual(resubscribe?.['since'], { offset: 8, epoch: 'E' });
    socket.reply(resubscribe, { channel: 'c', epoch: 'E', offset: 10, recovered: true, replayed: 2 });
    pub(7);
    pub(8);
    pub(9);
    pub(10);
    pub(10);
    assert.deepEqual(delivered.map((p) => p.offset), [6, 7, 8, 9, 10]);
    pub(1, 'F'); // a new epoch starts over
    assert.deepEqual(delivered.map((p) => [p.offset, p.epoch]).at(-1), [1, 'F']);
  });

  it('recovered false: recovery-failed, then subscribed with recovered false; the position jumps to the new one', async () => {
    const client = scriptedClient();
    const channel = client.channel('c', { presence: true });
    const events: Array<[string, unknown]> = [];
    channel.on('recovery-failed', (event) => events.push(['recovery-failed', event]));
    channel.on('subscribed', (event) => events.push(['subscribed', event.recovered]));
    const subscribing = channel.subscribe();
    let socket = await nextSocket(1);
    socket.accept();
    assert.equal((await sentCommand(socket, 'subscribe'))['presence'], true);
    socket.reply(await sentCommand(socket, 'subscribe'), { channel: 'c', epoch: 'E', offset: 3 });
    await subscribing;
    socket.serverClose(1006);
    socket = await nextSocket(2);
    socket.accept();
    socket.reply(await sentCommand(socket, 'subscribe'), { channel: 'c', epoch: 'F', offset: 9, recovered: false, replayed: 0 });
    assert.deepEqual(events, [
      ['subscribed', undefined],
      ['recovery-failed', { since: { offset: 3, epoch: 'E' }, position: { offset: 9, epoch: 'F' } }],
      ['subscribed', false],
    ]);
    assert.deepEqual(channel.position, { offset: 9, epoch: 'F' });
  });

  it('publications named like channel events only reach * listeners', async () => {
    const client = scriptedClient();
    const channel = client.channel('c');
    const joins: unknown[] = [];
    const all: string[] = [];
    channel.on('join', (member) => joins.push(member));
    channel.on('*', (_data, publication) => all.push(publication.event));
    const subscribing = channel.subscribe();
    const socket = await nextSocket(1);
    socket.accept();
    socket.reply(await sentCommand(socket, 'subscribe'), { channel: 'c', epoch: 'E', offset: 0 });
    await subscribing;
    socket.push({ type: 'pub', channel: 'c', offset: 1, epoch: 'E', event: 'join', data: 'not a member', ts: 1 });
    socket.push({ type: 'join', channel: 'c', member: { user: 'bob', uuid: 'u2' } });
    assert.deepEqual(joins, [{ user: 'bob', uuid: 'u2' }]);
    assert.deepEqual(all, ['join']);
  });

  it('unsubscribe() while the subscribe is in flight rejects subscribe() with 203 and undoes it on the server at once', async () => {
    const client = scriptedClient();
    const channel = client.channel('c');
    const socket = await nextSocket(1);
    socket.accept();
    const subscribing = assert.rejects(channel.subscribe(), (error: unknown) => error instanceof ChorusError && error.code === 203);
    const subscribe = await sentCommand(socket, 'subscribe');
    const unsubscribing = channel.unsubscribe();
    await subscribing;
    assert.deepEqual(socket.commands('unsubscribe').map((f) => f['channel']), ['c'], 'pipelined behind the subscribe');
    socket.reply(subscribe, { channel: 'c', epoch: 'E', offset: 0 });
    assert.equal(channel.state, 'unsubscribed', 'the late subscribe reply is ignored');
    socket.reply(socket.commands('unsubscribe')[0]);
    await unsubscribing;

    // subscribe → unsubscribe → subscribe in a row: the server sees them in that order.
    const again = assert.rejects(channel.subscribe(), (error: unknown) => error instanceof ChorusError && error.code === 203);
    const resubscribe = await sentCommand(socket, 'subscribe', 1);
    void channel.unsubscribe();
    const last = channel.subscribe();
    const third = await sentCommand(socket, 'subscribe', 2);
    assert.deepEqual(socket.sent.slice(-3).map((f) => f['type']), ['subscribe', 'unsubscribe', 'subscribe']);
    socket.reply(resubscribe, { channel: 'c', epoch: 'E', offset: 0 });
    socket.reply(socket.commands('unsubscribe')[1]);
    socket.reply(third, { channel: 'c', epoch: 'E', offset: 0 });
    await again;
    assert.equal((await last).offset, 0);
    assert.equal(channel.state, 'subscribed');
  });

  it('a subscribe without reply rejects with 202 and is undone by an unsubscribe queued behind it', async () => {
    const client = scriptedClient({ commandTimeoutMs: 40 });
    const channel = client.channel('c');
    const socket = await nextSocket(1);
    socket.accept();
    await assert.rejects(channel.subscribe(), (error: unknown) => error instanceof ChorusError && error.code === 202);
    assert.equal(channel.state, 'unsubscribed');
    assert.deepEqual(socket.sent.slice(-2).map((f) => f['type']), ['subscribe', 'unsubscribe']);
  });
});

describe('backoff arithmetic', () => {
  it('ceilings double from 2·min up to max; delays stay within [min, ceiling]', () => {
    const options = { minDelayMs: 500, maxDelayMs: 20_000 };
    assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 50].map((n) => backoffCeiling(n, options)), [1000, 2000, 4000, 8000, 16_000, 20_000, 20_000, 20_000]);
    assert.equal(backoffDelay(3, options, () => 0), 500);
    assert.equal(backoffDelay(3, options, () => 0.5), 2250);
    for (let i = 0; i < 1000; i++) {
      const attempt = 1 + (i % 8);
      const delay = backoffDelay(attempt, options);
      assert.ok(delay >= 500 && delay <= backoffCeiling(attempt, options));
    }
  });
});
