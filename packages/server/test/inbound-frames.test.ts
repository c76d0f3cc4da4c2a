/**
 * Inbound framing conformance (RFC 6455 §5): every rule the server enforces on what clients
 * send, from a bare TCP socket that builds its own frames (raw-socket.ts). Written against the
 * behaviour of `ws`'s receiver (ws 8.23), which Chorus used for inbound frames until its own
 * parser (inbound.ts) replaced it; the close codes asserted here are the ones ws sent.
 *
 * Every case runs twice: all bytes in one write, and one byte per write (so a frame header,
 * a mask key, a length or a UTF-8 sequence is cut at every possible point between two reads).
 * What the attacker's frames relay is observed by a listener on the same channel.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { after, afterEach, before, describe, it } from 'node:test';
import { WebSocketServer } from 'ws';
import { InboundReader, takeInbound, type InboundSink } from '../src/inbound.ts';
import type { ChorusServer } from '../src/index.ts';
import { TEST_APP, TestClient, rawUrl, settle, startTestServer, wsBase } from './helpers.ts';
import { Opcode, RawSocket, closePayload, encodeFrame } from './raw-socket.ts';

/** Small enough to test the limit at its edge, large enough for a 64-bit length header. */
const LIMIT = 70_000;
const LIMITED_APP = { id: 'limited', key: 'limited-key-123', secret: 'limited-secret-0123456789' } as const;

let server: ChorusServer;
const sockets: RawSocket[] = [];
const clients: TestClient[] = [];
let channelCount = 0;

before(async () => {
  server = await startTestServer({
    limits: { messagesPerSecond: 0 },
    apps: [{ ...TEST_APP }, { ...LIMITED_APP, limits: { maxMessageSize: LIMIT } }],
  });
});
afterEach(() => {
  for (const socket of sockets.splice(0)) socket.destroy();
  for (const client of clients.splice(0)) client.ws.terminate();
});
after(async () => {
  await server.close();
});

const text = (payload: Buffer | string, fin = true): Buffer => encodeFrame({ opcode: Opcode.TEXT, payload, fin });
const binary = (payload: Buffer | string, fin = true): Buffer => encodeFrame({ opcode: Opcode.BINARY, payload, fin });
const cont = (payload: Buffer | string, fin = true): Buffer => encodeFrame({ opcode: Opcode.CONTINUATION, payload, fin });
const ping = (payload: Buffer | string = ''): Buffer => encodeFrame({ opcode: Opcode.PING, payload });
const close = (code: number, reason: Buffer | string = ''): Buffer => encodeFrame({ opcode: Opcode.CLOSE, payload: closePayload(code, reason) });
const bytes = (...values: number[]): Buffer => Buffer.from(values);

/** How a case's bytes reach the server. */
const WRITES = ['in one write', 'one byte per write'] as const;
type Writes = (typeof WRITES)[number];

interface Attack {
  raw: RawSocket;
  /** A client on the attacker's channel: whatever the attacker's frames relay. */
  listener: TestClient;
}

async function attack(key: string = TEST_APP.key): Promise<Attack> {
  const channel = `inbound_${++channelCount}`;
  const listener = new TestClient(rawUrl(server, channel, `api_key=${key}`));
  clients.push(listener);
  await listener.opened(3000);
  const raw = await RawSocket.upgrade(server.port, `/v4/${channel}?api_key=${key}`);
  sockets.push(raw);
  return { raw, listener };
}

async function send(raw: RawSocket, data: Buffer, writes: Writes): Promise<void> {
  if (writes === 'in one write') {
    raw.write(data);
    return;
  }
  for (let index = 0; index < data.length && !raw.isClosed; index++) {
    raw.write(data.subarray(index, index + 1));
    await nextTurn();
  }
}

/** Strings are expected text messages, Buffers binary ones, in order (waits for them, then a little longer for strays). */
async function assertRelayed(listener: TestClient, expected: ReadonlyArray<string | Buffer>): Promise<void> {
  if (expected.length > 0) await listener.until(() => listener.received.length >= expected.length, `${expected.length} relayed messages`, 3000);
  await settle(50);
  assert.deepEqual(
    listener.received.map((r) => ({ binary: r.binary, data: r.data })),
    expected.map((m) => (typeof m === 'string' ? { binary: false, data: Buffer.from(m) } : { binary: true, data: m })),
    'what the attacker relayed',
  );
}

/** The server's last frame is a close with `code` (undefined: an empty payload) and `reason`, and it ends the TCP connection. */
async function assertClosedWith(raw: RawSocket, code: number | undefined, reason: Buffer | string = ''): Promise<void> {
  const frame = await raw.closeFrame(3000);
  assert.equal(frame.code, code, 'close code');
  assert.deepEqual(frame.reason, Buffer.from(reason), 'close reason');
  const tcp = await raw.closed(3000);
  assert.equal(tcp.sawEnd, true, 'the server ended the TCP connection (FIN)');
}

interface Case {
  name: string;
  frames: Buffer;
  /** What the listener gets. */
  relayed: ReadonlyArray<string | Buffer>;
  /** The server's close code; undefined: the connection stays open. */
  closes?: number;
  key?: string;
}

const refused = (name: string, frames: Buffer, code: number, relayed: ReadonlyArray<string | Buffer> = []): Case => ({ name, frames, relayed, closes: code });

/** Every remainder of 4, and both sides of the native unmasking threshold. */
const UNMASK_LENGTHS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 1023, 1024];

function varied(length: number): Buffer {
  return Buffer.from(Array.from({ length }, (_, index) => (index * 37 + length) & 0xff));
}

const cases: Case[] = [
  // Fragmentation (§5.4)
  { name: 'a text message in three fragments', frames: Buffer.concat([text('ab', false), cont('cd', false), cont('ef')]), relayed: ['abcdef'] },
  { name: 'a binary message in two fragments', frames: Buffer.concat([binary(bytes(1, 2), false), cont(bytes(3))]), relayed: [bytes(1, 2, 3)] },
  { name: 'empty fragments around the payload', frames: Buffer.concat([text('', false), cont('x', false), cont('')]), relayed: ['x'] },
  { name: 'a ping and a pong between fragments', frames: Buffer.concat([text('a', false), ping('p'), encodeFrame({ opcode: Opcode.PONG, payload: 'q' }), cont('b')]), relayed: ['ab'] },
  refused('a continuation with nothing to continue', cont('x'), 1002),
  refused('a new text frame inside a fragmented message', Buffer.concat([text('a', false), text('b')]), 1002),
  refused('a binary frame inside a fragmented text message', Buffer.concat([text('a', false), binary('b')]), 1002),
  // Control frames (§5.5)
  refused('a fragmented ping', encodeFrame({ opcode: Opcode.PING, payload: 'p', fin: false }), 1002),
  refused('a fragmented close', encodeFrame({ opcode: Opcode.CLOSE, payload: closePayload(1000), fin: false }), 1002),
  refused('a fragmented ping inside a fragmented message', Buffer.concat([text('a', false), encodeFrame({ opcode: Opcode.PING, fin: false })]), 1002),
  refused('a ping of 126 bytes', ping(Buffer.alloc(126)), 1002),
  refused('a pong of 126 bytes (16-bit length)', encodeFrame({ opcode: Opcode.PONG, payload: Buffer.alloc(200) }), 1002),
  refused('a close of 126 bytes', close(1000, 'r'.repeat(124)), 1002),
  refused('a close with a 1-byte payload', encodeFrame({ opcode: Opcode.CLOSE, payload: bytes(0x03) }), 1002),
  // Close codes (§7.4)
  ...[0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535].map((code) => refused(`close code ${code}`, close(code), 1002)),
  refused('a close reason that is not UTF-8', close(1000, bytes(0x6f, 0xff)), 1007),
  refused('a close reason cut inside a code point', close(1000, Buffer.from('κ').subarray(0, 1)), 1007),
  // Payload data (§5.6, §8.1)
  refused('text with byte 0xFF', text(bytes(0x61, 0xff)), 1007),
  refused('text with an overlong encoding', text(bytes(0xc0, 0xaf)), 1007),
  refused('text with a surrogate', text(bytes(0xed, 0xa0, 0x80)), 1007),
  refused('text fragments that are UTF-8 only one by one, not together', Buffer.concat([text('κ', false), cont(bytes(0x80))]), 1007),
  refused('text whose last code point the final fragment leaves open', Buffer.concat([text(Buffer.from('κ').subarray(0, 1), false), cont('')]), 1007),
  { name: 'text with code points split across fragments', frames: Buffer.concat([text(Buffer.from('κό').subarray(0, 3), false), cont(Buffer.from('κό').subarray(3))]), relayed: ['κό'] },
  { name: 'binary that is not UTF-8', frames: binary(bytes(0xff, 0xfe)), relayed: [bytes(0xff, 0xfe)] },
  // Base framing (§5.2, §5.3)
  refused('an unmasked text frame', encodeFrame({ opcode: Opcode.TEXT, payload: 'hi', mask: false }), 1002),
  refused('an unmasked close', encodeFrame({ opcode: Opcode.CLOSE, payload: closePayload(1000), mask: false }), 1002),
  ...[1, 2, 4].map((rsv) => refused(`RSV bits ${rsv.toString(2).padStart(3, '0')}`, encodeFrame({ opcode: Opcode.TEXT, payload: 'hi', rsv }), 1002)),
  refused('RSV1 on a continuation', Buffer.concat([text('a', false), encodeFrame({ opcode: Opcode.CONTINUATION, payload: 'b', rsv: 4 })]), 1002),
  refused('RSV1 on a ping', encodeFrame({ opcode: Opcode.PING, rsv: 4 }), 1002),
  ...[3, 7, 0xb, 0xf].map((opcode) => refused(`reserved opcode 0x${opcode.toString(16)}`, encodeFrame({ opcode, payload: 'hi' }), 1002)),
  { name: 'a 16-bit length (300 bytes)', frames: text('y'.repeat(300)), relayed: ['y'.repeat(300)] },
  // Unmasking goes 4 bytes at a time, then the last 1–3; from 1,024 bytes on it is bufferutil's.
  { name: 'payloads of 0–9, 1,023 and 1,024 varied bytes, back to back', frames: Buffer.concat(UNMASK_LENGTHS.map((n) => binary(varied(n)))), relayed: UNMASK_LENGTHS.map(varied) },
  { name: 'three frames back to back', frames: Buffer.concat([text('1'), binary(bytes(2)), text('3')]), relayed: ['1', bytes(2), '3'] },
  { name: 'an all-zero mask key', frames: Buffer.concat([text('x').subarray(0, 2), Buffer.alloc(4), Buffer.from('zero')]).fill(0x84, 1, 2), relayed: ['zero'] },
  { name: 'an empty ping and an unsolicited pong', frames: Buffer.concat([ping(), encodeFrame({ opcode: Opcode.PONG }), text('after')]), relayed: ['after'] },
  refused('a message, then a reserved opcode in the same write', Buffer.concat([text('before'), encodeFrame({ opcode: 3 }), text('after')]), 1002, ['before']),
  // Limits (maxMessageSize → ws maxPayload)
  { name: 'a message of exactly maxMessageSize (64-bit length)', frames: binary(Buffer.alloc(LIMIT, 7)), relayed: [Buffer.alloc(LIMIT, 7)], key: LIMITED_APP.key },
  refused('a message of maxMessageSize + 1', binary(Buffer.alloc(LIMIT + 1)), 1009),
  refused('fragments over maxMessageSize together', Buffer.concat([binary(Buffer.alloc(LIMIT / 2), false), cont(Buffer.alloc(LIMIT / 2 + 1))]), 1009),
].map((c) => (c.closes === 1009 ? { ...c, key: LIMITED_APP.key } : c));

describe('inbound frames (RFC 6455 §5)', () => {
  for (const writes of WRITES) {
    describe(writes, () => {
      for (const c of cases) {
        // One byte per write of a 70 kB frame is 70k turns: the limit cases are in one write, or cut in three.
        const large = c.frames.length > 10_000;
        it(`${c.name}: ${c.closes === undefined ? 'relayed' : `close ${c.closes}`}`, async () => {
          const { raw, listener } = await attack(c.key);
          if (large && writes !== 'in one write') {
            for (const piece of [c.frames.subarray(0, 1), c.frames.subarray(1, 9), c.frames.subarray(9)]) {
              raw.write(piece);
              await nextTurn();
            }
          } else {
            await send(raw, c.frames, writes);
          }
          if (c.closes !== undefined) await assertClosedWith(raw, c.closes);
          await assertRelayed(listener, c.relayed);
          if (c.closes === undefined) assert.equal(raw.isClosed, false, 'the connection stays open');
        });
      }

      for (const [code, reason] of [[1000, ''], [1001, 'bye'], [1003, ''], [1007, ''], [1011, ''], [1014, ''], [3000, 'app'], [4999, 'κόσμε']] as const) {
        it(`a valid close ${code} is echoed (code and reason) and the connection ends`, async () => {
          const { raw } = await attack();
          await send(raw, close(code, reason), writes);
          await assertClosedWith(raw, code, reason);
        });
      }

      it('an empty close is answered with an empty close', async () => {
        const { raw } = await attack();
        await send(raw, encodeFrame({ opcode: Opcode.CLOSE }), writes);
        await assertClosedWith(raw, undefined);
      });

      it('messages, then a close in the same write: the messages are relayed, then the close is echoed; what follows the close is ignored', async () => {
        const { raw, listener } = await attack();
        await send(raw, Buffer.concat([text('one'), text('two'), close(1000, 'done'), text('ignored')]), writes);
        await assertClosedWith(raw, 1000, 'done');
        await assertRelayed(listener, ['one', 'two']);
      });

      it('pings are answered with pongs carrying their payload, in order, 125 bytes included', async () => {
        const { raw } = await attack();
        const payloads = ['', 'a', 'p'.repeat(125)];
        await send(raw, Buffer.concat(payloads.map((p) => ping(p))), writes);
        await raw.until(() => raw.frames.length >= payloads.length, 'three pongs', 3000);
        assert.deepEqual(
          raw.frames.map((f) => [f.opcode, f.payload.toString()]),
          payloads.map((p) => [Opcode.PONG, p]),
        );
        assert.equal(raw.isClosed, false);
      });
    });
  }

  it('100 frames in one write are relayed in order', async () => {
    const { raw, listener } = await attack();
    const messages = Array.from({ length: 100 }, (_, i) => `m${i}`);
    raw.write(Buffer.concat(messages.map((m) => text(m))));
    await assertRelayed(listener, messages);
  });

  it('a frame whose header, mask and payload arrive in separate reads, half a second apart', async () => {
    const { raw, listener } = await attack();
    const frame = text('slow');
    for (const piece of [frame.subarray(0, 1), frame.subarray(1, 4), frame.subarray(4)]) {
      raw.write(piece);
      await settle(150);
    }
    await assertRelayed(listener, ['slow']);
  });
});

describe('inbound frames reach every dialect', () => {
  it('Pusher: a fragmented pusher:ping written one byte per write gets pusher:pong; a reserved opcode closes 1002', async () => {
    const raw = await RawSocket.upgrade(server.port, `/app/${TEST_APP.key}?protocol=7`);
    sockets.push(raw);
    await raw.until(() => raw.frames.length >= 1, 'pusher:connection_established', 3000);
    const message = '{"event":"pusher:ping","data":{}}';
    await send(raw, Buffer.concat([text(message.slice(0, 10), false), cont(message.slice(10))]), 'one byte per write');
    await raw.until(() => raw.frames.some((f) => f.payload.toString().includes('pusher:pong')), 'pusher:pong', 3000);
    raw.write(encodeFrame({ opcode: 5 }));
    await assertClosedWith(raw, 1002);
  });

  it('v1: a fragmented command written one byte per write gets its reply; invalid UTF-8 closes 1007', async () => {
    const raw = await RawSocket.upgrade(server.port, `/v1/connect?key=${TEST_APP.key}`);
    sockets.push(raw);
    const command = JSON.stringify({ id: 7, type: 'connect' });
    await send(raw, Buffer.concat([text(command.slice(0, 5), false), cont(command.slice(5))]), 'one byte per write');
    await raw.until(() => raw.frames.some((f) => f.opcode === Opcode.TEXT && (JSON.parse(f.payload.toString()) as { id?: number }).id === 7), 'the reply to command 7', 3000);
    raw.write(text(bytes(0xff)));
    await assertClosedWith(raw, 1007);
  });

  it('the same socket path keeps working for a real ws client after all of the above', async () => {
    const client = await TestClient.open(`${wsBase(server)}/v4/after?api_key=${TEST_APP.key}`);
    clients.push(client);
    const other = await TestClient.open(`${wsBase(server)}/v4/after?api_key=${TEST_APP.key}`);
    clients.push(other);
    client.ws.send('still here');
    await other.until(() => other.received.some((r) => r.text === 'still here'), 'the relay', 3000);
  });
});

describe('takeInbound', () => {
  it("takes a real ws connection's input from ws (its internals are the ones inbound.ts relies on) and hands messages, pongs and the close to the sink", async () => {
    const http = createServer();
    const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
    const got: string[] = [];
    let taken: boolean | undefined;
    const warnings: string[] = [];
    http.on('upgrade', (req, socket, head) => {
      wss.handleUpgrade(req, socket, head, (ws) => {
        let reader: InboundReader | undefined;
        const sink: InboundSink = {
          received: (data, binary) => got.push(`${binary ? 'binary' : 'text'}:${data.toString()}`),
          ponged: () => got.push('pong'),
          peerClosing: () => got.push('closing'),
          readerFor: () => (reader ??= new InboundReader(sink, 1024, ws, socket)),
        };
        taken = takeInbound(ws, socket, sink, (message) => warnings.push(message));
        ws.on('message', () => got.push('ws saw a message'));
        ws.on('close', (code) => got.push(`closed:${code}`));
      });
    });
    http.listen(0, '127.0.0.1');
    await once(http, 'listening');
    const { port } = http.address() as AddressInfo;
    const client = await TestClient.open(`ws://127.0.0.1:${port}/`);
    clients.push(client);
    client.ws.send('hello');
    client.ws.send(Buffer.from('bytes'));
    client.ws.pong();
    client.ws.close(1000);
    await client.until(() => client.closeCode !== undefined, 'the close', 3000);
    await settle(50);
    assert.equal(taken, true, 'ws internals as expected');
    assert.deepEqual(warnings, []);
    assert.deepEqual(got, ['text:hello', 'binary:bytes', 'pong', 'closing', 'closed:1000']);
    assert.equal(client.closeCode, 1000);
    http.close();
  });
});
