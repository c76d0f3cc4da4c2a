/**
 * GET /metrics and GET /ready against a real server: real `ws` clients of every dialect (raw, v1,
 * Pusher protocol) do traffic, the REST API and the Pusher HTTP API (the `pusher` SDK) publish,
 * and the scraped numbers must move exactly as that traffic says. /ready is checked against a
 * real redis-server that is killed and started again.
 */
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { Writable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import { resolveConfig, startServer, type ChorusServer } from '../src/index.ts';
import { TEST_APP, TestClient, closeAfterwards, rawUrl, settle, withTimeout, wsBase } from './helpers.ts';
import { pusherBackend } from './pusher-helpers.ts';
import { TestRedis } from './redis.ts';
import { V1Client } from './v1-helpers.ts';

const { serverWith, track } = closeAfterwards();

/** One sample line of the exposition: `name{a="1",b="2"} value`. */
interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

function parse(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    const match = /^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) continue;
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[key as string] = value as string;
    samples.push({ name: match[1] as string, labels, value: Number(match[3]) });
  }
  return samples;
}

/** The sum of the samples of `name` whose labels include `labels`; undefined when there is none. */
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const matching = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return matching.length === 0 ? undefined : matching.reduce((sum, s) => sum + s.value, 0);
}

async function scrape(server: ChorusServer, headers: Record<string, string> = {}): Promise<Sample[]> {
  const response = await fetch(`http://127.0.0.1:${server.port}/metrics`, { headers });
  assert.equal(response.status, 200, await response.clone().text());
  assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return parse(await response.text());
}

function publishRest(server: ChorusServer, channel: string, message: unknown): Promise<Response> {
  return fetch(`http://127.0.0.1:${server.port}/api/publish`, {
    method: 'POST',
    body: JSON.stringify({ key: TEST_APP.key, secret: TEST_APP.secret, channelId: channel, message }),
  });
}

/** A Pusher protocol 7 client on a plain `ws` socket, subscribed to a public channel. */
async function pusherSubscriber(server: ChorusServer, channel: string): Promise<TestClient> {
  const client = track(await TestClient.open(`${wsBase(server)}/app/${TEST_APP.key}?protocol=7`));
  await client.until(() => client.received.length >= 1, 'pusher:connection_established');
  client.ws.send(JSON.stringify({ event: 'pusher:subscribe', data: { channel } }));
  await client.until(() => client.received.some((r) => r.text.includes('subscription_succeeded')), 'subscription_succeeded');
  return client;
}

describe('GET /metrics', () => {
  it('counts connections, messages, bytes, publications and deliveries of every dialect and source', async () => {
    const server = await serverWith();
    const raw = await Promise.all([0, 1, 2].map(async () => track(await TestClient.open(rawUrl(server, 'room')))));
    const [publisher, ...rawSubscribers] = raw as [TestClient, TestClient, TestClient];
    const v1 = await V1Client.connected(server);
    track(v1.raw);
    assert.ok((await v1.command('subscribe', { channel: 'room' })).ok);
    const pusher = await pusherSubscriber(server, 'room');

    for (let i = 0; i < 3; i++) publisher.ws.send(JSON.stringify({ event: 'say', data: `hello ${i}` }));
    await rawSubscribers[0].until(() => rawSubscribers[0].received.length >= 3, '3 raw messages');
    assert.equal((await publishRest(server, 'room', { event: 'say', data: 'from rest' })).status, 200);
    await pusherBackend(TEST_APP, server.port).trigger('room', 'say', { text: 'from the Pusher API' });
    // 3 WebSocket + 1 REST + 1 Pusher HTTP publications; only the HTTP ones reach the raw publisher.
    for (const client of rawSubscribers) await client.until(() => client.received.length >= 5, '5 raw messages');
    await publisher.until(() => publisher.received.length >= 2, 'the 2 HTTP publications');
    await v1.untilPushes(5);
    await pusher.until(() => pusher.received.length >= 2 + 5, '5 Pusher events');
    await settle(50);

    const samples = await scrape(server);
    const app = { app_id: TEST_APP.id };
    const raw_ = { ...app, dialect: 'raw' };
    const v1_ = { ...app, dialect: 'v1' };
    const pusher_ = { ...app, dialect: 'pusher' };
    assert.equal(value(samples, 'chorus_connected', raw_), 3);
    assert.equal(value(samples, 'chorus_connected', v1_), 1);
    assert.equal(value(samples, 'chorus_connected', pusher_), 1);
    assert.equal(value(samples, 'chorus_new_connections_total', app), 5);
    assert.equal(value(samples, 'chorus_new_disconnections_total', app), 0);
    assert.equal(value(samples, 'chorus_ws_messages_received_total', raw_), 3);
    assert.equal(value(samples, 'chorus_ws_messages_received_total', v1_), 2, 'connect and subscribe');
    assert.equal(value(samples, 'chorus_ws_messages_received_total', pusher_), 1, 'pusher:subscribe');
    // raw: 2 subscribers × 5 + the publisher's 2; v1: 2 replies + 5 pushes; Pusher: established, succeeded + 5.
    assert.equal(value(samples, 'chorus_ws_messages_sent_total', raw_), 12);
    assert.equal(value(samples, 'chorus_ws_messages_sent_total', v1_), 7);
    assert.equal(value(samples, 'chorus_ws_messages_sent_total', pusher_), 7);
    assert.equal(value(samples, 'chorus_publications_total', { ...app, source: 'websocket' }), 3);
    assert.equal(value(samples, 'chorus_publications_total', { ...app, source: 'rest' }), 1);
    assert.equal(value(samples, 'chorus_publications_total', { ...app, source: 'pusher_http' }), 1);
    // 3 × (2 raw + v1 + Pusher) + 2 × (3 raw + v1 + Pusher)
    assert.equal(value(samples, 'chorus_deliveries_total'), 22);
    assert.equal(value(samples, 'chorus_channels', app), 1);
    assert.equal(value(samples, 'chorus_subscriptions', app), 5);
    assert.equal(value(samples, 'chorus_http_calls_received_total', { route: 'publish' }), 1);
    assert.equal(value(samples, 'chorus_http_calls_received_total', { route: 'pusher_api' }), 1);
    assert.ok((value(samples, 'chorus_http_received_bytes', { route: 'publish' }) ?? 0) > 50);
    assert.ok((value(samples, 'chorus_http_transmitted_bytes', { route: 'publish' }) ?? 0) > 10);
    assert.ok((value(samples, 'chorus_delivery_latency_seconds_count') ?? 0) >= 1, 'the first publication is sampled');
    assert.equal(value(samples, 'chorus_engine_up', { engine: 'memory' }), 1);
    for (const name of ['chorus_process_resident_memory_bytes', 'chorus_nodejs_heap_size_used_bytes']) {
      assert.ok((value(samples, name) ?? 0) >= 0 && value(samples, name) !== undefined, `${name} is exposed`);
    }
    assert.equal(samples.find((s) => s.name === 'chorus_connected')?.labels['port'], String(server.port), "soketi's port label");

    const received = value(samples, 'chorus_socket_received_bytes', raw_) ?? 0;
    const sent = value(samples, 'chorus_socket_transmitted_bytes', raw_) ?? 0;
    assert.ok(received > 3 * 20, `raw received ${received} bytes`);
    assert.ok(sent > 12 * 20, `raw sent ${sent} bytes`);

    // A closed connection's counts stay in the totals.
    rawSubscribers[1].ws.close();
    await rawSubscribers[1].until(() => rawSubscribers[1].closeCode !== undefined, 'close');
    await settle(50);
    const later = await scrape(server);
    assert.equal(value(later, 'chorus_connected', raw_), 2);
    assert.equal(value(later, 'chorus_new_disconnections_total', raw_), 1);
    assert.equal(value(later, 'chorus_subscriptions', app), 4);
    assert.ok((value(later, 'chorus_socket_transmitted_bytes', raw_) ?? 0) >= sent, 'bytes never go down');
    assert.ok((value(later, 'chorus_socket_received_bytes', raw_) ?? 0) >= received);
    for (const name of ['chorus_nodejs_eventloop_lag_seconds', 'chorus_nodejs_eventloop_lag_p99_seconds']) {
      assert.notEqual(value(later, name), undefined, `${name}: measured from the first scrape on`);
    }
  });

  it('counts open files and handles once per 10 s: walking every socket at each scrape would stall a busy server', async () => {
    const server = await serverWith({});
    const first = await scrape(server);
    const fds = value(first, 'chorus_process_open_fds');
    const handles = value(first, 'chorus_nodejs_active_handles_total');
    assert.ok(fds !== undefined && fds > 0 && handles !== undefined && handles > 0, 'both are exposed');
    const clients = await Promise.all(Array.from({ length: 20 }, () => TestClient.open(rawUrl(server, 'walk')).then(track)));
    const second = await scrape(server);
    assert.equal(value(second, 'chorus_connected'), clients.length, 'the cheap counts are live');
    assert.equal(value(second, 'chorus_process_open_fds'), fds, 'open fds: the count of the first scrape, until the interval passes');
    assert.equal(value(second, 'chorus_nodejs_active_handles_total'), handles);
  });

  it("counts socket bytes as they flow, exactly the clients' own counts, while open and after a close", async () => {
    const server = await serverWith({});
    const clients = await Promise.all([0, 1].map(async () => track(await TestClient.open(rawUrl(server, 'bytes')))));
    const [publisher, subscriber] = clients as [TestClient, TestClient];
    // Each client's socket, as counted from its side: what it wrote the server read, and back.
    const sockets = clients.map((client) => (client.ws as unknown as { _socket: Socket })._socket);
    const totals = (): { written: number; read: number } => ({
      written: sockets.reduce((sum, socket) => sum + socket.bytesWritten, 0),
      read: sockets.reduce((sum, socket) => sum + socket.bytesRead, 0),
    });
    const raw_ = { app_id: TEST_APP.id, dialect: 'raw' };
    const bytes = async (): Promise<{ received: number | undefined; transmitted: number | undefined }> => {
      const samples = await scrape(server);
      return { received: value(samples, 'chorus_socket_received_bytes', raw_), transmitted: value(samples, 'chorus_socket_transmitted_bytes', raw_) };
    };

    // Frames with a 7-bit and a 16-bit length (the long one may take more than one read).
    for (const size of [10, 300, 40_000]) publisher.ws.send('x'.repeat(size));
    await subscriber.until(() => subscriber.received.length >= 3, 'the 3 messages');
    await settle(50);
    const open = totals();
    assert.deepEqual(await bytes(), { received: open.written, transmitted: open.read }, 'open connections: handshake and frames, both ways');
    assert.ok(open.written > 40_000 && open.read > 40_000);

    // The close frames are ws's own writes: counted when the connection closes.
    publisher.ws.close();
    await publisher.until(() => publisher.closeCode !== undefined, 'close');
    await settle(50);
    const closed = totals();
    assert.ok(closed.written > open.written && closed.read > open.read, 'the close handshake moved bytes');
    assert.deepEqual(await bytes(), { received: closed.written, transmitted: closed.read }, 'after a close: every byte of the closed connection');
  });

  it('counts rate-limited, schema-refused and slow-consumer messages', async () => {
    const server = await serverWith({
      apps: [{ ...TEST_APP, limits: { messagesPerSecond: 1, messageBurst: 1, maxPendingBytes: 1024 }, channels: [{ pattern: 'typed-*', schema: { type: 'object' } }] }],
    });
    const typed = track(await TestClient.open(rawUrl(server, 'typed-1')));
    typed.ws.send('not an object');
    await typed.until(() => typed.received.some((r) => r.text.includes('error')), 'the schema error');
    assert.equal((await publishRest(server, 'typed-1', 'plain text')).status, 400);

    const limited = track(await TestClient.open(rawUrl(server, 'fast')));
    limited.ws.send('{}');
    limited.ws.send('{}');
    await limited.until(() => limited.closeCode !== undefined, 'the rate-limit close');
    assert.equal(limited.closeCode, 4502);

    // One publication larger than the subscriber's whole allowance (maxPendingBytes 1024).
    const slow = track(await TestClient.open(rawUrl(server, 'big')));
    assert.equal((await publishRest(server, 'big', 'x'.repeat(2000))).status, 200);
    await slow.until(() => slow.closeCode !== undefined, 'the slow-consumer close');
    assert.equal(slow.closeCode, 4500);
    await settle(50);

    const samples = await scrape(server);
    const raw = { app_id: TEST_APP.id, dialect: 'raw' };
    assert.equal(value(samples, 'chorus_rate_limited_messages_total', raw), 1);
    assert.equal(value(samples, 'chorus_schema_refused_messages_total', { app_id: TEST_APP.id, source: 'websocket' }), 1);
    assert.equal(value(samples, 'chorus_schema_refused_messages_total', { app_id: TEST_APP.id, source: 'rest' }), 1);
    assert.equal(value(samples, 'chorus_slow_consumer_disconnections_total', raw), 1);
    assert.equal(value(samples, 'chorus_publications_total', { app_id: TEST_APP.id, source: 'websocket' }), 1, 'only the message within the rate');
  });

  it('needs the bearer token when metrics.token is set, honours the prefix, and is absent when disabled', async () => {
    const token = 'metrics-token-0123456789';
    const server = await serverWith({ metrics: { token, prefix: 'soketi_' } });
    const url = `http://127.0.0.1:${server.port}/metrics`;
    const attempts: Array<Record<string, string>> = [{}, { authorization: 'Bearer wrong-token-0123456789' }, { authorization: token }];
    for (const headers of attempts) {
      const response = await fetch(url, { headers });
      assert.equal(response.status, 401, JSON.stringify(headers));
      assert.equal(response.headers.get('www-authenticate'), 'Bearer');
      assert.match(((await response.json()) as { error: string }).error, /Authorization: Bearer/);
    }
    const samples = await scrape(server, { authorization: `Bearer ${token}` });
    assert.notEqual(value(samples, 'soketi_new_connections_total') ?? value(samples, 'soketi_engine_up'), undefined);
    assert.equal(samples.filter((s) => s.name.startsWith('chorus_')).length, 0);
    assert.ok(samples.some((s) => s.name === 'soketi_process_resident_memory_bytes'));

    const off = await serverWith({ metrics: { enabled: false } });
    assert.equal((await fetch(`http://127.0.0.1:${off.port}/metrics`)).status, 404);
    assert.equal((await fetch(`http://127.0.0.1:${off.port}/ready`)).status, 200, '/ready does not depend on metrics');
  });

  it('rejects a short token and a prefix Prometheus cannot use, naming the field', () => {
    assert.throws(() => resolveConfig({ metrics: { token: 'short' } }), /config: metrics\.token is 5 characters; secrets must be at least 16/);
    assert.throws(() => resolveConfig({ metrics: { prefix: 'my-app' } }), /config: metrics\.prefix must match pattern/);
  });
});

describe('connection refusals', () => {
  it('are counted by dialect and code, and logged once each with code and reason, never a token', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(...chunk.toString().split('\n').filter(Boolean));
        done();
      },
    });
    const server = await startServer(
      { port: 0, host: '127.0.0.1', apps: [{ ...TEST_APP, allowedOrigins: ['https://good.example'], limits: { maxConnectionsPerIp: 1 } }] },
      { logger: pino({ level: 'info' }, sink) },
    );
    after(() => server.close());
    const badToken = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwcml2YXRlLXgifQ.c2lnbmF0dXJlLXRoYXQtaXMtd3Jvbmc';
    const refusedRaw = async (url: string, headers: Record<string, string> = {}): Promise<void> => {
      const client = track(new TestClient(url, { headers }));
      await withTimeout(new Promise<void>((resolve) => client.ws.once('close', () => resolve())), 3000, 'refused socket closed');
    };
    await refusedRaw(rawUrl(server, 'c', 'api_key=no-such-key'));
    await refusedRaw(rawUrl(server, 'private-x', `api_key=${TEST_APP.key}&jwt=${badToken}`));
    await refusedRaw(rawUrl(server, 'c'), { origin: 'https://evil.example' });
    await refusedRaw(`${wsBase(server)}/app/no-such-key?protocol=7`);
    const v1 = await V1Client.open(server);
    track(v1.raw);
    await v1.command('connect', { token: badToken });
    await v1.raw.closed(3000);
    await settle(50);
    const first = track(await TestClient.open(rawUrl(server, 'c')));
    await refusedRaw(rawUrl(server, 'c'));
    await settle(50);

    const samples = await scrape(server);
    const refusals = (dialect: string, code: string): number | undefined => value(samples, 'chorus_connection_refusals_total', { dialect, code });
    assert.equal(refusals('raw', '4001'), 1, 'unknown api key');
    assert.equal(refusals('raw', '4003'), 1, 'bad channel token');
    assert.equal(refusals('raw', '403'), 1, 'origin');
    assert.equal(refusals('raw', '429'), 1, 'per-IP limit');
    assert.equal(refusals('pusher', '4001'), 1, 'unknown Pusher key');
    assert.equal(refusals('v1', '4003'), 1, 'v1 connect refused');

    const refused = lines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((entry) => entry['msg'] === 'connection refused');
    assert.deepEqual(
      refused.map((entry) => `${String(entry['dialect'])} ${String(entry['code'])}`),
      ['raw 4001', 'raw 4003', 'raw 403', 'pusher 4001', 'v1 4003', 'raw 429'],
    );
    for (const entry of refused) {
      assert.equal(entry['level'], 30, 'info');
      assert.equal(typeof entry['reason'], 'string');
      assert.ok((entry['reason'] as string).length > 5, `a reason: ${JSON.stringify(entry)}`);
    }
    const log = lines.join('\n');
    for (const secret of [badToken, badToken.split('.')[2] ?? 'x', TEST_APP.secret]) assert.ok(!log.includes(secret), 'no token or secret in the log');
    first.ws.close();
  });
});

describe('GET /ready', { timeout: 60_000 }, () => {
  it('answers 200 while the Redis engine is reachable and 503 while it is not; engine metrics follow', async () => {
    const redis = await TestRedis.start();
    after(() => redis.stop());
    const server = await serverWith({ engine: { type: 'redis', url: redis.url, probeIntervalMs: 200 } });
    const ready = async (): Promise<{ status: number; body: { status: string } }> => {
      const response = await fetch(`http://127.0.0.1:${server.port}/ready`);
      return { status: response.status, body: (await response.json()) as { status: string } };
    };
    const until = async (status: number, what: string): Promise<void> => {
      const deadline = Date.now() + 15_000;
      while ((await ready()).status !== status) {
        if (Date.now() > deadline) throw new Error(`/ready never answered ${status} (${what})`);
        await settle(100);
      }
    };
    await until(200, 'Redis up');
    assert.deepEqual((await ready()).body, { status: 'ready', engine: 'redis' });
    await settle(500); // a few probes
    let samples = await scrape(server);
    assert.equal(value(samples, 'chorus_engine_up', { engine: 'redis' }), 1);
    assert.ok((value(samples, 'chorus_engine_command_duration_seconds_count', { command: 'probe' }) ?? 0) >= 1, 'probe round trips are timed');

    await redis.stop();
    await until(503, 'Redis killed');
    assert.deepEqual((await ready()).body, { status: 'engine_unavailable', engine: 'redis' });
    samples = await scrape(server);
    assert.equal(value(samples, 'chorus_engine_up', { engine: 'redis' }), 0);
    assert.equal(value(samples, 'chorus_engine_reconnects_total', { engine: 'redis' }), 0);

    await TestRedis.start(redis.port).then((again) => after(() => again.stop()));
    await until(200, 'Redis back');
    samples = await scrape(server);
    assert.equal(value(samples, 'chorus_engine_up', { engine: 'redis' }), 1);
    assert.equal(value(samples, 'chorus_engine_reconnects_total', { engine: 'redis' }), 1);
  });

  it('answers 200 with the memory engine; other methods are refused', async () => {
    const server = await serverWith();
    const base = `http://127.0.0.1:${server.port}`;
    const response = await fetch(`${base}/ready`);
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { status: 'ready', engine: 'memory' });
    assert.equal((await fetch(`${base}/ready`, { method: 'POST' })).status, 405);
    assert.equal((await fetch(`${base}/metrics`, { method: 'DELETE' })).status, 405);
  });
});
