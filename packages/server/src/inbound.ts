/**
 * Client-to-server WebSocket frames (RFC 6455 §5), read by Chorus itself once `ws` has completed
 * the handshake. Why not `ws`'s receiver: it is a Writable stream that takes each socket read
 * through the stream machinery, allocates a view for every header, mask and payload, and emits
 * two events per message (~1.5 µs of a ~3 µs ingress message). Here every frame of one socket
 * read is parsed in one pass, unmasked in place, and handed straight to the dialect.
 *
 * The rules are ws's (ws 8.23, defaults), with ws's close codes, so clients see no difference
 * (test/inbound-frames.test.ts): reserved bits and opcodes, unmasked frames, fragmented or
 * over-long control frames, invalid close codes → 1002; text or close reasons that are not
 * UTF-8 → 1007; a message over the app's limit → 1009 (as soon as the header announces it);
 * more than 16,384 fragments in a message or 262,144 reads of one unfinished frame → 1008.
 *
 * `ws` keeps the rest of the connection: the close handshake (a close frame received is handed
 * to its receiver's 'conclude', as ws's parser does), pongs to pings (with ws's cap on unanswered
 * pongs), the close timer and the 'close' event. That relies on two of ws's internals, checked
 * when a connection opens: `ws._receiver`, and ws's listener being the socket's only 'data'
 * listener. If either ever differs, ws keeps reading the connection itself (logged once).
 */
import { isUtf8 } from 'node:buffer';
import { createRequire } from 'node:module';
import type { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';

const { unmask: nativeUnmask } = createRequire(import.meta.url)('bufferutil') as { unmask: (buffer: Buffer, mask: Buffer) => void };

/** ws 8.23's defaults (maxFragments, maxBufferedChunks), which Chorus never changed. */
const MAX_FRAGMENTS = 16_384;
const MAX_BUFFERED_CHUNKS = 256 * 1024;
/**
 * From this payload length on, bufferutil unmasks faster than JavaScript. Below it, a call into
 * bufferutil costs more than the work (~120 ns per call; a 100-byte chat message takes ~30 ns
 * unmasked 4 bytes at a time through a DataView).
 */
const NATIVE_UNMASK_FROM = 1024;
/** The largest payload length JavaScript numbers hold exactly (ws refuses larger ones with 1009). */
const MAX_SAFE_HIGH_WORD = 2 ** 21 - 1;

const OPCODE_CONTINUATION = 0x0;
const OPCODE_TEXT = 0x1;
const OPCODE_BINARY = 0x2;
const OPCODE_CLOSE = 0x8;
const OPCODE_PING = 0x9;
const OPCODE_PONG = 0xa;

/** What the reader hands a connection. */
export interface InboundSink {
  /** A complete message (its fragments joined), UTF-8 checked when it is text. */
  received(data: Buffer, binary: boolean): void;
  ponged(): void;
  /** The peer's close frame arrived: write what is queued before ws answers it. */
  peerClosing(): void;
  /** The connection's reader for a read of `bytes` bytes (counted), created at its first read (an idle connection has none). */
  readerFor(bytes: number): InboundReader;
}

/** State that only exists while a frame or a fragmented message is unfinished (most connections: never). */
class Unfinished {
  /** Reads of an incomplete frame, and how many bytes the frame needs before it can be parsed further. */
  reads: Buffer[] = [];
  bytes = 0;
  needed = 0;
  /** The fragments of an unfinished message (their payloads, unmasked), with its opcode. */
  fragments: Buffer[] = [];
  fragmentBytes = 0;
  fragmentCount = 0;
  fragmentOpcode = 0;
}

/** One connection's inbound side: where messages go, the limit, and the ws internals that finish a close. */
export class InboundReader {
  readonly #sink: InboundSink;
  readonly #maxPayload: number;
  readonly #ws: WebSocket;
  readonly #receiver: Receiver;
  readonly #socket: Duplex;
  #unfinished: Unfinished | undefined;

  constructor(sink: InboundSink, maxPayload: number, ws: WebSocket, socket: Duplex) {
    this.#sink = sink;
    this.#maxPayload = maxPayload;
    this.#ws = ws;
    this.#receiver = receiverOf(ws) as Receiver; // checked by takeInbound
    this.#socket = socket;
  }

  read(chunk: Buffer): void {
    let data = chunk;
    const unfinished = this.#unfinished;
    if (unfinished && unfinished.reads.length > 0) {
      if (unfinished.reads.length >= MAX_BUFFERED_CHUNKS) {
        this.#fail(1008, 'Too many buffered chunks');
        return;
      }
      unfinished.reads.push(chunk);
      unfinished.bytes += chunk.length;
      if (unfinished.bytes < unfinished.needed) return;
      data = Buffer.concat(unfinished.reads, unfinished.bytes);
      unfinished.reads = [];
      unfinished.bytes = 0;
    }
    let offset = 0;
    while (offset < data.length) {
      const next = this.#frame(data, offset);
      if (next < 0) return; // closed or failed: nothing after this frame is read
      if (next === offset) return this.#wait(data.subarray(offset));
      offset = next;
    }
    if (this.#unfinished?.fragmentCount === 0) this.#unfinished = undefined;
  }

  /** Keeps the start of an incomplete frame until `needed` bytes are there (set by #frame). */
  #wait(rest: Buffer): void {
    const unfinished = (this.#unfinished ??= new Unfinished());
    unfinished.reads.push(rest);
    unfinished.bytes = rest.length;
  }

  #needs(bytes: number, at: number): number {
    (this.#unfinished ??= new Unfinished()).needed = bytes;
    return at;
  }

  /**
   * Parses the frame at `at`: returns where the next one starts, `at` itself when the frame is
   * not all there yet (with the bytes it needs noted), or -1 when reading must stop.
   */
  #frame(data: Buffer, at: number): number {
    const available = data.length - at;
    if (available < 2) return this.#needs(2, at);
    const b0 = data[at] as number;
    const b1 = data[at + 1] as number;
    const fin = (b0 & 0x80) !== 0;
    let opcode = b0 & 0x0f;
    let length = b1 & 0x7f;
    // The checks and their order are ws's, so the same frame gets the same close code.
    if ((b0 & 0x30) !== 0) return this.#fail(1002, 'Invalid WebSocket frame: RSV2 and RSV3 must be clear');
    if ((b0 & 0x40) !== 0) return this.#fail(1002, 'Invalid WebSocket frame: RSV1 must be clear');
    const fragmentOpcode = this.#unfinished?.fragmentOpcode ?? 0;
    if (opcode === OPCODE_CONTINUATION) {
      if (fragmentOpcode === 0) return this.#fail(1002, 'Invalid WebSocket frame: invalid opcode 0');
      opcode = fragmentOpcode;
    } else if (opcode === OPCODE_TEXT || opcode === OPCODE_BINARY) {
      if (fragmentOpcode !== 0) return this.#fail(1002, `Invalid WebSocket frame: invalid opcode ${opcode}`);
    } else if (opcode >= OPCODE_CLOSE && opcode <= OPCODE_PONG) {
      if (!fin) return this.#fail(1002, 'Invalid WebSocket frame: FIN must be set');
      if (length > 125 || (opcode === OPCODE_CLOSE && length === 1)) return this.#fail(1002, `Invalid WebSocket frame: invalid payload length ${length}`);
    } else {
      return this.#fail(1002, `Invalid WebSocket frame: invalid opcode ${opcode}`);
    }
    if ((b1 & 0x80) === 0) return this.#fail(1002, 'Invalid WebSocket frame: MASK must be set');

    let header = 2;
    if (length === 126) {
      if (available < 4) return this.#needs(4, at);
      length = data.readUInt16BE(at + 2);
      header = 4;
    } else if (length === 127) {
      if (available < 10) return this.#needs(10, at);
      const high = data.readUInt32BE(at + 2);
      if (high > MAX_SAFE_HIGH_WORD) return this.#fail(1009, 'Unsupported WebSocket frame: payload length > 2^53 - 1');
      length = high * 2 ** 32 + data.readUInt32BE(at + 6);
      header = 10;
    }
    if (opcode < OPCODE_CLOSE && length > 0 && (this.#unfinished?.fragmentBytes ?? 0) + length > this.#maxPayload && this.#maxPayload > 0) {
      return this.#fail(1009, 'Max payload size exceeded');
    }
    const start = at + header + 4;
    const end = start + length;
    if (data.length < end) return this.#needs(end - at, at);

    unmask(data, start, length, start - 4);
    const payload = data.subarray(start, end);
    if (opcode >= OPCODE_CLOSE) return this.#control(opcode, payload) ? end : -1;
    return this.#data(opcode, fin, payload) ? end : -1;
  }

  /** A data frame: a whole message, or one fragment of one. False when reading must stop. */
  #data(opcode: number, fin: boolean, payload: Buffer): boolean {
    let message = payload;
    const unfinished = this.#unfinished;
    if (unfinished && unfinished.fragmentOpcode !== 0) {
      if (++unfinished.fragmentCount > MAX_FRAGMENTS) {
        this.#fail(1008, 'Too many message fragments');
        return false;
      }
      if (payload.length > 0) unfinished.fragments.push(payload);
      unfinished.fragmentBytes += payload.length;
      if (!fin) return true;
      const { fragments } = unfinished;
      message = fragments.length === 1 ? (fragments[0] as Buffer) : Buffer.concat(fragments, unfinished.fragmentBytes);
      unfinished.fragments = [];
      unfinished.fragmentBytes = 0;
      unfinished.fragmentCount = 0;
      unfinished.fragmentOpcode = 0;
    } else if (!fin) {
      const started = (this.#unfinished ??= new Unfinished());
      started.fragmentOpcode = opcode;
      started.fragmentCount = 1;
      if (payload.length > 0) started.fragments.push(payload);
      started.fragmentBytes = payload.length;
      return true;
    }
    const binary = opcode === OPCODE_BINARY;
    if (!binary && !isUtf8(message)) {
      this.#fail(1007, 'Invalid WebSocket frame: invalid UTF-8 sequence');
      return false;
    }
    this.#sink.received(message, binary);
    return true;
  }

  /** A ping, pong or close. False when reading must stop (after a close, or a bad one). */
  #control(opcode: number, payload: Buffer): boolean {
    if (opcode === OPCODE_PONG) {
      this.#sink.ponged();
      return true;
    }
    if (opcode === OPCODE_PING) {
      // ws answers it (and ends a peer with more than 60 pongs unsent).
      this.#receiver.emit('ping', payload);
      return true;
    }
    let code = 1005;
    let reason = payload;
    if (payload.length > 0) {
      code = payload.readUInt16BE(0);
      if (!isValidCloseCode(code)) {
        this.#fail(1002, `Invalid WebSocket frame: invalid status code ${code}`);
        return false;
      }
      reason = payload.subarray(2);
      if (!isUtf8(reason)) {
        this.#fail(1007, 'Invalid WebSocket frame: invalid UTF-8 sequence');
        return false;
      }
    }
    this.#stop();
    this.#sink.peerClosing();
    // ws's own parser does exactly this: ws echoes the close and ends the socket; once the socket
    // has closed, the finished receiver lets ws emit 'close'.
    this.#receiver.emit('conclude', code, reason);
    this.#receiver.end();
    return false;
  }

  /**
   * A protocol violation: what ws does on its receiver's error. The close frame carries the code
   * only; the socket ends right after it (the peer's answer would not be read); ws's 'error'
   * event carries the message (the connection registry logs it).
   */
  #fail(code: number, message: string): -1 {
    this.#stop();
    const ws = this.#ws;
    ws.close(code);
    this.#socket.end();
    if (ws.listenerCount('error') > 0) ws.emit('error', Object.assign(new RangeError(message), { closeCode: code }));
    return -1;
  }

  #stop(): void {
    this.#unfinished = undefined;
    this.#socket.removeListener('data', onSocketData);
    // Unread input is discarded from now on, as ws does.
    process.nextTick(resume, this.#socket);
  }
}

const SINK = Symbol('chorus.inbound');

/**
 * One 'data' listener for every socket: a closure per socket, like the reader itself, would
 * cost memory on every idle connection.
 */
function onSocketData(this: Duplex & { [SINK]?: InboundSink }, chunk: Buffer): void {
  this[SINK]?.readerFor(chunk.length).read(chunk);
}

function resume(socket: Duplex): void {
  socket.resume();
}

/** ws's receiver, which still finishes the close handshake (see the top of this file). */
type Receiver = EventEmitter & { end(): void };

function receiverOf(ws: WebSocket): Receiver | undefined {
  return (ws as unknown as { _receiver?: Receiver })._receiver;
}

let fallbackLogged = false;

/**
 * Takes the inbound side of an accepted socket from ws: from now on its frames go to `sink`.
 * Returns false, changing nothing, when ws's internals are not the ones this relies on (ws then
 * keeps reading; the caller listens to its events instead).
 */
export function takeInbound(ws: WebSocket, socket: Duplex, sink: InboundSink, warn: (message: string) => void): boolean {
  const receiver = receiverOf(ws);
  const listeners = socket.listeners('data');
  if (!receiver || typeof receiver.end !== 'function' || receiver.listenerCount('conclude') !== 1 || listeners.length !== 1) {
    if (!fallbackLogged) warn('ws internals changed: inbound frames are read by ws (slower); see inbound.ts');
    fallbackLogged = true;
    return false;
  }
  socket.removeListener('data', listeners[0] as (chunk: Buffer) => void);
  (socket as Duplex & { [SINK]?: InboundSink })[SINK] = sink;
  socket.on('data', onSocketData);
  return true;
}

/** ws's rule: 1000–1014 except 1004–1006 (reserved, never sent), and 3000–4999. */
function isValidCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999);
}

/**
 * A DataView over the read being parsed, made for its first frame and kept for the others: one
 * per read rather than one per frame. It keeps only the last read alive.
 */
let viewedRead: Buffer | undefined;
let readView: DataView | undefined;

function viewOf(data: Buffer): DataView {
  if (data !== viewedRead || readView === undefined) {
    viewedRead = data;
    readView = new DataView(data.buffer, data.byteOffset, data.byteLength);
  }
  return readView;
}

/** The key of the frame being unmasked natively: one buffer for all, so no frame allocates one. */
const nativeKey = Buffer.alloc(4);

/** XORs the `length` bytes at data[start] in place with the 4-byte key at data[keyAt]. */
function unmask(data: Buffer, start: number, length: number, keyAt: number): void {
  if (length === 0) return;
  const view = viewOf(data);
  const key = view.getInt32(keyAt, true);
  if (key === 0) return;
  if (length >= NATIVE_UNMASK_FROM) {
    nativeKey.writeInt32LE(key, 0);
    return nativeUnmask(data.subarray(start, start + length), nativeKey);
  }
  // Four bytes at a time (the key read little-endian, so byte i meets key byte i % 4), then the
  // last one to three.
  const whole = start + (length & ~3);
  for (let at = start; at < whole; at += 4) view.setInt32(at, view.getInt32(at, true) ^ key, true);
  for (let at = whole, shift = 0; at < start + length; at++, shift += 8) view.setUint8(at, view.getUint8(at) ^ ((key >>> shift) & 0xff));
}
