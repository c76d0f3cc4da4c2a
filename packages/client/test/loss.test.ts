/**
 * Loss tests: a publisher sends a numbered stream on one channel while connections are killed at
 * random moments, hundreds of times: TcpProxy.cut() resets the client's TCP connection (an RST,
 * no close frame) and drops the server's side. The subscriber must end with every number exactly
 * once and in order, recovering each gap from the server's history; the publisher's publishes in
 * flight at a cut are re-sent with their msgId and must be published once, at their first offset.
 *
 * The cut schedule comes from a seeded generator; the seed is printed with the numbers and
 * LOSS_SEED=<seed> replays the same schedule (the exact moments still depend on timing).
 */
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { after, afterEach, before, describe, it, type TestContext } from 'node:test';
import WebSocket from 'ws';
import type { ChorusServer } from '../../server/src/index.ts';
import { createClient, type Channel, type ChorusClient, type PublishResult, type RecoveryFailedEvent, type SubscribedEvent, type WebSocketConstructor } from '../src/index.ts';
import { TcpProxy, TEST_APP, eventually, serverUrl, startTestServer, withTimeout } from './helpers.ts';

/** Publications per second the publisher aims at (pipelined: it does not wait for acks). */
const RATE_PER_SECOND = 300;
/** Reconnect quickly so hundreds of cuts fit in seconds. */
const BACKOFF = { minDelayMs: 10, maxDelayMs: 50 } as const;
/** Room for every gap: the whole stream fits in the history, well within its TTL. */
const HISTORY = { size: 10_000, ttlSeconds: 300 } as const;
/** Deadline for the cutting phase of one test; the tests take a few seconds each. */
const CUTTING_DEADLINE_MS = 35_000;
const SEED = Number(process.env['LOSS_SEED'] ?? Math.floor(Math.random() * 2 ** 31));

let server: ChorusServer;
const proxies: TcpProxy[] = [];
const clients: ChorusClient[] = [];

before(async () => {
  // No rate limit (the publisher sends hundreds of commands a second); history holds every gap.
  server = await startTestServer({ apps: [{ ...TEST_APP, limits: { messagesPerSecond: 0 }, history: { ...HISTORY } }] });
});
afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  for (const proxy of proxies.splice(0)) await proxy.close();
});
after(async () => {
  await server.close();
});

/** mulberry32: a small seeded generator, so a failing cut schedule can be replayed. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** What went over one client's sockets, seen from the client side. */
class Wire {
  /** Publish frames sent, re-sends included. */
  publishFrames = 0;
  /** msgId → the number it carries, how often it was sent, when it was last sent. */
  readonly publishes = new Map<string, { n: number; sends: number; lastSentAt: number }>();
  /** `pub` pushes received, before the SDK's dedupe. */
  pubFrames = 0;
  sockets = 0;

  /** A `ws` WebSocket that records the above; the SDK uses it like any other. */
  socketClass(): WebSocketConstructor {
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the class below reports to this Wire
    const wire = this;
    return class RecordingWebSocket extends WebSocket {
      constructor(url: string) {
        super(url);
        wire.sockets++;
        this.on('message', (data: WebSocket.RawData, isBinary: boolean) => {
          if (!isBinary && Buffer.isBuffer(data) && data.toString('utf8', 0, 14) === '{"type":"pub",') wire.pubFrames++;
        });
      }

      override send(data: Parameters<WebSocket['send']>[0], ...rest: unknown[]): void {
        if (typeof data === 'string') wire.#sent(data);
        (super.send as (...args: unknown[]) => void).call(this, data, ...rest);
      }
    };
  }

  #sent(frame: string): void {
    const command = JSON.parse(frame) as { type?: string; data?: unknown; msgId?: string };
    if (command.type !== 'publish' || command.msgId === undefined) return;
    this.publishFrames++;
    const known = this.publishes.get(command.msgId);
    if (known) {
      known.sends++;
      known.lastSentAt = performance.now();
    } else {
      this.publishes.set(command.msgId, { n: command.data as number, sends: 1, lastSentAt: performance.now() });
    }
  }

  get resent(): number {
    let resent = 0;
    for (const { sends } of this.publishes.values()) resent += sends - 1;
    return resent;
  }
}

interface Endpoint {
  readonly client: ChorusClient;
  readonly channel: Channel;
  readonly wire: Wire;
  readonly proxy: TcpProxy | undefined;
}

/** A client of the SDK, through a proxy of its own when its connection is to be cut. */
async function endpoint(channelName: string, viaProxy: boolean, random: () => number): Promise<Endpoint> {
  const proxy = viaProxy ? await TcpProxy.start(server.port) : undefined;
  if (proxy) proxies.push(proxy);
  const wire = new Wire();
  const client = createClient(proxy ? proxy.url : serverUrl(server), { key: TEST_APP.key, WebSocket: wire.socketClass(), ...BACKOFF, random });
  clients.push(client);
  return { client, channel: client.channel(channelName), wire, proxy };
}

interface CutStats {
  cuts: number;
  /** Where the client was when its connection was cut: `client state[/channel state]`. */
  readonly phases: Record<string, number>;
  /** Cuts preceded by a window in which server→client bytes were lost (acks, pushes). */
  cutsAfterLostReplies: number;
}

/**
 * Cuts the client's connection `count` times: each time, waits until the client has a TCP
 * connection through the proxy again (so every cut kills one), then a random moment — often at
 * once (during the WebSocket or connect handshake, or the resubscribe), else up to ~70 ms later
 * (live traffic, or a replay in progress) — then resets it. With `loseRepliesFirst`, half of the
 * cuts first drop server→client bytes for a few ms, so acks of publishes the server accepted are
 * lost and those publishes are re-sent after the reconnect.
 */
async function cutRepeatedly(target: Endpoint, count: number, random: () => number, loseRepliesFirst: boolean): Promise<CutStats> {
  const proxy = target.proxy;
  assert.ok(proxy, 'cut only proxied clients');
  const stats: CutStats = { cuts: 0, phases: {}, cutsAfterLostReplies: 0 };
  const deadline = Date.now() + CUTTING_DEADLINE_MS;
  while (stats.cuts < count) {
    while (proxy.openConnections === 0) {
      if (Date.now() > deadline) throw new Error(`no connection to cut after ${stats.cuts} cuts (state ${target.client.state}): ${JSON.stringify(stats)}`);
      await sleep(1);
    }
    await sleep(random() < 0.25 ? random() * 4 : random() * 70);
    if (proxy.openConnections === 0) continue;
    const lose = loseRepliesFirst && random() < 0.5;
    if (lose) {
      proxy.dropReplies = true;
      await sleep(2 + random() * 10);
      if (proxy.openConnections === 0) {
        proxy.dropReplies = false;
        continue;
      }
    }
    const phase = target.channel.state === 'unsubscribed' ? target.client.state : `${target.client.state}/${target.channel.state}`;
    stats.phases[phase] = (stats.phases[phase] ?? 0) + 1;
    proxy.cut();
    proxy.dropReplies = false;
    stats.cuts++;
    if (lose) stats.cutsAfterLostReplies++;
  }
  return stats;
}

/** Asserts that `values` is exactly 1, 2, …, total, with a short message saying where it is not. */
function assertOneToN(values: readonly number[], total: number, what: string): void {
  const wrong = values.findIndex((value, i) => value !== i + 1);
  if (wrong === -1 && values.length === total) return;
  const at = wrong === -1 ? values.length : wrong;
  const distinct = new Set(values);
  let missing = 0;
  for (let n = 1; n <= total; n++) if (!distinct.has(n)) missing++;
  const repeated = values.length - distinct.size;
  assert.fail(
    `${what}: ${values.length} values for 1..${total} (${missing} missing, ${repeated} repeated); ` +
      `first out of place at index ${at}: …${JSON.stringify(values.slice(Math.max(0, at - 3), at + 6))}…`,
  );
}

type Settled = { ok: true; result: PublishResult } | { ok: false; error: unknown };

/** Publishes 1, 2, 3, … at RATE_PER_SECOND until `stop()` holds, without waiting for acks. */
async function publishStream(channel: Channel, stop: () => boolean): Promise<Array<Promise<Settled>>> {
  const acks: Array<Promise<Settled>> = [];
  const start = performance.now();
  while (!stop()) {
    const due = Math.floor(((performance.now() - start) * RATE_PER_SECOND) / 1000);
    while (acks.length < due) {
      const n = acks.length + 1;
      acks.push(channel.publish('n', n).then(
        (result): Settled => ({ ok: true, result }),
        (error: unknown): Settled => ({ ok: false, error }),
      ));
    }
    await sleep(5);
  }
  return acks;
}

interface Scenario {
  /** Cuts of the subscriber's connection (0: it connects directly). */
  subscriberCuts: number;
  /** Cuts of the publisher's connection (0: it connects directly). */
  publisherCuts: number;
}

/** Runs one scenario, asserts that nothing was lost or duplicated, and returns the numbers to report. */
async function runLossScenario(t: TestContext, name: string, scenario: Scenario): Promise<Record<string, unknown>> {
  const seed = (SEED + name.length * 7919) >>> 0;
  const random = seededRandom(seed);
  const channelName = `loss-${name}-${seed}`;
  const subscriber = await endpoint(channelName, scenario.subscriberCuts > 0, seededRandom(seed ^ 0x5bd1e995));
  const publisher = await endpoint(channelName, scenario.publisherCuts > 0, seededRandom(seed ^ 0x1b873593));

  const received: number[] = [];
  const offsets: number[] = [];
  /** performance.now() at which each number reached the subscriber. */
  const receivedAt = new Map<number, number>();
  const subscribed: SubscribedEvent[] = [];
  const recoveryFailed: RecoveryFailedEvent[] = [];
  const errors: unknown[] = [];
  let connects = 0;
  let disconnects = 0;
  subscriber.channel.on('n', (data, publication) => {
    received.push(data as number);
    offsets.push(publication.offset);
    receivedAt.set(data as number, performance.now());
  });
  subscriber.channel.on('subscribed', (event) => subscribed.push(event));
  subscriber.channel.on('recovery-failed', (event) => recoveryFailed.push(event));
  subscriber.channel.on('error', (error) => errors.push(error));
  subscriber.client.on('error', (error) => errors.push(error));
  publisher.client.on('error', (error) => errors.push(error));
  subscriber.client.on('connected', () => connects++);
  subscriber.client.on('disconnected', () => disconnects++);
  let publisherConnects = 0;
  publisher.client.on('connected', () => publisherConnects++);
  const disconnectReasons: Record<string, number> = {};
  for (const [who, { client }] of [['subscriber', subscriber], ['publisher', publisher]] as const) {
    client.on('disconnected', ({ code, reason }) => {
      const key = `${who} ${code} ${reason}`;
      disconnectReasons[key] = (disconnectReasons[key] ?? 0) + 1;
    });
  }

  const first = await withTimeout(subscriber.channel.subscribe(), 5000, 'first subscribe');
  assert.equal(first.offset, 0, 'a fresh channel');
  await withTimeout(publisher.client.connect(), 5000, 'publisher connect');

  const started = performance.now();
  let cutting = true;
  const stream = publishStream(publisher.channel, () => !cutting);
  let subscriberStats: CutStats | undefined;
  let publisherStats: CutStats | undefined;
  try {
    [subscriberStats, publisherStats] = await Promise.all([
      scenario.subscriberCuts > 0 ? cutRepeatedly(subscriber, scenario.subscriberCuts, random, false) : undefined,
      scenario.publisherCuts > 0 ? cutRepeatedly(publisher, scenario.publisherCuts, seededRandom(seed ^ 0x85ebca6b), true) : undefined,
    ]);
  } finally {
    cutting = false;
  }
  const cuttingMs = performance.now() - started;
  const acks = await stream;
  const total = acks.length;

  // Every publish resolves, once, with the offset of its number: nothing was published twice.
  const settled = await withTimeout(Promise.all(acks), 15_000, `acks of ${total} publishes`);
  const failed = settled.filter((s) => !s.ok);
  assert.deepEqual(failed, [], 'no publish rejected');
  assert.equal(new Set(settled.map((s) => (s.ok ? s.result.epoch : ''))).size, 1, 'one epoch');

  // Delivery is in order, so once the last number is in, everything that will come has come.
  // If it never comes, the assertions below say what is missing.
  await eventually(() => received.length >= total || received.at(-1) === total, `${total} numbers at the subscriber`, 10_000).catch(() => undefined);
  const durationMs = performance.now() - started;
  await sleep(200); // anything extra (a duplicate) would arrive now
  assertOneToN(received, total, 'numbers at the subscriber (every number exactly once, in order)');
  assertOneToN(offsets, total, 'offsets at the subscriber');
  assertOneToN(settled.map((s) => (s.ok ? s.result.offset : -1)), total, 'ack offsets (publish n must be acknowledged with offset n)');
  assert.equal(subscriber.channel.position?.offset, total);
  assert.deepEqual(recoveryFailed, [], 'no recovery-failed');
  assert.deepEqual(errors, [], 'no error events');

  const resubscribes = subscribed.filter((event) => event.resubscribed);
  assert.ok(resubscribes.every((event) => event.recovered === true), `every resubscribe recovered: ${JSON.stringify(resubscribes.filter((e) => e.recovered !== true))}`);
  const replayed = resubscribes.reduce((sum, event) => sum + (event.replayed ?? 0), 0);
  // The server promises no duplicates on one connection (replay, then live): the SDK's own
  // dedupe by offset must not have had anything to drop, or it would hide a server bug.
  assert.equal(subscriber.wire.pubFrames, total, 'pub frames on the wire = numbers delivered: nothing for the SDK to dedupe');

  // The publisher: one msgId per number, re-sent after cuts, never published twice.
  assert.equal(publisher.wire.publishes.size, total, 'one msgId per publish');
  let dedupedAtLeast = 0;
  for (const { n, sends, lastSentAt } of publisher.wire.publishes.values()) {
    // Re-sent after the subscriber had already received it: the server had published it, so the
    // re-send can only have been acknowledged as a duplicate (the number arrived once, above).
    if (sends > 1 && (receivedAt.get(n) ?? Infinity) < lastSentAt) dedupedAtLeast++;
  }

  const numbers: Record<string, unknown> = {
    LOSS_SEED: SEED,
    messages: total,
    ratePerSecond: Math.round(total / (cuttingMs / 1000)),
    durationMs: Math.round(durationMs),
    subscriber: {
      cuts: subscriberStats?.cuts ?? 0,
      cutPhases: subscriberStats?.phases ?? {},
      sockets: subscriber.wire.sockets,
      reconnects: connects - 1,
      disconnects,
      resubscribes: resubscribes.length,
      replayed,
      maxReplayed: Math.max(0, ...resubscribes.map((event) => event.replayed ?? 0)),
    },
    disconnectReasons,
    publisher: {
      cuts: publisherStats?.cuts ?? 0,
      cutsAfterLostReplies: publisherStats?.cutsAfterLostReplies ?? 0,
      cutPhases: publisherStats?.phases ?? {},
      reconnects: publisherConnects - 1,
      publishFrames: publisher.wire.publishFrames,
      resent: publisher.wire.resent,
      resentAfterDelivery: dedupedAtLeast,
    },
  };
  t.diagnostic(`loss ${name}: ${JSON.stringify(numbers)}`);

  if (scenario.subscriberCuts > 0) {
    assert.ok((subscriberStats?.cuts ?? 0) >= scenario.subscriberCuts);
    // A cut of a connected client ends a session and a new one follows each; a cut during the
    // handshake ends an attempt, though the connect reply may already be on its way (the client
    // still reads what arrived before the reset), so such an attempt may become a short session.
    const connectedCuts = Object.entries(subscriberStats?.phases ?? {}).reduce((sum, [phase, cuts]) => sum + (phase.startsWith('connected') ? cuts : 0), 0);
    assert.ok(connects - 1 >= connectedCuts && connects - 1 <= scenario.subscriberCuts, `a new session after every cut of a connected subscriber (${connects - 1} for ${connectedCuts})`);
    assert.equal(disconnects, subscriberStats?.cuts, 'one disconnected event per cut');
    assert.ok(replayed > 0, 'gaps were filled by replays');
  }
  if (scenario.publisherCuts > 0) {
    assert.ok((publisherStats?.cuts ?? 0) >= scenario.publisherCuts);
    assert.ok(publisher.wire.resent > 0, 'publishes in flight at a cut were re-sent');
    assert.ok(dedupedAtLeast > 0, 're-sends of publications the server already had were deduped by msgId');
  }
  return numbers;
}

describe('loss: a numbered stream through hundreds of connection kills', { timeout: 120_000 }, () => {
  it('the subscriber, cut 200 times at random moments, gets every number exactly once, in order', { timeout: 60_000 }, async (t) => {
    await runLossScenario(t, 'subscriber', { subscriberCuts: 200, publisherCuts: 0 });
  });

  it('the publisher, cut 100 times (half of them after its acks were lost), publishes every number exactly once', { timeout: 45_000 }, async (t) => {
    await runLossScenario(t, 'publisher', { subscriberCuts: 0, publisherCuts: 100 });
  });

  it('both cut at once, 100 times each: still every number exactly once, in order', { timeout: 45_000 }, async (t) => {
    await runLossScenario(t, 'both', { subscriberCuts: 100, publisherCuts: 100 });
  });
});
