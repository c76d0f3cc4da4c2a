/**
 * Faults between a node and Redis (issue 16, part 3). Node A reaches Redis through a TcpProxy
 * the test controls, node B directly; a balancer in front of both checks GET /ready. REST
 * publishers on both nodes publish continuously through every phase: added latency of 100 ms,
 * then 1 s, then a partition of A (nothing forwarded either way, nothing closed: its commands
 * time out, its pub/sub goes silent), then healing. Subscribers of every dialect listen on both.
 *
 * Checked: with 100 ms nothing is refused; A notices the partition within two probe intervals
 * (/ready 503), refuses publishes (REST 503), history (v1 112) and the Pusher HTTP API (503) with
 * the coded unavailable error, closes its clients after engine.unavailableCloseMs (raw 4505,
 * v1 4505, Pusher 4101) and refuses upgrades; they reconnect to B; B keeps delivering throughout;
 * after healing A accepts again and delivers again; every publication acknowledged by either
 * node reaches every v1 subscriber exactly once, in order, and is in history.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { TcpProxy } from '../../client/test/helpers.ts';
import type { ChorusServer } from '../src/index.ts';
import { Balancer } from './cluster.ts';
import { TEST_APP, TestClient, closeAfterwards, rawUrl, settle, wsBase } from './helpers.ts';
import { pusherBackend } from './pusher-helpers.ts';
import { FAULTS_CHANNEL, RestPublisher, breaks, median, pusherListener, sdkSubscriber, waitFor, type PusherListener, type SdkSubscriber } from './redis-faults-helpers.ts';
import { TestRedis } from './redis.ts';
import { V1Client } from './v1-helpers.ts';

/** Above the 1 s round trip of the latency phase: the probe must not take slowness for a partition. */
const PROBE_MS = 1500;
const COMMAND_TIMEOUT_MS = 2500;
const CLOSE_AFTER_MS = 3000;
const PARTITION_MS = 9000;

const { serverWith } = closeAfterwards();
const cleanups: Array<() => unknown> = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

let a: ChorusServer;
let b: ChorusServer;
let proxy: TcpProxy;
let balancer: Balancer;
let pubA: RestPublisher;
let pubB: RestPublisher;
/** Through the balancer: alternately on A and B. */
const subscribers: SdkSubscriber[] = [];
let onB: SdkSubscriber;
const listeners: PusherListener[] = [];

async function ready(server: ChorusServer): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${server.port}/ready`);
  await res.body?.cancel();
  return res.status;
}

describe('faults between node A and Redis (latency, partition, healing)', { timeout: 60_000 }, () => {
  before(async () => {
    const redis = await TestRedis.start();
    cleanups.push(() => redis.stop());
    proxy = await TcpProxy.start(redis.port);
    cleanups.push(() => proxy.close());
    const app = { ...TEST_APP, limits: { messagesPerSecond: 0, maxConnectionsPerIp: 10_000 }, history: { size: 10_000 } };
    const engine = { type: 'redis' as const, probeIntervalMs: PROBE_MS, commandTimeoutMs: COMMAND_TIMEOUT_MS, unavailableCloseMs: CLOSE_AFTER_MS };
    a = await serverWith({ apps: [app], drainWindowMs: 500, engine: { ...engine, url: `redis://127.0.0.1:${proxy.port}` }, logLevel: (process.env['FAULTS_LOG'] ?? 'silent') as 'silent' });
    b = await serverWith({ apps: [app], drainWindowMs: 500, engine: { ...engine, url: redis.url } });
    balancer = await Balancer.start([a.port, b.port], { healthCheckMs: 100, healthPath: '/ready' });
    cleanups.push(() => balancer.close());
    await waitFor(async () => (await ready(a)) === 200 && (await ready(b)) === 200, 'both nodes ready', 5000);
    await settle(300); // the balancer's first health checks
    for (let i = 0; i < 4; i++) subscribers.push(await sdkSubscriber(balancer.port));
    for (let i = 0; i < 2; i++) listeners.push(await pusherListener(balancer.port));
    onB = await sdkSubscriber(b.port);
    for (const sub of [...subscribers, onB]) cleanups.push(() => sub.client.close());
    for (const listener of listeners) cleanups.push(() => listener.client.disconnect());
    pubA = new RestPublisher('A', a.port, 20);
    pubB = new RestPublisher('B', b.port, 20);
    cleanups.push(() => pubA.stop(), () => pubB.stop());
  });

  it('100 ms of added latency: nothing is refused', async (t) => {
    proxy.latencyMs = 100;
    const start = Date.now();
    await settle(3000);
    const sent = pubA.between(start, Date.now() - 500);
    assert.ok(sent.length >= 5, `node A published (${sent.length})`);
    assert.deepEqual([...new Set(sent.map((s) => s.status))], [200], 'every publish through node A accepted');
    assert.equal(await ready(a), 200);
    t.diagnostic(`100 ms: ${sent.length} REST publishes through node A, all 200, median ${median(sent.map((s) => s.ms))} ms each (node B: ${median(pubB.between(start).map((s) => s.ms))} ms)`);
  });

  it('1 s of added latency: publishes through node A take a second and are still accepted', async (t) => {
    proxy.latencyMs = 1000;
    const start = Date.now();
    const readiness: number[] = [];
    while (Date.now() - start < 7000) {
      readiness.push(await ready(a));
      await settle(250);
    }
    const sent = pubA.between(start + 1500, Date.now() - 2500); // after the 100 ms publishes drained
    const statuses = sent.map((s) => s.status);
    t.diagnostic(
      `1 s: ${sent.length} REST publishes through node A in 3 s, answers ${JSON.stringify(Object.fromEntries([...new Set(statuses)].map((s) => [s, statuses.filter((x) => x === s).length])))}, ` +
        `median ${median(sent.map((s) => s.ms))} ms each; /ready on A answered 503 in ${readiness.filter((s) => s !== 200).length} of ${readiness.length} checks`,
    );
    assert.ok(sent.length >= 1, 'node A still published');
    assert.ok(statuses.every((s) => s === 200), 'a slow Redis below the probe interval and the command timeout is slow, not refused');
    proxy.latencyMs = 0;
    await waitFor(() => pubA.sent.at(-1)?.status === 0 || (pubA.sent.at(-1)?.ms ?? 0) < 200, 'node A fast again', 5000);
  });

  it('partition of node A: noticed within two probe intervals, publishes refused with 503, clients of every dialect closed and moved to node B, node B unaffected; healed: node A accepts and delivers again', async (t) => {
    const rawA = await TestClient.open(rawUrl(a, FAULTS_CHANNEL));
    const pusherA = await TestClient.open(`${wsBase(a)}/app/${TEST_APP.key}?protocol=7`);
    pusherA.ws.send(JSON.stringify({ event: 'pusher:subscribe', data: { channel: FAULTS_CHANNEL } }));
    await pusherA.until(() => pusherA.events('pusher_internal:subscription_succeeded').length === 1, 'pusher subscription on A');
    const v1A = await V1Client.connected(a);
    assert.equal((await v1A.command('subscribe', { channel: FAULTS_CHANNEL })).ok, true);
    for (const c of [rawA, pusherA, v1A.raw]) cleanups.push(() => c.ws.terminate());

    let rawClosedAt = 0;
    rawA.ws.once('close', () => (rawClosedAt = Date.now()));
    const partitionedAt = Date.now();
    proxy.partition();
    const noticedMs = await waitFor(async () => (await ready(a)) === 503, 'node A to notice (GET /ready 503)', 3 * PROBE_MS);
    t.diagnostic(`node A noticed the partition after ${noticedMs} ms (probe interval ${PROBE_MS} ms)`);
    assert.ok(noticedMs <= 2 * PROBE_MS + 500, `noticed within two probe intervals (${noticedMs} ms)`);

    // Reads and presence fail with the coded unavailable error, not an internal error.
    const history = await v1A.command('history', { channel: FAULTS_CHANNEL });
    assert.equal(history.ok, false);
    assert.equal((history as unknown as { error: { code: number } }).error.code, 112, 'v1 history: engine_unavailable');
    const channels = await pusherBackend(TEST_APP, a.port).get({ path: '/channels' }).then((res) => res.status, (error: { status?: number }) => error.status);
    assert.equal(channels, 503, 'Pusher HTTP API: 503');

    // After unavailableCloseMs, every client of node A is told to go, each in its dialect.
    await rawA.until(() => rawA.closeCode !== undefined, 'raw close', 10_000);
    assert.equal(rawA.closeCode, 4505);
    assert.ok(rawA.received.some((r) => r.text === '{"error":"Engine unavailable"}'), 'raw: {"error"} frame before the close');
    const closedAfterMs = rawClosedAt - partitionedAt;
    assert.equal((await pusherA.closed(3000)).code, 4101);
    assert.deepEqual(pusherA.events('pusher:error').map((e) => (e.data as { code: number }).code), [4101]);
    assert.equal((await v1A.raw.closed(3000)).code, 4505);
    assert.equal(v1A.pushes('disconnect')[0]?.['code'], 4505);
    t.diagnostic(`node A closed its clients ${closedAfterMs} ms after the partition began (unavailableCloseMs ${CLOSE_AFTER_MS}, drainWindowMs 500)`);

    // New clients are refused while Redis is away; the SDK subscribers and pusher-js went to B.
    const refused = await new Promise<number>((resolve) => {
      const ws = new WebSocket(rawUrl(a, FAULTS_CHANNEL));
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('open', () => resolve(101));
      ws.on('error', () => undefined);
    });
    assert.equal(refused, 503, 'upgrade refused on node A');
    await waitFor(() => subscribers.every((s) => s.client.state === 'connected' && s.client.channel(FAULTS_CHANNEL).state === 'subscribed'), 'SDK subscribers back (on B)', 10_000);
    assert.ok(subscribers.filter((s) => s.closeCodes.includes(4505)).length >= 2, 'the SDK subscribers on A were closed with 4505');
    t.diagnostic(`SDK subscribers of node A resubscribed on node B by ${Date.now() - partitionedAt} ms after the partition began`);

    await settle(Math.max(0, partitionedAt + PARTITION_MS - Date.now()));
    const during = pubA.between(partitionedAt + noticedMs, Date.now()).filter((s) => s.status !== 0); // 0: still waiting
    assert.ok(during.length >= 1 && during.every((s) => s.status === 503), `node A refused every publish after noticing: ${JSON.stringify([...new Set(during.map((s) => s.status))])}`);
    const duringB = pubB.between(partitionedAt, Date.now()).filter((s) => s.status !== 0);
    assert.ok(duringB.length >= 10, `node B published during the partition (${duringB.length})`);
    assert.deepEqual([...new Set(duringB.map((s) => s.status))], [200], 'node B accepted every publish during the partition');
    const bLatency = duringB.map((s) => (onB.received.find((r) => r.text === s.text)?.at ?? Infinity) - s.at);
    t.diagnostic(`during the partition: node A refused ${during.length} publishes (503); node B accepted ${duringB.length}, delivered on B after at most ${Math.max(...bLatency)} ms`);
    assert.ok(Math.max(...bLatency) < 1000, 'node B kept delivering');

    const healedAt = Date.now();
    proxy.heal();
    const readyAfterMs = await waitFor(async () => (await ready(a)) === 200, 'node A ready again', 15_000);
    await waitFor(() => pubA.between(healedAt).some((s) => s.status === 200), 'node A accepting again', 15_000);
    const acceptedAfterMs = Date.now() - healedAt;
    // Pub/sub resubscribed: a new raw client on node A receives node B's publications.
    const rawAgain = await TestClient.open(rawUrl(a, FAULTS_CHANNEL));
    cleanups.push(() => rawAgain.ws.terminate());
    await rawAgain.until(() => rawAgain.received.some((r) => r.text.startsWith('B-')), 'node B publications at a raw client on node A', 5000);
    t.diagnostic(`healed: node A ready ${readyAfterMs} ms after healing, accepting publishes after ${acceptedAfterMs} ms, delivering to its clients again after ${Date.now() - healedAt} ms`);
    for (const [i, listener] of listeners.entries()) {
      await waitFor(() => listener.texts.some((text) => text === pubB.sent.at(-3)?.text), `pusher-js ${i} receiving after the partition`, 5000);
    }
    t.diagnostic(`pusher-js listeners: error codes ${JSON.stringify(listeners.map((l) => l.errorCodes))}`);
  });

  it('every publication acknowledged by either node reached every v1 subscriber exactly once, in order, and is in history', async (t) => {
    await pubA.stop();
    await pubB.stop();
    const acked = [...pubA.acked, ...pubB.acked];
    const last = Math.max(...acked.map((s) => s.offset ?? 0));
    for (const sub of [...subscribers, onB]) {
      await waitFor(() => (sub.received.at(-1)?.offset ?? 0) >= last, `offset ${last} at every subscriber`, 10_000);
      assert.deepEqual(breaks(sub), [], 'offsets contiguous: nothing missed, nothing twice');
      assert.equal(sub.recoveryFailures, 0);
      const texts = new Map(sub.received.map((r) => [r.offset, r.text]));
      assert.deepEqual(acked.filter((s) => texts.get(s.offset ?? -1) !== s.text).map((s) => s.text), [], 'every acknowledged publication received');
    }
    const stored = new Map<number, string>();
    const channel = onB.client.channel(FAULTS_CHANNEL);
    const epoch = (await channel.history({ limit: 1 })).epoch;
    for (let offset = 0; offset < last; ) {
      const page = await channel.history({ limit: 100, since: { epoch, offset } });
      for (const p of page.publications) stored.set(p.offset, String(p.data));
      offset = page.publications.at(-1)?.offset ?? last;
    }
    assert.deepEqual(acked.filter((s) => stored.get(s.offset ?? -1) !== s.text).map((s) => s.text), [], 'every acknowledged publication in history');
    const refusedA = pubA.sent.filter((s) => s.status !== 200);
    const deliveredAnyway = refusedA.filter((s) => [...stored.values()].includes(s.text)).length;
    t.diagnostic(`${acked.length} acknowledged publications (A ${pubA.acked.length}, B ${pubB.acked.length}), all delivered and in history; A refused ${refusedA.length}, of which ${deliveredAnyway} were stored anyway (a command that timed out, run by Redis after healing)`);
  });
});
