/**
 * Attack tests for the handshake, the framing layer and per-connection resources
 * (security checklist §4: A.12–A.14, B.15–B.21, B.23, C.25), driven from a bare TCP socket
 * that builds its own handshakes and frames (raw-socket.ts).
 *
 * Every test asserts the exact answer (HTTP status or close code), that the TCP connection is
 * closed, and that the server still serves: two bystanders opened on the same channel before
 * the attack still relay to each other and to a newcomer afterwards, and received nothing from
 * the attacker unless the test says so. Loopback only; every wait has a deadline.
 */
import assert from 'node:assert/strict';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { after, afterEach, before, describe, it } from 'node:test';
import type { ChorusConfigInput, ChorusServer } from '../src/index.ts';
import { TEST_APP, TestClient, rawUrl, startTestServer, type Received } from './helpers.ts';
import { V1Client, type ReplyFrame } from './v1-helpers.ts';
import { Opcode, RawSocket, closePayload, encodeFrame, upgradeRequest, type HttpHead } from './raw-socket.ts';

/** An app with a 1 KiB message limit (v1 frames may be up to ceil(1024·4/3)+4096 = 5462 bytes). */
const SMALL_APP = { id: 'small', key: 'small-key-123', secret: 'small-secret-0123456789' } as const;
const SMALL_LIMIT = 1024;
/** ws 8.23 defaults, which Chorus does not override. */
const WS_MAX_FRAGMENTS = 16_384;
const WS_MAX_PENDING_AUTO_PONGS = 60;

// Rate limits have their own tests; here a flood must meet the framing and resource defences.
const BASE_CONFIG: ChorusConfigInput = {
  limits: { messagesPerSecond: 0 },
  apps: [{ ...TEST_APP }, { ...SMALL_APP, limits: { maxMessageSize: SMALL_LIMIT } }],
};

let server: ChorusServer;
const servers: ChorusServer[] = [];
const sockets: RawSocket[] = [];
const clients: TestClient[] = [];
let channelCount = 0;

before(async () => {
  server = await startTestServer(BASE_CONFIG);
  servers.push(server);
});
afterEach(() => {
  for (const socket of sockets.splice(0)) socket.destroy();
  for (const client of clients.splice(0)) client.ws.terminate();
});
after(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

function newChannel(): string {
  return `attack_${++channelCount}`;
}

async function serverWith(overrides: ChorusConfigInput): Promise<ChorusServer> {
  const extra = await startTestServer({ ...BASE_CONFIG, ...overrides });
  servers.push(extra);
  return extra;
}

async function openClient(url: string): Promise<TestClient> {
  const client = new TestClient(url);
  clients.push(client);
  await client.opened(3000);
  return client;
}

async function connectRaw(on: ChorusServer = server): Promise<RawSocket> {
  const raw = await RawSocket.connect(on.port);
  sockets.push(raw);
  return raw;
}

async function upgradeRaw(path: string, on: ChorusServer = server, headers: Record<string, string> = {}): Promise<RawSocket> {
  const raw = await RawSocket.upgrade(on.port, path, headers);
  sockets.push(raw);
  return raw;
}

function rawPath(channel: string, key: string = TEST_APP.key): string {
  return `/v4/${channel}?api_key=${key}`;
}

/**
 * Two clients on a channel, opened before an attack. `assertServing` proves the server still
 * works for them and for a newcomer, and that exactly `fromAttacker` reached them meanwhile.
 */
class Bystanders {
  readonly #url: string;
  readonly a: TestClient;
  readonly b: TestClient;

  private constructor(url: string, a: TestClient, b: TestClient) {
    this.#url = url;
    this.a = a;
    this.b = b;
  }

  static async open(on: ChorusServer, channel: string, key: string = TEST_APP.key): Promise<Bystanders> {
    const url = rawUrl(on, channel, `api_key=${key}`);
    return new Bystanders(url, await openClient(url), await openClient(url));
  }

  /** Strings are expected text frames, Buffers binary frames, in order. */
  async assertServing(fromAttacker: ReadonlyArray<string | Buffer> = []): Promise<void> {
    const newcomer = await openClient(this.#url);
    const token = `still-serving-${Math.random().toString(36).slice(2)}`;
    this.a.ws.send(token);
    const isToken = (r: Received): boolean => !r.binary && r.text === token;
    await this.b.until(() => this.b.received.some(isToken), 'the bystander relay after the attack', 3000);
    await newcomer.until(() => newcomer.received.some(isToken), 'the newcomer to get the relay', 3000);
    const expected = fromAttacker.map((m) => (typeof m === 'string' ? { binary: false, data: Buffer.from(m) } : { binary: true, data: m }));
    const strays = (r: Received[]): Array<{ binary: boolean; data: Buffer }> => r.filter((m) => !isToken(m)).map((m) => ({ binary: m.binary, data: m.data }));
    assert.deepEqual(strays(this.b.received), expected, 'what bystander b got from the attacker');
    assert.deepEqual(strays(this.a.received), expected, 'what bystander a got from the attacker');
    assert.equal(this.a.closeCode, undefined, 'bystander a is still open');
    assert.equal(this.b.closeCode, undefined, 'bystander b is still open');
  }
}

/**
 * The server's only frame is a close with `code` (undefined: an empty close payload) and
 * `reason` (default none), and then it ends the TCP connection.
 */
async function assertClosedWith(raw: RawSocket, code: number | undefined, reason = ''): Promise<void> {
  const close = await raw.closeFrame(2000);
  assert.equal(close.code, code, 'close code');
  assert.equal(close.reason.toString('utf8'), reason, 'close reason');
  assert.deepEqual(
    raw.frames.map((f) => f.opcode),
    [Opcode.CLOSE],
    'the server sent nothing but its close frame',
  );
  const tcp = await raw.closed(2000);
  assert.equal(tcp.sawEnd, true, 'the server ended the TCP connection (FIN)');
}

/** Sends `request` on a fresh TCP connection; returns the HTTP answer and how long it took. */
async function handshake(request: string, on: ChorusServer = server): Promise<{ head: HttpHead; ms: number }> {
  const raw = await connectRaw(on);
  const start = performance.now();
  raw.write(request);
  const head = await raw.response(2000);
  return { head, ms: performance.now() - start };
}

/** The answer is `status`, and the server closes the TCP connection. */
async function assertRefused(request: string, status: number, body?: string | RegExp): Promise<HttpHead> {
  const raw = await connectRaw();
  raw.write(request);
  const head = await raw.response(2000);
  assert.equal(head.status, status, `status (${head.statusLine} ${head.body})`);
  if (typeof body === 'string') assert.equal(head.body, body);
  else if (body) assert.match(head.body, body);
  await raw.closed(2000);
  assert.equal(raw.sawEnd, true, 'the server ended the TCP connection');
  return head;
}

describe('handshake attacks (A.12–A.14)', () => {
  it('POST with upgrade headers: 405, on both dialects, with a known or unknown key', async () => {
    const by = await Bystanders.open(server, newChannel());
    for (const path of [rawPath('c'), rawPath('c', 'unknown-key-1'), `/v1/connect?key=${TEST_APP.key}`]) {
      await assertRefused(upgradeRequest(path, {}, 'POST'), 405, 'Invalid HTTP method');
    }
    await by.assertServing();
  });

  it('missing or malformed Sec-WebSocket-Key: 400', async () => {
    const by = await Bystanders.open(server, newChannel());
    for (const key of [null, 'abc', 'A'.repeat(4000), 'dGhlIHNhbXBsZSBub25jZQ=', '!!!!!!!!!!!!!!!!!!!!!!==']) {
      await assertRefused(upgradeRequest(rawPath('c'), { 'Sec-WebSocket-Key': key }), 400, 'Missing or invalid Sec-WebSocket-Key header');
    }
    await by.assertServing();
  });

  it('Sec-WebSocket-Version 12 (or none): 400 with Sec-WebSocket-Version: 13, 8', async () => {
    const by = await Bystanders.open(server, newChannel());
    for (const version of ['12', null, '14', 'abc']) {
      const head = await assertRefused(upgradeRequest(rawPath('c'), { 'Sec-WebSocket-Version': version }), 400, 'Missing or invalid Sec-WebSocket-Version header');
      assert.equal(head.headers['sec-websocket-version'], '13, 8');
    }
    await by.assertServing();
  });

  it('an upgrade on an unknown path: 404 with a JSON error, from Chorus itself', async () => {
    const by = await Bystanders.open(server, newChannel());
    for (const path of ['/nope/c', '/v4/a/b?api_key=test-key-123', '/v2/c', '/v1/connectx', '/']) {
      const head = await assertRefused(upgradeRequest(path), 404);
      assert.deepEqual(JSON.parse(head.body), { error: 'No such path.', code: 'not_found' });
    }
    await by.assertServing();
  });

  it('2100 headers before the upgrade headers (CVE-2024-37890): 400, no crash; after them: still upgrades', async () => {
    const by = await Bystanders.open(server, newChannel());
    const junk = Array.from({ length: 2100 }, (_, i) => `x${i}: v`).join('\r\n');
    const first = `GET ${rawPath('c')} HTTP/1.1\r\nHost: 127.0.0.1\r\n${junk}\r\n` + upgradeRequest(rawPath('c')).split('\r\n').slice(2).join('\r\n');
    // Node keeps the first 2000 headers (maxHeadersCount); Upgrade and the key are dropped.
    await assertRefused(first, 400, 'Invalid Upgrade header');
    const last = `${upgradeRequest(rawPath('c')).slice(0, -2)}${junk}\r\n\r\n`;
    const { head } = await handshake(last);
    assert.equal(head.status, 101);
    await by.assertServing();
  });

  it('Sec-WebSocket-Protocol of 32k spaces (CVE-2021-32640): 400 in milliseconds', async () => {
    const by = await Bystanders.open(server, newChannel());
    const start = performance.now();
    await assertRefused(upgradeRequest(rawPath('c'), { 'Sec-WebSocket-Protocol': ' '.repeat(32_768) }), 400, 'Invalid Sec-WebSocket-Protocol header');
    assert.ok(performance.now() - start < 1000, `answered in ${Math.round(performance.now() - start)} ms`);
    await by.assertServing();
  });

  it('Sec-WebSocket-Protocol with 15k inner spaces is parsed in linear time; 20k overflows the 16 KiB header limit: 431', async () => {
    const by = await Bystanders.open(server, newChannel());
    const inner = await handshake(upgradeRequest(rawPath('c'), { 'Sec-WebSocket-Protocol': `a,${' '.repeat(15_000)}b` }));
    assert.equal(inner.head.status, 101);
    assert.ok(inner.ms < 1000, `answered in ${Math.round(inner.ms)} ms`);
    const start = performance.now();
    await assertRefused(upgradeRequest(rawPath('c'), { 'Sec-WebSocket-Protocol': `a,${' '.repeat(20_000)}b` }), 431);
    assert.ok(performance.now() - start < 1000, `answered in ${Math.round(performance.now() - start)} ms`);
    await by.assertServing();
  });

  it('Sec-WebSocket-Extensions: constructor / __proto__ (GHSA-5v72-xg48-5rpm): ignored, 101 without extensions, the socket works', async () => {
    const channel = newChannel();
    const by = await Bystanders.open(server, channel);
    for (const [i, offer] of ['constructor', '__proto__; constructor=1', 'hasOwnProperty, toString; x'].entries()) {
      const raw = await upgradeRaw(rawPath(channel), server, { 'Sec-WebSocket-Extensions': offer });
      assert.equal(raw.head?.headers['sec-websocket-extensions'], undefined);
      raw.write(encodeFrame({ opcode: Opcode.TEXT, payload: offer }));
      await by.b.until(() => by.b.received.length === i + 1, `relay of frame ${i + 1}`, 3000);
    }
    await by.assertServing(['constructor', '__proto__; constructor=1', 'hasOwnProperty, toString; x']);
  });

  it('slowloris: a request head dripped one header line per 200 ms gets 408 and a close at headersTimeoutMs', async () => {
    const slow = await serverWith({ headersTimeoutMs: 1000 });
    const by = await Bystanders.open(slow, newChannel());
    const raw = await connectRaw(slow);
    const start = performance.now();
    raw.write(`GET ${rawPath('c')} HTTP/1.1\r\nHost: 127.0.0.1\r\n`);
    let n = 0;
    const drip = setInterval(() => raw.write(`X-Drip-${++n}: a\r\n`), 200);
    try {
      const head = await raw.response(2500);
      await raw.closed(500);
      const ms = performance.now() - start;
      assert.equal(head.status, 408);
      assert.ok(ms >= 900 && ms < 2500, `closed after ${Math.round(ms)} ms`);
    } finally {
      clearInterval(drip);
    }
    await by.assertServing();
  });
});

/** Upgrades a raw socket on a fresh channel watched by two bystanders. */
async function attacker(key: string = TEST_APP.key): Promise<{ raw: RawSocket; by: Bystanders }> {
  const channel = newChannel();
  const by = await Bystanders.open(server, channel, key);
  const raw = await upgradeRaw(rawPath(channel, key));
  return { raw, by };
}

const text = (payload: Buffer | string, fin = true): Buffer => encodeFrame({ opcode: Opcode.TEXT, payload, fin });
const cont = (payload: Buffer | string, fin = true): Buffer => encodeFrame({ opcode: Opcode.CONTINUATION, payload, fin });
const bytes = (...values: number[]): Buffer => Buffer.from(values);

describe('oversized frames (B.15)', () => {
  const cases: Array<[string, bigint, string]> = [
    ['2^40 bytes', 2n ** 40n, TEST_APP.key],
    ['2^63 bytes (over 2^53 - 1)', 2n ** 63n, TEST_APP.key],
    ['maxMessageSize + 1 bytes', BigInt(SMALL_LIMIT + 1), SMALL_APP.key],
  ];
  for (const [name, length, key] of cases) {
    it(`a frame header announcing ${name}, payload never sent: close 1009 at once`, async () => {
      const { raw, by } = await attacker(key);
      const start = performance.now();
      raw.write(encodeFrame({ opcode: Opcode.BINARY, announcedLength: length }));
      await assertClosedWith(raw, 1009);
      assert.ok(performance.now() - start < 1000, `closed after ${Math.round(performance.now() - start)} ms`);
      await by.assertServing();
    });
  }

  it('fragments each under the limit but together over it: close 1009, nothing relayed', async () => {
    const { raw, by } = await attacker(SMALL_APP.key);
    const piece = Buffer.alloc(400, 0x61);
    raw.write(Buffer.concat([text(piece, false), cont(piece, false), cont(piece, true)]));
    await assertClosedWith(raw, 1009);
    await by.assertServing();
  });
});

describe('fragment and chunk floods (B.16, B.17)', () => {
  /** One text message of `count` one-byte fragments; `fin` on the last one. */
  function fragmentedMessage(count: number, fin: boolean, byte = 'x'): Buffer {
    const frames = [text(byte, false)];
    for (let i = 1; i < count; i++) frames.push(cont(byte, fin && i === count - 1));
    return Buffer.concat(frames);
  }

  it(`${WS_MAX_FRAGMENTS} one-byte fragments (the ws limit) are one message, relayed intact`, async () => {
    const { raw, by } = await attacker();
    await raw.writeAll(fragmentedMessage(WS_MAX_FRAGMENTS, true));
    await by.assertServing(['x'.repeat(WS_MAX_FRAGMENTS)]);
    assert.equal(raw.isClosed, false);
  });

  it(`${WS_MAX_FRAGMENTS + 1} one-byte fragments (FIN never set): close 1008, nothing relayed`, async () => {
    const { raw, by } = await attacker();
    await raw.writeAll(fragmentedMessage(WS_MAX_FRAGMENTS + 1, false));
    await assertClosedWith(raw, 1008);
    await by.assertServing();
  });

  it(`${WS_MAX_FRAGMENTS + 1} empty fragments: close 1008 (empty fragments count)`, async () => {
    const { raw, by } = await attacker();
    await raw.writeAll(fragmentedMessage(WS_MAX_FRAGMENTS + 1, false, ''));
    await assertClosedWith(raw, 1008);
    await by.assertServing();
  });

  it('one 2000-byte frame written one byte per write (no Nagle): relayed intact, connection stays', async () => {
    const { raw, by } = await attacker();
    const payload = Buffer.from(Array.from({ length: 2000 }, (_, i) => i % 251));
    const frame = encodeFrame({ opcode: Opcode.BINARY, payload });
    for (let i = 0; i < frame.length; i++) {
      if (!raw.write(frame.subarray(i, i + 1))) await raw.writeAll('');
      await nextTurn();
    }
    await by.assertServing([payload]);
    assert.equal(raw.isClosed, false);
  });
});

describe('framing violations (B.18)', () => {
  const fragmentedPing = encodeFrame({ opcode: Opcode.PING, payload: 'p', fin: false });
  const cases: Array<[string, Buffer, number]> = [
    ['an unmasked text frame', encodeFrame({ opcode: Opcode.TEXT, payload: 'hi', mask: false }), 1002],
    ['an unmasked ping', encodeFrame({ opcode: Opcode.PING, payload: 'hi', mask: false }), 1002],
    ...[4, 2, 1, 7].map((rsv): [string, Buffer, number] => [`RSV bits ${rsv.toString(2).padStart(3, '0')}`, encodeFrame({ opcode: Opcode.TEXT, payload: 'hi', rsv }), 1002]),
    ...[3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf].map((opcode): [string, Buffer, number] => [`reserved opcode 0x${opcode.toString(16)}`, encodeFrame({ opcode, payload: 'hi' }), 1002]),
    ['a ping with 126 payload bytes', encodeFrame({ opcode: Opcode.PING, payload: Buffer.alloc(126) }), 1002],
    ['a pong with 126 payload bytes', encodeFrame({ opcode: Opcode.PONG, payload: Buffer.alloc(126) }), 1002],
    ['a close with 126 payload bytes', encodeFrame({ opcode: Opcode.CLOSE, payload: closePayload(1000, 'r'.repeat(124)) }), 1002],
    ['a fragmented ping', fragmentedPing, 1002],
    ['a fragmented close', encodeFrame({ opcode: Opcode.CLOSE, payload: closePayload(1000), fin: false }), 1002],
    ['a continuation with nothing to continue', cont('x'), 1002],
    ['a non-final continuation with nothing to continue', cont('x', false), 1002],
    ['a text frame inside a fragmented text message', Buffer.concat([text('a', false), text('b')]), 1002],
    ['a binary frame inside a fragmented text message', Buffer.concat([text('a', false), encodeFrame({ opcode: Opcode.BINARY, payload: 'b' })]), 1002],
    ['a fragmented ping inside a fragmented message', Buffer.concat([text('a', false), fragmentedPing]), 1002],
    ['a close with a 1-byte payload', encodeFrame({ opcode: Opcode.CLOSE, payload: bytes(0x03) }), 1002],
    ...[0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535].map((code): [string, Buffer, number] => [
      `close code ${code}`,
      encodeFrame({ opcode: Opcode.CLOSE, payload: closePayload(code) }),
      1002,
    ]),
    ['a close reason that is not UTF-8', encodeFrame({ opcode: Opcode.CLOSE, payload: closePayload(1000, bytes(0x6f, 0x6b, 0xff)) }), 1007],
  ];
  for (const [name, frames, code] of cases) {
    it(`${name}: close ${code}, nothing relayed`, async () => {
      const { raw, by } = await attacker();
      raw.write(frames);
      await assertClosedWith(raw, code);
      await by.assertServing();
    });
  }

  for (const [code, reason] of [[1000, ''], [1001, 'bye'], [1014, ''], [3000, 'app'], [4999, 'last']] as const) {
    it(`a valid close ${code} is echoed and the connection ends`, async () => {
      const { raw, by } = await attacker();
      raw.write(encodeFrame({ opcode: Opcode.CLOSE, payload: closePayload(code, reason) }));
      await assertClosedWith(raw, code, reason);
      await by.assertServing();
    });
  }

  it('an empty close is answered with an empty close', async () => {
    const { raw, by } = await attacker();
    raw.write(encodeFrame({ opcode: Opcode.CLOSE }));
    await assertClosedWith(raw, undefined);
    await by.assertServing();
  });

  it('a ping between fragments is allowed: pong, then the whole message is relayed', async () => {
    const { raw, by } = await attacker();
    raw.write(Buffer.concat([text('ab', false), encodeFrame({ opcode: Opcode.PING, payload: 'mid' }), cont('cd', false), cont('ef')]));
    const pong = await raw.frame(Opcode.PONG);
    assert.equal(pong.payload.toString(), 'mid');
    await by.assertServing(['abcdef']);
  });
});

describe('UTF-8 (B.19)', () => {
  const invalid: Array<[string, Buffer]> = [
    ['byte 0xFF', text(bytes(0x61, 0xff))],
    ['an overlong "/" (C0 AF)', text(bytes(0xc0, 0xaf))],
    ['a UTF-16 surrogate (ED A0 80)', text(bytes(0xed, 0xa0, 0x80))],
    ['a code point above U+10FFFF (F4 90 80 80)', text(bytes(0xf4, 0x90, 0x80, 0x80))],
    ['a lone continuation byte', text(bytes(0x80))],
    ['a sequence cut off at the end', text(Buffer.concat([Buffer.from('κ'), bytes(0xce)]))],
    ['a bad continuation in the next fragment', Buffer.concat([text(Buffer.concat([Buffer.from('κό'), bytes(0xcf)]), false), cont(bytes(0x41))])],
    ['an invalid first fragment followed by valid ones', Buffer.concat([text(bytes(0xff), false), cont('ok', false), cont('ok')])],
    ['a sequence left open by the final, empty fragment', Buffer.concat([text(Buffer.concat([Buffer.from('κ'), bytes(0xce)]), false), cont('')])],
  ];
  for (const [name, frames] of invalid) {
    it(`text with ${name}: close 1007, nothing relayed`, async () => {
      const { raw, by } = await attacker();
      raw.write(frames);
      await assertClosedWith(raw, 1007);
      await by.assertServing();
    });
  }

  it('valid UTF-8 split inside code points across three fragments is relayed intact as text', async () => {
    const { raw, by } = await attacker();
    const message = Buffer.from('κόσμε😀', 'utf8');
    // Cuts inside ό (E1 | BD B9) and inside 😀 (F0 9F | 98 80).
    raw.write(Buffer.concat([text(message.subarray(0, 3), false), cont(message.subarray(3, 12), false), cont(message.subarray(12))]));
    await by.assertServing(['κόσμε😀']);
    assert.equal(raw.isClosed, false);
  });

  it('binary frames are not UTF-8 checked: invalid bytes are relayed as binary', async () => {
    const { raw, by } = await attacker();
    raw.write(encodeFrame({ opcode: Opcode.BINARY, payload: bytes(0xff, 0xc0, 0xaf) }));
    await by.assertServing([bytes(0xff, 0xc0, 0xaf)]);
  });
});

describe('compression (B.20)', () => {
  it('permessage-deflate offered: not negotiated, and a compressed (RSV1) frame is then a protocol error (1002)', async () => {
    const channel = newChannel();
    const by = await Bystanders.open(server, channel);
    const raw = await upgradeRaw(rawPath(channel), server, { 'Sec-WebSocket-Extensions': 'permessage-deflate; client_max_window_bits, permessage-deflate' });
    assert.equal(raw.head?.headers['sec-websocket-extensions'], undefined);
    raw.write(encodeFrame({ opcode: Opcode.TEXT, rsv: 4, payload: bytes(0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00) }));
    await assertClosedWith(raw, 1002);
    await by.assertServing();
  });
});

describe('ping flood (B.21)', () => {
  it('10k pings from a peer that does not read: terminated without a close frame after at most 60 pongs', async () => {
    const { raw, by } = await attacker();
    raw.socket.pause();
    const ping = encodeFrame({ opcode: Opcode.PING, payload: Buffer.alloc(125, 0x70) });
    for (let sent = 0; sent < 10_000 && !raw.isClosed && raw.errorCode === undefined; sent += 500) {
      raw.write(Buffer.concat(Array.from({ length: 500 }, () => ping)));
      await nextTurn();
    }
    raw.socket.resume();
    // Without the defence (ws maxPendingAutoPongs: 0) the socket stays open and all 10k pongs queue up.
    await raw.closed(3000);
    // Observed: ECONNRESET and no frame at all (ws terminate() with unread input makes the kernel reset).
    const pongs = raw.frames.filter((f) => f.opcode === Opcode.PONG).length;
    assert.ok(pongs <= WS_MAX_PENDING_AUTO_PONGS, `${pongs} pongs`);
    assert.deepEqual(raw.frames.filter((f) => f.opcode !== Opcode.PONG), [], 'terminated: no close frame, nothing else');
    assert.ok(raw.errorCode === 'ECONNRESET' || raw.sawEnd, `reset or FIN (error ${raw.errorCode ?? 'none'})`);
    await by.assertServing();
  });

  it('a burst of 50 pings from a reading peer is answered in full and the connection stays', async () => {
    const { raw, by } = await attacker();
    raw.write(Buffer.concat(Array.from({ length: 50 }, (_, i) => encodeFrame({ opcode: Opcode.PING, payload: `p${i}` }))));
    await raw.until(() => raw.frames.length >= 50, '50 pongs', 3000);
    assert.deepEqual(
      raw.frames.map((f) => `${f.opcode}:${f.payload.toString()}`),
      Array.from({ length: 50 }, (_, i) => `${Opcode.PONG}:p${i}`),
    );
    assert.equal(raw.isClosed, false);
    await by.assertServing();
  });
});

describe('close handshake never completed (B.23)', () => {
  const CLOSE_TIMEOUT_MS = 300;

  it(`a refused raw socket (unknown key, 4001) that ignores the close is cut after closeTimeoutMs`, async () => {
    const on = await serverWith({ closeTimeoutMs: CLOSE_TIMEOUT_MS });
    const channel = newChannel();
    const by = await Bystanders.open(on, channel);
    const raw = await upgradeRaw(rawPath(channel, 'unknown-key-1'), on);
    const close = await raw.closeFrame();
    assert.equal(close.code, 4001);
    const tcp = await raw.closed(CLOSE_TIMEOUT_MS + 2000);
    const cutAfter = (raw.closedAt ?? 0) - close.at;
    assert.ok(cutAfter >= CLOSE_TIMEOUT_MS - 100 && cutAfter < CLOSE_TIMEOUT_MS + 1000, `cut ${Math.round(cutAfter)} ms after the close frame`);
    assert.equal(tcp.sawEnd, true, 'FIN');
    await by.assertServing();
  });

  it('an accepted v1 socket (connect timeout, 4501) that ignores the close is cut after closeTimeoutMs; one that answers is closed at once', async () => {
    const on = await serverWith({ closeTimeoutMs: CLOSE_TIMEOUT_MS, connectTimeoutMs: 200 });
    const by = await Bystanders.open(on, newChannel());
    const ignoring = await upgradeRaw(`/v1/connect?key=${TEST_APP.key}`, on);
    const answering = await upgradeRaw(`/v1/connect?key=${TEST_APP.key}`, on);

    assert.equal((await answering.closeFrame(2000)).code, 4501);
    const answeredAt = performance.now();
    answering.write(encodeFrame({ opcode: Opcode.CLOSE, payload: closePayload(4501) }));
    await answering.closed(2000);
    const closedAfter = (answering.closedAt ?? 0) - answeredAt;
    assert.ok(closedAfter < CLOSE_TIMEOUT_MS - 100, `closed ${Math.round(closedAfter)} ms after the reply`);

    const close = await ignoring.closeFrame(2000);
    assert.equal(close.code, 4501);
    await ignoring.closed(CLOSE_TIMEOUT_MS + 2000);
    const cutAfter = (ignoring.closedAt ?? 0) - close.at;
    assert.ok(cutAfter >= CLOSE_TIMEOUT_MS - 100 && cutAfter < CLOSE_TIMEOUT_MS + 1000, `cut ${Math.round(cutAfter)} ms after the close frame`);
    await by.assertServing();
  });
});

describe('resource limits (C.24–C.27, as far as they exist)', () => {
  /** A v1 session on a raw socket: connect, then frames as the test builds them. */
  async function v1Raw(key: string): Promise<RawSocket> {
    const raw = await upgradeRaw(`/v1/connect?key=${key}`);
    raw.write(text(JSON.stringify({ id: 1, type: 'connect' })));
    await raw.until(() => raw.frames.some((f) => f.opcode === Opcode.TEXT && (JSON.parse(f.payload.toString()) as ReplyFrame).id === 1), 'the connect reply', 3000);
    return raw;
  }

  it('v1: a publish over maxMessageSize gets error 109 and the connection stays; a frame over the v1 frame limit closes 1009', async () => {
    const channel = newChannel();
    const by = await Bystanders.open(server, channel, SMALL_APP.key);
    const raw = await v1Raw(SMALL_APP.key);
    const publish = (id: number, data: string): Buffer => text(JSON.stringify({ id, type: 'publish', channel, data }));
    const reply = async (id: number): Promise<ReplyFrame> => {
      const isReply = (f: { opcode: number; payload: Buffer }): boolean => f.opcode === Opcode.TEXT && (JSON.parse(f.payload.toString()) as ReplyFrame).id === id;
      await raw.until(() => raw.frames.some(isReply), `reply ${id}`, 3000);
      return JSON.parse(raw.frames.find(isReply)?.payload.toString() ?? '') as ReplyFrame;
    };

    raw.write(publish(2, 'x'.repeat(SMALL_LIMIT)));
    assert.equal((await reply(2)).error?.code, 109, 'the JSON string is 1026 bytes with its quotes');
    raw.write(publish(3, 'y'.repeat(SMALL_LIMIT - 2)));
    assert.equal((await reply(3)).ok, true, 'exactly maxMessageSize is accepted');

    const frameLimit = Math.ceil((SMALL_LIMIT * 4) / 3) + 4096;
    raw.write(publish(4, 'z'.repeat(frameLimit)));
    const close = await raw.closeFrame(2000);
    assert.equal(close.code, 1009);
    await raw.closed(2000);
    // ws sends this close itself, so no v1 `disconnect` push precedes it (nor for 1002/1007).
    assert.deepEqual(
      raw.frames.map((f) => (f.opcode === Opcode.TEXT ? (JSON.parse(f.payload.toString()) as { id?: number; type?: string }).id ?? 'push' : `op${f.opcode}`)),
      [1, 2, 3, 'op8'],
    );
    // The raw bystanders got the accepted publication as PieSocket's envelope, nothing else.
    await by.assertServing([JSON.stringify({ event: 'message', data: 'y'.repeat(SMALL_LIMIT - 2) })]);
  });

  it('v1: 300 pipelined subscribes get exactly maxChannelsPerConnection (128) oks and error 107 for the rest; the connection still works', async () => {
    const channel = newChannel();
    const by = await Bystanders.open(server, channel);
    const v1 = await V1Client.connected(server);
    clients.push(v1.raw);
    const ids = Array.from({ length: 300 }, (_, i) => v1.send('subscribe', { channel: `${channel}_${i}` }));
    const last = ids[ids.length - 1] ?? 0;
    await v1.raw.until(() => v1.frames.some((f) => f['id'] === last), 'all 300 replies', 5000);
    const replies = ids.map((id) => v1.frames.find((f) => f['id'] === id) as unknown as ReplyFrame);
    assert.equal(replies.filter((r) => r.ok).length, 128);
    assert.deepEqual(new Set(replies.filter((r) => !r.ok).map((r) => r.error?.code)), new Set([107]));
    assert.equal(replies.slice(0, 128).every((r) => r.ok), true, 'the first 128 in order');

    // Below the limit again, channel-name abuse is refused by name.
    assert.equal((await v1.command('unsubscribe', { channel: `${channel}_0` })).ok, true);
    for (const bad of ['c'.repeat(201), 'kanał', 'a b', 'a/b', 'a#b', '']) {
      assert.equal((await v1.command('subscribe', { channel: bad })).error?.code, 102, `channel "${bad.slice(0, 20)}"`);
    }
    assert.equal((await v1.command('publish', { channel, data: 'after the flood' })).ok, true);
    await by.assertServing([JSON.stringify({ event: 'message', data: 'after the flood' })]);
  });
});
