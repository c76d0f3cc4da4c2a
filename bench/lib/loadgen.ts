/**
 * The load generator's building blocks: WebSocket clients on raw `net` sockets, cheap enough
 * that thousands of them cost far less than the server under test (a `ws` client object costs
 * ~8 KB and parses every message in full).
 *
 * - RawWebSocket does the HTTP upgrade itself, then only counts incoming frames with a minimal
 *   header parser (FrameCounter); it never assembles a message.
 * - Every socket reads into one shared buffer (net's `onread`), so reading allocates nothing.
 * - Publisher writes pre-built masked frames (a fixed mask: servers do not check randomness) in
 *   batches, under a flow-control window measured by what the subscribers have received.
 */
import { connect, type Socket } from 'node:net';

export interface Endpoint {
  host: string;
  port: number;
  /** Path and query string, e.g. `/v4/bench?api_key=…`. */
  path: string;
}

/** Shared by all sockets: `onread` callbacks run one at a time and consume it synchronously. */
const READ_BUFFER = new Uint8Array(256 * 1024);
const HANDSHAKE_TIMEOUT_MS = 10_000;
const MAX_RESPONSE_HEAD = 16 * 1024;
const FIXED_MASK = [0x37, 0xfa, 0x21, 0x3d] as const;

/**
 * Counts the data messages in a stream of WebSocket frames from a server (RFC 6455 §5.2):
 * reads only the 2-, 4- or 10-byte header of each frame and skips its payload, across chunk
 * boundaries. Control frames (ping, pong, close) are counted separately.
 */
export class FrameCounter {
  /** Final frames of text/binary messages: one per message. */
  messages = 0;
  controlFrames = 0;
  closeReceived = false;
  /** Payload bytes of the current frame that have not arrived yet. */
  #skip = 0;
  /** An incomplete frame header left at the end of the previous chunk. */
  #carry: Buffer | undefined;

  /** Feeds `length` bytes of `chunk`; returns how many messages they completed. */
  push(chunk: Uint8Array, length: number): number {
    let buf = chunk;
    let end = length;
    let i = 0;
    if (this.#carry) {
      buf = Buffer.concat([this.#carry, chunk.subarray(0, length)]);
      end = buf.length;
      this.#carry = undefined;
    } else if (this.#skip > 0) {
      if (this.#skip >= end) {
        this.#skip -= end;
        return 0;
      }
      i = this.#skip;
      this.#skip = 0;
    }

    let messages = 0;
    while (i < end) {
      const available = end - i;
      if (available < 2) break;
      const b0 = buf[i]!;
      const b1 = buf[i + 1]!;
      const length7 = b1 & 0x7f;
      const headerLength = 2 + (length7 === 126 ? 2 : length7 === 127 ? 8 : 0) + (b1 & 0x80 ? 4 : 0);
      if (available < headerLength) break;
      const payloadLength =
        length7 < 126 ? length7 : length7 === 126 ? (buf[i + 2]! << 8) | buf[i + 3]! : uint32(buf, i + 2) * 2 ** 32 + uint32(buf, i + 6);
      const opcode = b0 & 0x0f;
      if (opcode >= 0x8) {
        this.controlFrames++;
        if (opcode === 0x8) this.closeReceived = true;
      } else if (b0 & 0x80) {
        messages++;
      }
      i += headerLength + payloadLength;
    }
    if (i > end) this.#skip = i - end;
    else if (i < end) this.#carry = Buffer.from(buf.subarray(i, end));
    this.messages += messages;
    return messages;
  }
}

function uint32(buf: Uint8Array, offset: number): number {
  return buf[offset]! * 2 ** 24 + ((buf[offset + 1]! << 16) | (buf[offset + 2]! << 8) | buf[offset + 3]!);
}

/** A client-to-server text frame, masked with a fixed key. Build once, write many times. */
export function maskedTextFrame(payload: Buffer): Buffer {
  const length = payload.length;
  const extended = length < 126 ? 0 : length < 65536 ? 2 : 8;
  const out = Buffer.allocUnsafe(2 + extended + 4 + length);
  out[0] = 0x81; // FIN + text
  if (extended === 0) {
    out[1] = 0x80 | length;
  } else if (extended === 2) {
    out[1] = 0x80 | 126;
    out.writeUInt16BE(length, 2);
  } else {
    out[1] = 0x80 | 127;
    out.writeBigUInt64BE(BigInt(length), 2);
  }
  const maskAt = 2 + extended;
  for (let k = 0; k < 4; k++) out[maskAt + k] = FIXED_MASK[k as 0 | 1 | 2 | 3];
  for (let k = 0; k < length; k++) out[maskAt + 4 + k] = payload[k]! ^ FIXED_MASK[(k & 3) as 0 | 1 | 2 | 3];
  return out;
}

/** An ASCII JSON text of exactly `size` bytes (or a run of 'x' when `size` is too small for JSON). */
export function textPayload(size: number): Buffer {
  const head = '{"event":"bench","data":"';
  const tail = '"}';
  if (size < head.length + tail.length) return Buffer.from('x'.repeat(size));
  return Buffer.from(head + 'x'.repeat(size - head.length - tail.length) + tail);
}

/** A WebSocket client that can only send pre-built frames and count what it receives. */
export class RawWebSocket {
  readonly socket: Socket;
  readonly frames = new FrameCounter();
  readonly #onMessages: ((count: number) => void) | undefined;
  #upgraded = false;
  #head = '';
  #settle: ((error?: Error) => void) | undefined;

  private constructor(endpoint: Endpoint, onMessages: ((count: number) => void) | undefined) {
    this.#onMessages = onMessages;
    this.socket = connect({ host: endpoint.host, port: endpoint.port, noDelay: true, onread: { buffer: READ_BUFFER, callback: this.#onRead } });
    this.socket.on('connect', () => {
      this.socket.write(
        `GET ${endpoint.path} HTTP/1.1\r\nHost: ${endpoint.host}:${endpoint.port}\r\n` +
          'Upgrade: websocket\r\nConnection: Upgrade\r\n' +
          'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
      );
    });
  }

  /** Connects and completes the upgrade. `onMessages` is called with each batch of messages counted. */
  static connect(endpoint: Endpoint, onMessages?: (count: number) => void): Promise<RawWebSocket> {
    const ws = new RawWebSocket(endpoint, onMessages);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => settle(new Error(`WebSocket handshake timed out after ${HANDSHAKE_TIMEOUT_MS} ms`)), HANDSHAKE_TIMEOUT_MS);
      const settle = (error?: Error): void => {
        if (!ws.#settle) return;
        ws.#settle = undefined;
        clearTimeout(timer);
        if (error) {
          ws.socket.destroy();
          reject(error);
        } else {
          resolve(ws);
        }
      };
      ws.#settle = settle;
      ws.socket.on('error', (error) => settle(error));
      ws.socket.on('close', () => settle(new Error('connection closed during the WebSocket handshake')));
    });
  }

  get closed(): boolean {
    return this.socket.destroyed || this.frames.closeReceived;
  }

  /** Writes bytes as they are (pre-built, masked frames). Returns false when the socket buffers. */
  send(frames: Buffer): boolean {
    return this.socket.write(frames);
  }

  close(): void {
    this.socket.destroy();
  }

  readonly #onRead = (length: number, buffer: Uint8Array): boolean => {
    if (this.#upgraded) {
      const messages = this.frames.push(buffer, length);
      if (messages > 0) this.#onMessages?.(messages);
      return true;
    }
    this.#head += Buffer.from(buffer.buffer, buffer.byteOffset, length).toString('latin1');
    const headEnd = this.#head.indexOf('\r\n\r\n');
    if (headEnd < 0) {
      if (this.#head.length > MAX_RESPONSE_HEAD) this.#settle?.(new Error('oversized handshake response'));
      return true;
    }
    const statusLine = this.#head.slice(0, this.#head.indexOf('\r\n'));
    if (!/^HTTP\/1\.1 101\b/.test(statusLine)) {
      this.#settle?.(new Error(`upgrade refused: ${statusLine}`));
      return true;
    }
    this.#upgraded = true;
    const rest = Buffer.from(this.#head.slice(headEnd + 4), 'latin1');
    this.#head = '';
    this.#settle?.();
    if (rest.length > 0) {
      const messages = this.frames.push(rest, rest.length);
      if (messages > 0) this.#onMessages?.(messages);
    }
    return true;
  };
}

/** Many subscribers on one endpoint, with one running total of messages received. */
export class SubscriberPool {
  readonly clients: RawWebSocket[] = [];
  /** Messages received by all subscribers together (a message counts once per subscriber). */
  delivered = 0;
  /** Called after every read that completed at least one message. */
  onDelivery: (() => void) | undefined;

  readonly #count = (messages: number): void => {
    this.delivered += messages;
    this.onDelivery?.();
  };

  /** Opens `count` subscribers, `concurrency` handshakes at a time. */
  static async open(endpoint: Endpoint, count: number, concurrency = 64): Promise<SubscriberPool> {
    const pool = new SubscriberPool();
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < count) {
        next++;
        pool.clients.push(await RawWebSocket.connect(endpoint, pool.#count));
      }
    };
    try {
      await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
    } catch (error) {
      pool.close();
      throw error;
    }
    return pool;
  }

  get size(): number {
    return this.clients.length;
  }

  /** Subscribers whose connection has closed (or that were sent a close frame). */
  get closedCount(): number {
    let closed = 0;
    for (const client of this.clients) if (client.closed) closed++;
    return closed;
  }

  /** Fewest and most messages any one subscriber has received. */
  spread(): { min: number; max: number } {
    let min = Infinity;
    let max = 0;
    for (const client of this.clients) {
      min = Math.min(min, client.frames.messages);
      max = Math.max(max, client.frames.messages);
    }
    return { min: this.clients.length ? min : 0, max };
  }

  close(): void {
    for (const client of this.clients) client.close();
  }
}

export interface PublisherOptions {
  /** Payload of every message (all messages are the same bytes). */
  payload: Buffer;
  /** Frames per write. */
  batch: number;
  /**
   * Flow control: at most this many messages published but not yet received by the average
   * subscriber. Keeps the server saturated without letting queues grow without bound.
   */
  window: number;
}

/**
 * Publishes at saturation: whenever subscribers report progress, it tops the window up with
 * whole batches, once per event-loop turn.
 */
export class Publisher {
  /** Messages written so far. */
  sent = 0;
  readonly #ws: RawWebSocket;
  readonly #subscribers: SubscriberPool;
  readonly #batchFrames: Buffer;
  readonly #batch: number;
  readonly #window: number;
  #running = false;
  #scheduled = false;
  #timer: NodeJS.Timeout | undefined;

  constructor(ws: RawWebSocket, subscribers: SubscriberPool, options: PublisherOptions) {
    if (options.window < options.batch) throw new Error('the window must hold at least one batch');
    this.#ws = ws;
    this.#subscribers = subscribers;
    const frame = maskedTextFrame(options.payload);
    this.#batchFrames = Buffer.concat(Array.from({ length: options.batch }, () => frame));
    this.#batch = options.batch;
    this.#window = options.window;
  }

  /** Messages published but not yet received by the average subscriber. */
  get inFlight(): number {
    return this.sent - this.#subscribers.delivered / Math.max(1, this.#subscribers.size);
  }

  /** Messages this connection received itself (should stay 0: senders are excluded). */
  get echoes(): number {
    return this.#ws.frames.messages;
  }

  start(): void {
    this.#running = true;
    this.#subscribers.onDelivery = this.#kick;
    // A safety net: if no delivery ever arrives again, still retry now and then.
    this.#timer = setInterval(this.#kick, 100);
    this.#kick();
  }

  stop(): void {
    this.#running = false;
    this.#subscribers.onDelivery = undefined;
    clearInterval(this.#timer);
  }

  close(): void {
    this.stop();
    this.#ws.close();
  }

  readonly #kick = (): void => {
    if (this.#scheduled || !this.#running) return;
    this.#scheduled = true;
    setImmediate(this.#pump);
  };

  readonly #pump = (): void => {
    this.#scheduled = false;
    if (!this.#running || this.#ws.closed) return;
    while (this.inFlight + this.#batch <= this.#window) {
      this.#ws.send(this.#batchFrames);
      this.sent += this.#batch;
    }
  };
}
