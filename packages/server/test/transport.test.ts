/** Heartbeats, message size, slow readers: what a production transport must do. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ChorusServer } from '../src/index.ts';
import { TEST_APP, TestClient, closeAfterwards, rawUrl, settle } from './helpers.ts';
import { V1Client } from './v1-helpers.ts';

const { serverWith, track } = closeAfterwards();

async function open(server: ChorusServer, channel: string, options?: ConstructorParameters<typeof TestClient>[1], query = ''): Promise<TestClient> {
  return track(await TestClient.open(rawUrl(server, channel, `api_key=${TEST_APP.key}${query ? `&${query}` : ''}`), options));
}

async function connectionCount(server: ChorusServer): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${server.port}/health`);
  return ((await res.json()) as { connections: number }).connections;
}

describe('heartbeat', () => {
  it('terminates a peer that stops answering pings and keeps one that answers', async () => {
    const server = await serverWith({ heartbeatIntervalMs: 100 });
    const dead = await open(server, 'hb', { autoPong: false });
    const alive = await open(server, 'hb');
    const { code } = await dead.closed(3000);
    assert.equal(code, 1006, 'terminated without a close frame');
    assert.equal(alive.ws.readyState, alive.ws.OPEN);
    alive.ws.send('after heartbeat');
    const watcher = await open(server, 'hb');
    alive.ws.send('still relaying');
    assert.equal((await watcher.messages(1))[0]?.text, 'still relaying');
  });
});

describe('message size', () => {
  it('closes with 1009 when a message exceeds maxMessageSize, and others keep working', async () => {
    const server = await serverWith({ limits: { maxMessageSize: 1024 } });
    const big = await open(server, 'size');
    const a = await open(server, 'size');
    const b = await open(server, 'size');
    big.ws.send(Buffer.alloc(1024, 1));
    big.ws.send(Buffer.alloc(1025, 2));
    assert.equal((await big.closed()).code, 1009);
    const got = await a.messages(1);
    assert.equal(got[0]?.data.length, 1024, 'the message at the limit was delivered');
    a.ws.send('fine');
    assert.equal((await b.messages(2))[1]?.text, 'fine');
  });

  it('applies per-app limits', async () => {
    const server = await serverWith({
      apps: [{ id: 'small', key: 'small-key-123', secret: 'small-secret-0123456789', limits: { maxMessageSize: 10 } }],
    });
    const client = await TestClient.open(`ws://127.0.0.1:${server.port}/v4/c?api_key=small-key-123`);
    track(client);
    client.ws.send('eleven byte');
    assert.equal((await client.closed()).code, 1009);
  });
});

describe('slow readers', () => {
  it('closes a reader that stops reading with 4500 and bounds its buffer; fast readers get everything', async () => {
    const maxPendingBytes = 256 * 1024;
    const server = await serverWith({ limits: { maxPendingBytes, maxMessageSize: 64 * 1024, messagesPerSecond: 0 } });
    const slow = await open(server, 'slow');
    const fast = await open(server, 'slow');
    const publisher = await open(server, 'slow');
    slow.ws.pause();
    const chunk = Buffer.alloc(32 * 1024, 7);
    const total = 600; // ~19 MB: far more than loopback buffers plus the cap
    for (let i = 0; i < total; i++) {
      chunk.writeUInt32BE(i, 0);
      publisher.ws.send(chunk);
      // Paced by the fast reader, so only the paused one falls behind: at most 4 messages (half
      // the cap) in flight to it, so a busy machine that delays its reads does not cut it too.
      if (i % 2 === 1) await fast.until(() => fast.received.length > i - 2, `message ${i - 2}`, 10_000);
    }
    const got = await fast.messages(total, 20_000);
    assert.deepEqual(got.map((m) => m.data.readUInt32BE(0)), Array.from({ length: total }, (_, i) => i));
    slow.ws.resume();
    assert.equal((await slow.closed(10_000)).code, 4500);
    const bufferedForSlow = slow.received.reduce((sum, m) => sum + m.data.length, 0);
    assert.ok(slow.received.length < total / 2, `the slow reader got ${slow.received.length} of ${total}: its queue was dropped, not grown`);
    assert.ok(bufferedForSlow < 16 * 1024 * 1024, 'what reached it is bounded by the cap plus kernel buffers');
    assert.equal(await connectionCount(server), 2, 'the slow reader is gone, the others remain');
  });
});

describe('coalesced writes', () => {
  it('gives every connection exactly its own frames when bursts interleave and some subscribers skip their own', async () => {
    // Two publishers without notify_self share a channel with three plain subscribers. Bursts
    // arrive in the same turns, so the subscribers' queues are identical (and are written one
    // shared buffer) while each publisher's queue lacks its own frames and must not get it.
    const server = await serverWith({ limits: { messagesPerSecond: 0 } });
    const subscribers = [await open(server, 'burst'), await open(server, 'burst'), await open(server, 'burst')];
    const p = await open(server, 'burst');
    const q = await open(server, 'burst');
    const perPublisher = 200;
    for (let i = 0; i < perPublisher; i++) {
      p.ws.send(`p${i}`);
      q.ws.send(`q${i}`);
    }
    const sequence = (from: string): string[] => Array.from({ length: perPublisher }, (_, i) => `${from}${i}`);
    const texts = async (client: TestClient, count: number): Promise<string[]> => (await client.messages(count)).map((m) => m.text);
    const first = await texts(subscribers[0] as TestClient, 2 * perPublisher);
    assert.deepEqual(first.filter((t) => t.startsWith('p')), sequence('p'));
    assert.deepEqual(first.filter((t) => t.startsWith('q')), sequence('q'));
    for (const other of subscribers.slice(1)) assert.deepEqual(await texts(other, 2 * perPublisher), first, 'every subscriber sees the same order');
    assert.deepEqual(await texts(p, perPublisher), sequence('q'), 'p gets only q');
    assert.deepEqual(await texts(q, perPublisher), sequence('p'), 'q gets only p');
    await settle();
    assert.equal(p.received.length + q.received.length, 2 * perPublisher, 'and nothing else');
  });
});

/** Subscribers per busy channel: enough for a shared run (MIN_SUBSCRIBERS_FOR_RUN is 8). */
const FANOUT = 10;

describe('shared runs (channels with many subscribers)', () => {
  // Channels with 8 or more subscribers share one run of frames per turn (see SharedRun). These
  // bursts cross every rule of a run: senders excluded from their own frames, notify_self, a
  // connection on a busy and a quiet channel, and a subscriber joining while a run goes on.

  it('gives every connection exactly its frames when several publishers burst into a busy channel', async () => {
    const server = await serverWith({ limits: { messagesPerSecond: 0 } });
    const subscribers = await Promise.all(Array.from({ length: FANOUT }, () => open(server, 'busy')));
    const p = await open(server, 'busy');
    const q = await open(server, 'busy');
    const echo = await open(server, 'busy', undefined, 'notify_self=1');
    const perPublisher = 150;
    for (let i = 0; i < perPublisher; i++) {
      p.ws.send(`p${i}`);
      q.ws.send(`q${i}`);
      if (i % 3 === 0) echo.ws.send(`r${i}`);
    }
    const fromEcho = Array.from({ length: perPublisher }, (_, i) => `r${i}`).filter((_, i) => i % 3 === 0);
    const total = 2 * perPublisher + fromEcho.length;
    const sequence = (from: string): string[] => Array.from({ length: perPublisher }, (_, i) => `${from}${i}`);
    const texts = async (client: TestClient, count: number): Promise<string[]> => (await client.messages(count)).map((m) => m.text);
    const first = await texts(subscribers[0] as TestClient, total);
    assert.deepEqual(first.filter((t) => t.startsWith('p')), sequence('p'));
    assert.deepEqual(first.filter((t) => t.startsWith('q')), sequence('q'));
    assert.deepEqual(first.filter((t) => t.startsWith('r')), fromEcho);
    for (const other of subscribers.slice(1)) assert.deepEqual(await texts(other, total), first, 'every subscriber sees the same order');
    assert.deepEqual(await texts(p, total - perPublisher), first.filter((t) => !t.startsWith('p')), 'p gets everything but its own');
    assert.deepEqual(await texts(q, total - perPublisher), first.filter((t) => !t.startsWith('q')), 'q gets everything but its own');
    assert.deepEqual(await texts(echo, total), first, 'notify_self gets its own too, in place');
    await settle();
    assert.equal(p.received.length + q.received.length + echo.received.length, 3 * total - 2 * perPublisher, 'and nothing else');
  });

  it('keeps one publisher’s order across a busy and a quiet channel', async () => {
    const server = await serverWith({ limits: { messagesPerSecond: 0 } });
    await busyV1Channel(server, 'busy-a');
    // Subscribed to a busy channel (a shared run) and a quiet one (frames one by one).
    const both = await V1Client.connected(server);
    track(both.raw);
    for (const channel of ['busy-a', 'quiet']) assert.equal((await both.command('subscribe', { channel })).ok, true);
    const publisher = await V1Client.connected(server);
    track(publisher.raw);
    const count = 200;
    for (let i = 1; i <= count; i++) {
      // Pipelined on one connection: handled in this order, many in one turn.
      publisher.send('publish', { channel: 'busy-a', event: 'n', data: i });
      publisher.send('publish', { channel: 'quiet', event: 'n', data: i });
    }
    const pushes = await both.untilPushes(2 * count, 'pub');
    assert.deepEqual(
      pushes.map((push) => `${push.channel} ${String(push.data)}`),
      Array.from({ length: count }, (_, i) => [`busy-a ${i + 1}`, `quiet ${i + 1}`]).flat(),
      'the order they were published in, across the two channels',
    );
  });

  it('shares one run per dialect on a channel with raw and v1 subscribers', async () => {
    const server = await serverWith({ limits: { messagesPerSecond: 0 } });
    const raw = await Promise.all(Array.from({ length: FANOUT }, () => open(server, 'mixed')));
    await busyV1Channel(server, 'mixed');
    const v1 = await V1Client.connected(server);
    track(v1.raw);
    assert.equal((await v1.command('subscribe', { channel: 'mixed' })).ok, true);
    const publisher = await open(server, 'mixed');
    const count = 100;
    for (let i = 1; i <= count; i++) publisher.ws.send(JSON.stringify({ event: 'n', data: i }));
    const inOrder = Array.from({ length: count }, (_, i) => i + 1);
    for (const client of raw) assert.deepEqual((await client.messages(count)).map((m) => (JSON.parse(m.text) as { data: number }).data), inOrder);
    assert.deepEqual((await v1.untilPushes(count, 'pub', 'mixed')).map((push) => [push.offset, push.data]), inOrder.map((i) => [i, i]));
  });

  it('a subscriber that joins in the middle of a turn gets history, then every later frame of that turn', async () => {
    const server = await serverWith({ limits: { messagesPerSecond: 0 } });
    const { epoch } = await busyV1Channel(server, 'busy-b');
    const late = await V1Client.connected(server);
    track(late.raw);
    // One pipelined batch, handled in one turn: 50 publishes start a shared run, the subscribe
    // (replaying them) joins, 50 more follow in the same turn.
    for (let i = 1; i <= 50; i++) late.send('publish', { channel: 'busy-b', event: 'n', data: i });
    const subscribe = late.send('subscribe', { channel: 'busy-b', since: { offset: 0, epoch } });
    for (let i = 51; i <= 100; i++) late.send('publish', { channel: 'busy-b', event: 'n', data: i });
    assert.equal((await late.reply(subscribe)).ok, true);
    const pushes = await late.untilPushes(100, 'pub', 'busy-b');
    await settle();
    assert.deepEqual(
      late.pushes('pub', 'busy-b').map((push) => push.offset),
      Array.from({ length: 100 }, (_, i) => i + 1),
      'history then live: no gap, no repeat',
    );
    assert.equal(pushes.length, 100);
  });
});

/** A channel with FANOUT v1 subscribers (a run is shared by subscribers of the dialect that starts it); its epoch. */
async function busyV1Channel(server: ChorusServer, channel: string): Promise<{ epoch: string }> {
  let epoch = '';
  for (let i = 0; i < FANOUT; i++) {
    const subscriber = await V1Client.connected(server);
    track(subscriber.raw);
    const reply = await subscriber.command('subscribe', { channel });
    assert.equal(reply.ok, true);
    epoch = String(reply.result?.['epoch']);
  }
  return { epoch };
}
