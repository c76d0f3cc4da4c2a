/**
 * Connections that are never cut (issue 11, item 9): every accepted TCP connection either sends
 * its request head within headersTimeoutMs or is destroyed, whatever clients came before, and a
 * connection the server has ended is destroyed even when the peer never closes its side.
 *
 * The peers here connect with `allowHalfOpen`: like most clients outside Node (a raw C or
 * Python socket), they do not close when the server sends FIN. The server's HTTP sockets are
 * half-open too, so before the fix a 408, 431 or 400 answered with `end()` left such a
 * connection, and its file descriptor, open for good: 20,000 silent sockets exhausted the
 * process's file limit. `destroyedByServer` tells a destroyed socket (a write is answered with
 * a reset) from one that is merely ended.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { Agent, get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, it } from 'node:test';
import type { ChorusServer } from '../src/index.ts';
import { TEST_APP, TestClient, closeAfterwards, rawUrl, settle } from './helpers.ts';
import { Opcode, RawSocket, encodeFrame, upgradeRequest } from './raw-socket.ts';

const { serverWith, track } = closeAfterwards();

const HEADERS_TIMEOUT_MS = 1000;
const CLOSE_TIMEOUT_MS = 300;
/** The guard sweeps every headersTimeoutMs / 4; then the peer gets closeTimeoutMs to close. */
const CUT_WITHIN_MS = HEADERS_TIMEOUT_MS + HEADERS_TIMEOUT_MS / 4 + CLOSE_TIMEOUT_MS + 1500;

const path = (channel: string): string => `/v4/${channel}?api_key=${TEST_APP.key}`;

async function halfOpen(server: ChorusServer): Promise<RawSocket> {
  return RawSocket.connect(server.port, 3000, { allowHalfOpen: true });
}

/** The hostile clients of the issue, one after the other, each answered as the attack suite expects. */
async function hostileSequence(server: ChorusServer): Promise<void> {
  // Bad frames: unmasked, then reserved opcode.
  for (const frame of [encodeFrame({ opcode: Opcode.TEXT, payload: 'x', mask: false }), encodeFrame({ opcode: 0x3, payload: 'x' })]) {
    const raw = await RawSocket.upgrade(server.port, path('hostile'));
    raw.write(frame);
    assert.equal((await raw.closeFrame()).code, 1002);
    raw.destroy();
  }
  // A fragment flood: 16,385 fragments, FIN never set.
  const flood = await RawSocket.upgrade(server.port, path('hostile'));
  const fragments = [encodeFrame({ opcode: Opcode.TEXT, payload: 'x', fin: false })];
  for (let i = 0; i < 16_384; i++) fragments.push(encodeFrame({ opcode: Opcode.CONTINUATION, payload: 'x', fin: false }));
  await flood.writeAll(Buffer.concat(fragments));
  assert.equal((await flood.closeFrame()).code, 1008);
  flood.destroy();
  // A request with 3,000 headers (431) from a peer that keeps its side open: destroyed anyway.
  const headers = await halfOpen(server);
  headers.write(`GET ${path('hostile')} HTTP/1.1\r\nHost: 127.0.0.1\r\n${Array.from({ length: 3000 }, (_, i) => `x${i}: v`).join('\r\n')}\r\n\r\n`);
  assert.equal((await headers.response()).status, 431);
  await headers.destroyedByServer(CLOSE_TIMEOUT_MS + 2000);
  // A ping flood from a peer that does not read.
  const pinger = await RawSocket.upgrade(server.port, path('hostile'));
  pinger.socket.pause();
  const ping = encodeFrame({ opcode: Opcode.PING, payload: Buffer.alloc(125, 0x70) });
  for (let sent = 0; sent < 10_000 && !pinger.isClosed && pinger.errorCode === undefined; sent += 500) {
    pinger.write(Buffer.concat(Array.from({ length: 500 }, () => ping)));
    await nextTurn();
  }
  pinger.socket.resume();
  await pinger.closed(3000);
  // A slow reader: a subscriber that stops reading while 10 MB are published to its channel.
  const slow = await RawSocket.upgrade(server.port, path('hostile-slow'));
  slow.socket.pause();
  const publisher = track(await TestClient.open(rawUrl(server, 'hostile-slow')));
  for (let i = 0; i < 320; i++) publisher.ws.send(Buffer.alloc(32 * 1024, i));
  await settle(500);
  slow.destroy();
  publisher.close();
}

describe('connection lifetime', () => {
  it('after a run of hostile clients, a slowloris and a silent connection that ignore the FIN are still destroyed', async () => {
    const server = await serverWith({ headersTimeoutMs: HEADERS_TIMEOUT_MS, closeTimeoutMs: CLOSE_TIMEOUT_MS, limits: { messagesPerSecond: 0 } });
    await hostileSequence(server);

    const start = performance.now();
    const silent = await halfOpen(server);
    const slowloris = await halfOpen(server);
    slowloris.write(`GET ${path('c')} HTTP/1.1\r\nHost: 127.0.0.1\r\n`);
    let n = 0;
    const drip = setInterval(() => {
      if (slowloris.head === undefined && slowloris.socket.writable) slowloris.write(`X-Drip-${++n}: a\r\n`);
    }, HEADERS_TIMEOUT_MS / 5);
    try {
      for (const [name, raw] of [['silent', silent], ['slowloris', slowloris]] as const) {
        const head = await raw.response(HEADERS_TIMEOUT_MS + 2000);
        assert.equal(head.status, 408, `${name}: ${head.statusLine}`);
        await raw.destroyedByServer(CUT_WITHIN_MS);
        const ms = performance.now() - start;
        assert.ok(ms >= HEADERS_TIMEOUT_MS - 100 && ms < CUT_WITHIN_MS, `${name} destroyed after ${Math.round(ms)} ms`);
      }
    } finally {
      clearInterval(drip);
    }
    // The 408 names the setting.
    assert.match(silent.head?.body ?? '', /headersTimeoutMs \(1000 ms\)/);
  });

  it('an upgrade refused with an HTTP status is destroyed even if the peer keeps its side open', async () => {
    const server = await serverWith({ headersTimeoutMs: HEADERS_TIMEOUT_MS, closeTimeoutMs: CLOSE_TIMEOUT_MS });
    const raw = await halfOpen(server);
    raw.write(upgradeRequest('/no/such/path'));
    assert.equal((await raw.response()).status, 404);
    await raw.destroyedByServer(CLOSE_TIMEOUT_MS + 2000);
  });

  it('does not cut a keep-alive HTTP client idle between requests, nor an open WebSocket', async () => {
    const server = await serverWith({ headersTimeoutMs: 400, closeTimeoutMs: CLOSE_TIMEOUT_MS });
    const ws = track(await TestClient.open(rawUrl(server, 'stay')));
    const watcher = track(await TestClient.open(rawUrl(server, 'stay')));
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const health = (): Promise<{ status: number; reused: boolean }> =>
      new Promise((resolve, reject) => {
        const req = get({ host: '127.0.0.1', port: server.port, path: '/health', agent }, (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, reused: req.reusedSocket }));
        });
        req.on('error', reject);
      });
    try {
      assert.deepEqual(await health(), { status: 200, reused: false });
      // Three times headersTimeoutMs, less than Node's keepAliveTimeout (5 s).
      await settle(1200);
      assert.deepEqual(await health(), { status: 200, reused: true }, 'the same TCP connection serves the second request');
    } finally {
      agent.destroy();
    }
    ws.ws.send('still here');
    assert.equal((await watcher.messages(1))[0]?.text, 'still here');
    assert.equal(ws.closeCode, undefined);
  });

  it('on a TLS port, a connection that never starts the TLS handshake is destroyed after headersTimeoutMs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'chorus-tls-'));
    const tls = { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') };
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', tls.key, '-out', tls.cert, '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore' });
    const server = await serverWith({ tls, headersTimeoutMs: HEADERS_TIMEOUT_MS, closeTimeoutMs: CLOSE_TIMEOUT_MS });
    const start = performance.now();
    const silent = await halfOpen(server);
    await silent.until(() => silent.sawEnd || silent.isClosed, 'the server to close the connection', CUT_WITHIN_MS);
    await silent.destroyedByServer(CUT_WITHIN_MS);
    const ms = performance.now() - start;
    assert.ok(ms >= HEADERS_TIMEOUT_MS - 100 && ms < CUT_WITHIN_MS, `destroyed after ${Math.round(ms)} ms`);
  });
});
