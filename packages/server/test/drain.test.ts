/**
 * The graceful shutdown's drain (src/drain.ts), on one in-process server with real `ws` clients
 * of every dialect: each connection is closed once with its dialect's "reconnect elsewhere"
 * signal, the closes are spread over drainWindowMs, and meanwhile the server still answers:
 * /health says `draining`, a new upgrade gets 503 with Retry-After. The rolling restart of a
 * cluster under load is in cluster-rolling-restart.test.ts.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { describe, it } from 'node:test';
import { resolveConfig } from '../src/index.ts';
import { closeAfterwards, rawUrl, TEST_APP, TestClient, wsBase } from './helpers.ts';
import { V1Client, v1Url } from './v1-helpers.ts';

const { serverWith, track } = closeAfterwards();

interface Peer {
  readonly dialect: 'raw' | 'v1' | 'pusher';
  readonly client: TestClient;
  /** performance.now() when the close arrived. */
  closedAt?: number;
}

function watch(dialect: Peer['dialect'], client: TestClient): Peer {
  const peer: Peer = { dialect, client };
  client.ws.once('close', () => ((peer as { closedAt?: number }).closedAt = performance.now()));
  return peer;
}

/** `count` connections of each dialect, the v1 ones connected and subscribed. */
async function peers(server: Awaited<ReturnType<typeof serverWith>>, count: number): Promise<Peer[]> {
  const all: Peer[] = [];
  for (let i = 0; i < count; i++) {
    all.push(watch('raw', track(await TestClient.open(rawUrl(server, 'drain')))));
    const v1 = await V1Client.open(server);
    track(v1.raw);
    assert.equal((await v1.command('connect')).ok, true);
    assert.equal((await v1.command('subscribe', { channel: 'drain' })).ok, true);
    all.push(watch('v1', v1.raw));
    const pusher = track(await TestClient.open(`${wsBase(server)}/app/${TEST_APP.key}?protocol=7`));
    await pusher.until(() => pusher.events('pusher:connection_established').length === 1, 'connection_established');
    all.push(watch('pusher', pusher));
  }
  return all;
}

/** The status line and Retry-After of an upgrade request. */
function upgradeStatus(url: string): Promise<{ status: number; retryAfter: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = request(url.replace(/^ws/, 'http'), { headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' } });
    req.on('response', (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] });
    });
    req.on('upgrade', () => reject(new Error('upgraded during the drain')));
    req.on('error', reject);
    req.end();
  });
}

const EXPECTED_CLOSE = { raw: 1001, v1: 1001, pusher: 4200 } as const;

describe('shutdown drain', { timeout: 30_000 }, () => {
  it('closes every connection once with its dialect’s signal, spread over drainWindowMs, while /health says draining and upgrades get 503', async () => {
    const windowMs = 1000;
    const server = await serverWith({ drainWindowMs: windowMs, shutdownTimeoutMs: 2000 });
    const all = await peers(server, 15); // 45 connections over 20 ticks: 3 a tick
    const base = `http://127.0.0.1:${server.port}`;
    const loopDelay = monitorEventLoopDelay({ resolution: 10 });
    loopDelay.enable();
    const started = performance.now();
    const closing = server.close();

    // Mid-window: still listening, saying so, refusing newcomers politely.
    await new Promise((resolve) => setTimeout(resolve, windowMs / 3));
    const health = await fetch(`${base}/health`);
    assert.equal(health.status, 503);
    assert.equal(((await health.json()) as { status: string }).status, 'draining');
    assert.deepEqual(await upgradeStatus(v1Url(server)), { status: 503, retryAfter: '1' });
    const open = all.filter((p) => p.closedAt === undefined).length;
    assert.ok(open > 0 && open < all.length, `a third into the window some connections are closed and some open (${open} of ${all.length} open)`);

    await closing;
    const elapsed = performance.now() - started;
    loopDelay.disable();
    for (const peer of all) {
      assert.equal(peer.client.closeCode, EXPECTED_CLOSE[peer.dialect], `${peer.dialect} close code`);
    }
    // v1: one disconnect push with the reconnect advice, retryAfterMs within one tick (50 ms).
    for (const peer of all.filter((p) => p.dialect === 'v1')) {
      const advice = peer.client.received.map((r) => JSON.parse(r.text) as Record<string, unknown>).filter((f) => f['type'] === 'disconnect');
      assert.equal(advice.length, 1);
      const [push] = advice as [{ code: number; reconnect: boolean; retryAfterMs: number }];
      assert.deepEqual([push.code, push.reconnect], [1001, true]);
      assert.ok(push.retryAfterMs >= 0 && push.retryAfterMs < 50, `retryAfterMs ${push.retryAfterMs}`);
    }
    // Pusher clients learn the code from pusher:error first, as for every close.
    for (const peer of all.filter((p) => p.dialect === 'pusher')) assert.equal(peer.client.events('pusher:error').length, 1);

    // Times from close(), not from the first close: a busy test runner can delay when the first
    // close is seen (one CI run), while no batch can close before its tick.
    const times = all.map((p) => (p.closedAt as number) - started).sort((a, b) => a - b);
    const first = times[0] as number;
    const last = times[times.length - 1] as number;
    const seen = `closes seen from ${Math.round(first)} to ${Math.round(last)} ms after close() (event loop delay up to ${Math.round(loopDelay.max / 1e6)} ms)`;
    assert.ok(last >= windowMs * 0.9, `the last batch waits for the window's last tick: ${seen}`);
    assert.ok(last < windowMs + 1000, `the shutdown does not outlast the window by much: ${seen}`);
    // Evenly: each quarter of the window closes about a quarter of them (3 a tick, 15 a quarter).
    const quarters = [0, 1, 2, 3].map((q) => times.filter((t) => t >= (q * windowMs) / 4 && (q === 3 || t < ((q + 1) * windowMs) / 4)).length);
    for (const n of quarters) assert.ok(n >= all.length * 0.1 && n <= all.length * 0.45, `closes per quarter of the window: ${quarters.join(', ')}; ${seen}`);
    console.log(`drain: ${all.length} connections, ${seen} (per quarter: ${quarters.join(', ')}), close() took ${Math.round(elapsed)} ms`);
    await assert.rejects(fetch(`${base}/health`), 'not listening after the shutdown');
  });

  it('a few connections are closed one a tick and the shutdown does not wait out the window', async () => {
    const server = await serverWith({ drainWindowMs: 10_000 });
    const clients = await Promise.all([1, 2, 3].map(() => TestClient.open(rawUrl(server, 'few')).then(track)));
    const started = performance.now();
    await server.close();
    assert.ok(performance.now() - started < 2000, 'three connections take about two ticks, not 10 s');
    for (const client of clients) assert.equal(client.closeCode, 1001);
  });

  it('drainWindowMs 0 closes every connection at once; v1 clients are then spread over 0–5 s by retryAfterMs', async () => {
    const server = await serverWith({ drainWindowMs: 0 });
    const v1s = await Promise.all(Array.from({ length: 10 }, () => V1Client.connected(server)));
    for (const v1 of v1s) track(v1.raw);
    await server.close();
    const retries = v1s.map((v1) => v1.pushes('disconnect')[0]?.['retryAfterMs'] as number);
    for (const ms of retries) assert.ok(ms >= 0 && ms < 5000);
    assert.ok(Math.max(...retries) >= 50, `spread wider than one drain tick: ${retries.join(', ')}`);
    for (const v1 of v1s) assert.equal(v1.raw.closeCode, 1001);
  });

  it('drainWindowMs is validated and named in the error', () => {
    assert.equal(resolveConfig({}).drainWindowMs, 5000);
    assert.throws(() => resolveConfig({ drainWindowMs: -1 }), /drainWindowMs must be >= 0/);
    assert.throws(() => resolveConfig({ drainWindowMs: 1.5 }), /drainWindowMs must be integer/);
  });
});
