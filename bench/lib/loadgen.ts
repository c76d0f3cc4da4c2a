/**
 * The load generator's building blocks: WebSocket clients on raw `net` sockets, cheap enough
 * that thousands of them cost far less than the server under test (a `ws` client object costs
 * ~8 KB and parses every message in full).
 *
 * - RawWebSocket does the HTTP upgrade itself (and, for Socket.IO peers, the engine.io open /
 *   socket.io connect exchange; for Pusher clients, connection_established → pusher:subscribe →
 *   subscription_succeeded), then only counts incoming frames with a minimal header parser
 *   (FrameCounter); it never assembles a message unless it is a latency probe or a handshake.
 * - It answers pings (WebSocket ping → pong; engine.io `2` → `3`) so long runs are not cut by
 *   a server's heartbeat.
 * - Every socket reads into one shared buffer (net's `onread`), so reading allocates nothing.
 * - Publisher writes pre-built masked frames (a fixed mask: servers do not check randomness) in
 *   batches, under a flow-control window measured by what the subscribers have received.
 * - RatePublisher publishes open-loop at a fixed rate with the intended send time in the
 *   payload, and LatencyRecorder turns what probes receive into publish→deliver latencies.
 */
import { connect, type Socket } from 'node:net';

/**
 * How a peer's clients frame messages: `raw` (Chorus raw channels and the peers that copy
 * them: the payload is relayed as is), `socketio` (engine.io v4 + socket.io packets over
 * the WebSocket transport: `42["m",…]` events) or `pusher` (Chorus's Pusher protocol 7 at
 * `/app/{key}`: a subscriber of `Endpoint.channel`; it only receives, so only its handshake is
 * Pusher-specific).
 */
export type Dialect = 'raw' | 'socketio' | 'pusher';

export interface Endpoint {
  host: string;
  port: number;
  /** Path and query string, e.g. `/v4/bench?api_key=…`. */
  path: string;
  /** Defaults to `raw`. */
  dialect?: Dialect;
  /** Source address (any 127.0.0.x on loopback), to spread many connections over several. */
  localAddress?: string;
  /** `pusher` dialect: the channel to `pusher:subscribe` to (the path names only the app). */
  channel?: string;
  /**
   * `pusher` dialect, private and presence channels: the subscription's `auth` (and presence
   * `channel_data`) for the socket id the server sent, as the app's auth endpoint would sign them.
   */
  pusherAuth?: (socketId: string) => { auth: string; channel_data?: string };
}

/** Shared by all sockets: `onread` callbacks run one at a time and consume it synchronously. */
const READ_BUFFER = new Uint8Array(256 * 1024);
const HANDSHAKE_TIMEOUT_MS = 20_000;
const MAX_RESPONSE_HEAD = 16 * 1024;
const FIXED_MASK = [0x37, 0xfa, 0x21, 0x3d] as const;
const OPCODE_TEXT = 0x1;
const OPCODE_CLOSE = 0x8;
const OPCODE_PING = 0x9;
const OPCODE_PONG = 0xa;
/** engine.io packet types (first character of a text frame). */
const EIO_OPEN = 0x30; // '0'
const EIO_PING = 0x32; // '2'
const EIO_MESSAGE = 0x34; // '4'
/** socket.io packet type CONNECT, inside an engine.io message: `40…`. */
const SIO_CONNECT = 0x30;

/** Timestamps in payloads: '@' followed by this many decimal digits (microseconds). */
const STAMP_MARK = 0x40; // '@'
const STAMP_DIGITS = 15;

export interface FrameCounterHooks {
  /** A ping control frame with its payload: answer with a pong. */
  onPing?: (payload: Buffer) => void;
  /** engine.io ping (`2`): answer with `3`. Only when the counter is in engine.io mode. */
  onEnginePing?: () => void;
  /**
   * Data frames' payloads, for the few clients that need them (handshakes, latency probes).
   * While set, incomplete data frames are carried over to the next chunk (copying), so set it
   * only on a few sockets. Returning false means "not a delivery, do not count it".
   */
  onPayload?: (buffer: Uint8Array, start: number, end: number) => boolean;
}

/**
 * Counts the data messages in a stream of WebSocket frames from a server (RFC 6455 §5.2):
 * reads only the 2-, 4- or 10-byte header of each frame and skips its payload, across chunk
 * boundaries. Control frames (ping, pong, close) are counted separately, and so are engine.io
 * control packets (text frames of 1 or 2 bytes: ping, noop) in engine.io mode.
 */
export class FrameCounter {
  /** Final frames of text/binary messages: one per message. */
  messages = 0;
  controlFrames = 0;
  closeReceived = false;
  hooks: FrameCounterHooks;
  readonly #engineIo: boolean;
  /** Payload bytes of the current frame that have not arrived yet. */
  #skip = 0;
  /** An incomplete frame left at the end of the previous chunk. */
  #carry: Buffer | undefined;

  constructor(engineIo = false, hooks: FrameCounterHooks = {}) {
    this.#engineIo = engineIo;
    this.hooks = hooks;
  }

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
    const onPayload = this.hooks.onPayload;
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
      const start = i + headerLength;
      const frameEnd = start + payloadLength;
      if (opcode >= 0x8) {
        // Control frames are tiny: wait for the whole frame so a ping's payload can be echoed.
        if (frameEnd > end) break;
        this.controlFrames++;
        if (opcode === OPCODE_CLOSE) this.closeReceived = true;
        else if (opcode === OPCODE_PING) this.hooks.onPing?.(Buffer.from(buf.subarray(start, frameEnd)));
      } else if (this.#engineIo && opcode === OPCODE_TEXT && payloadLength <= 2) {
        if (frameEnd > end) break;
        this.controlFrames++;
        if (payloadLength === 1 && buf[start] === EIO_PING) this.hooks.onEnginePing?.();
      } else if (onPayload && opcode <= 0x2) {
        if (frameEnd > end) break;
        if (onPayload(buf, start, frameEnd) && b0 & 0x80) messages++;
      } else if (b0 & 0x80) {
        messages++;
      }
      i = frameEnd;
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

/** A client-to-server frame, masked with a fixed key. Build once, write many times. */
export function maskedFrame(payload: Buffer, opcode = OPCODE_TEXT): Buffer {
  const length = payload.length;
  const extended = length < 126 ? 0 : length < 65536 ? 2 : 8;
  const out = Buffer.allocUnsafe(2 + extended + 4 + length);
  out[0] = 0x80 | opcode; // FIN + opcode
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

/** A client-to-server text frame, masked with a fixed key. Build once, write many times. */
export function maskedTextFrame(payload: Buffer): Buffer {
  return maskedFrame(payload, OPCODE_TEXT);
}

/** An ASCII JSON text of exactly `size` bytes (or a run of 'x' when `size` is too small for JSON). */
export function textPayload(size: number): Buffer {
  return envelope('{"event":"bench","data":"', '"}', size);
}

/**
 * The WebSocket payload of one benchmark message of exactly `size` bytes, in the peer's
 * dialect: for raw peers the JSON text of textPayload; for Socket.IO an event packet
 * `42["m","xxx…"]` (the envelope counts towards the size, so both put the same bytes on the
 * wire). With `stamped`, the data holds '@' and 15 digits where RatePublisher writes the
 * intended send time.
 */
export function messagePayload(dialect: Dialect, size: number, stamped = false): Buffer {
  const payload = dialect === 'socketio' ? envelope('42["m","', '"]', size) : textPayload(size);
  if (stamped) {
    const at = payload.indexOf('x');
    if (at < 0 || payload.length - at < STAMP_DIGITS + 3) throw new Error(`a ${size}-byte message is too small for a timestamp`);
    payload.write(`@${'0'.repeat(STAMP_DIGITS)}`, at, 'latin1');
  }
  return payload;
}

function envelope(head: string, tail: string, size: number): Buffer {
  if (size < head.length + tail.length) return Buffer.from('x'.repeat(size));
  return Buffer.from(head + 'x'.repeat(size - head.length - tail.length) + tail);
}

/** Added to performance.now() in timestamps: 0, or this process's offset from a shared origin (setClockOrigin). */
let clockOffsetMs = 0;

/**
 * Makes timestamps comparable across processes (a publisher in one helper process, its
 * receivers in others): from now on they count from `originMs`, a wall-clock time (Date.now())
 * every process was given.
 */
export function setClockOrigin(originMs: number): void {
  clockOffsetMs = performance.timeOrigin - originMs;
}

/** Microseconds on this process's monotonic clock (from the shared origin, if set): what timestamps in payloads hold. */
export function nowMicros(): number {
  return Math.round((performance.now() + clockOffsetMs) * 1000);
}

export interface RawWebSocketOptions {
  /** Called with each batch of messages counted. */
  onMessages?: (count: number) => void;
  /** Latency probe: called with the send timestamp (µs) found in each message. */
  onStamp?: (sentMicros: number) => void;
}

/** A WebSocket client that can only send pre-built frames and count what it receives. */
export class RawWebSocket {
  readonly socket: Socket;
  readonly frames: FrameCounter;
  readonly dialect: Dialect;
  readonly #onMessages: ((count: number) => void) | undefined;
  readonly #onStamp: ((sentMicros: number) => void) | undefined;
  #upgraded = false;
  #head = '';
  #settle: ((error?: Error) => void) | undefined;

  private constructor(endpoint: Endpoint, options: RawWebSocketOptions) {
    this.dialect = endpoint.dialect ?? 'raw';
    this.#onMessages = options.onMessages;
    this.#onStamp = options.onStamp;
    this.frames = new FrameCounter(this.dialect === 'socketio', {
      onPing: (payload) => this.socket.write(maskedFrame(payload, OPCODE_PONG)),
      onEnginePing: () => this.socket.write(ENGINE_PONG),
    });
    if (this.dialect === 'socketio') this.frames.hooks.onPayload = this.#onHandshakePacket;
    else if (this.dialect === 'pusher') this.frames.hooks.onPayload = this.#pusherHandshake(endpoint);
    else if (this.#onStamp) this.frames.hooks.onPayload = this.#onProbePayload;
    this.socket = connect({
      host: endpoint.host,
      port: endpoint.port,
      localAddress: endpoint.localAddress,
      noDelay: true,
      onread: { buffer: READ_BUFFER, callback: this.#onRead },
    });
    this.socket.on('connect', () => {
      this.socket.write(
        `GET ${endpoint.path} HTTP/1.1\r\nHost: ${endpoint.host}:${endpoint.port}\r\n` +
          'Upgrade: websocket\r\nConnection: Upgrade\r\n' +
          'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
      );
    });
  }

  /**
   * Connects and completes the upgrade (and, for Socket.IO, the namespace connect, after which
   * the server has put the socket in its room; for Pusher, the subscription). Resolves when the
   * client can publish and receive; nothing received before that is counted.
   */
  static connect(endpoint: Endpoint, options: RawWebSocketOptions | ((count: number) => void) = {}): Promise<RawWebSocket> {
    const ws = new RawWebSocket(endpoint, typeof options === 'function' ? { onMessages: options } : options);
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

  /** Stops reading (a slow consumer): the kernel buffers fill up and the server has to queue. */
  stopReading(): void {
    this.socket.pause();
  }

  close(): void {
    this.socket.destroy();
  }

  #ready(): void {
    this.frames.hooks.onPayload = this.#onStamp ? this.#onProbePayload : undefined;
    this.#settle?.();
  }

  /** Socket.IO handshake frames (engine.io open, socket.io connect): not deliveries. */
  readonly #onHandshakePacket = (buffer: Uint8Array, start: number, end: number): boolean => {
    if (!this.#settle) return this.#onStamp ? this.#onProbePayload(buffer, start, end) : true;
    if (end <= start) return false;
    if (buffer[start] === EIO_OPEN) {
      this.socket.write(SOCKETIO_CONNECT);
    } else if (buffer[start] === EIO_MESSAGE && buffer[start + 1] === SIO_CONNECT) {
      this.#ready();
    } else if (buffer[start] === EIO_MESSAGE && buffer[start + 1] === 0x34 /* '4' CONNECT_ERROR */) {
      this.#settle(new Error(`socket.io connect refused: ${Buffer.from(buffer.subarray(start, end)).toString()}`));
    }
    return false;
  };

  /**
   * Pusher handshake frames: `pusher:connection_established` (answered with one pre-built
   * `pusher:subscribe`), then `pusher_internal:subscription_succeeded`, after which the server
   * delivers this channel's publications. Neither is a delivery. Only the event name is looked
   * at, as bytes: the handshake of 1,000 clients must cost the generator next to nothing.
   */
  #pusherHandshake(endpoint: Endpoint): (buffer: Uint8Array, start: number, end: number) => boolean {
    const channel = endpoint.channel;
    if (channel === undefined) throw new Error('a pusher endpoint needs the channel to subscribe to');
    const publicSubscribe = maskedTextFrame(Buffer.from(JSON.stringify({ event: 'pusher:subscribe', data: { channel } })));
    const subscribe = (text: string): Buffer => {
      const socketId = /socket_id\\?":\\?"([\d.]+)/.exec(text)?.[1];
      if (!endpoint.pusherAuth || socketId === undefined) return publicSubscribe;
      return maskedTextFrame(Buffer.from(JSON.stringify({ event: 'pusher:subscribe', data: { channel, ...endpoint.pusherAuth(socketId) } })));
    };
    return (buffer, start, end) => {
      if (!this.#settle) return this.#onStamp ? this.#onProbePayload(buffer, start, end) : true;
      const text = Buffer.from(buffer.buffer, buffer.byteOffset + start, end - start).toString('utf8');
      const event = /^\{"event":"([^"]*)"/.exec(text)?.[1];
      if (event === 'pusher:connection_established') this.socket.write(subscribe(text));
      else if (event === 'pusher_internal:subscription_succeeded') this.#ready();
      else if (event === 'pusher:error' || event === 'pusher:subscription_error') this.#settle(new Error(`Pusher subscription to ${channel} refused: ${text}`));
      return false;
    };
  }

  readonly #onProbePayload = (buffer: Uint8Array, start: number, end: number): boolean => {
    const stamp = readStamp(buffer, start, end);
    if (stamp >= 0) this.#onStamp?.(stamp);
    return true;
  };

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
    if (this.dialect === 'raw') this.#ready();
    if (rest.length > 0) {
      const messages = this.frames.push(rest, rest.length);
      if (messages > 0) this.#onMessages?.(messages);
    }
    return true;
  };
}

const ENGINE_PONG = maskedTextFrame(Buffer.from('3'));
const SOCKETIO_CONNECT = maskedTextFrame(Buffer.from('40'));

/** The µs timestamp after the first '@' in a payload, or -1. */
function readStamp(buffer: Uint8Array, start: number, end: number): number {
  for (let i = start; i + STAMP_DIGITS < end; i++) {
    if (buffer[i] !== STAMP_MARK) continue;
    let value = 0;
    for (let k = i + 1; k <= i + STAMP_DIGITS; k++) value = value * 10 + (buffer[k]! - 0x30);
    return value;
  }
  return -1;
}

export interface PoolOptions {
  /** Handshakes in flight at once. */
  concurrency?: number;
  /** Which subscribers (by index) are latency probes, and where their samples go. */
  probe?: { every: number; onStamp: (sentMicros: number) => void };
  /** Attempts after a failed handshake before the pool gives up (a busy box may stall one for seconds); default 0. */
  retries?: number;
}

/** Many subscribers, with one running total of messages received. */
export class SubscriberPool {
  readonly clients: RawWebSocket[] = [];
  /** Messages received by all subscribers together (a message counts once per subscriber). */
  delivered = 0;
  /** Called after every read that completed at least one message. */
  onDelivery: (() => void) | undefined;
  /** Handshakes that failed and were tried again (PoolOptions.retries). */
  retried = 0;

  readonly #count = (messages: number): void => {
    this.delivered += messages;
    this.onDelivery?.();
  };

  /** Opens `count` subscribers on one endpoint (or on `endpoint(i)`), `concurrency` handshakes at a time. */
  static async open(endpoint: Endpoint | ((index: number) => Endpoint), count: number, options: PoolOptions | number = {}): Promise<SubscriberPool> {
    const { concurrency = 64, probe, retries = 0 } = typeof options === 'number' ? { concurrency: options } : options;
    const pool = new SubscriberPool();
    const endpointOf = typeof endpoint === 'function' ? endpoint : (): Endpoint => endpoint;
    const clients: (RawWebSocket | undefined)[] = new Array<RawWebSocket | undefined>(count);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < count) {
        const index = next++;
        const isProbe = probe !== undefined && index % probe.every === 0;
        for (let attempt = 0; ; attempt++) {
          try {
            clients[index] = await RawWebSocket.connect(endpointOf(index), { onMessages: pool.#count, onStamp: isProbe ? probe.onStamp : undefined });
            break;
          } catch (error) {
            if (attempt >= retries) throw error;
            pool.retried++;
          }
        }
        pool.clients.push(clients[index]);
      }
    };
    try {
      await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
    } catch (error) {
      pool.close();
      throw error;
    }
    // In index order, so clients[i] was opened on endpoint(i).
    pool.clients.length = 0;
    for (const client of clients) if (client) pool.clients.push(client);
    return pool;
  }

  get size(): number {
    return this.clients.length;
  }

  /**
   * Closed-loop load: calls `pump` (which sends whatever its window allows) after deliveries, at
   * most once per event-loop turn, and every 100 ms as a safety net in case deliveries stop.
   * Returns the function that stops it.
   */
  pumpOnDelivery(pump: () => void): () => void {
    let running = true;
    let scheduled = false;
    const run = (): void => {
      scheduled = false;
      if (running) pump();
    };
    const kick = (): void => {
      if (scheduled || !running) return;
      scheduled = true;
      setImmediate(run);
    };
    this.onDelivery = kick;
    const timer = setInterval(kick, 100);
    kick();
    return () => {
      running = false;
      if (this.onDelivery === kick) this.onDelivery = undefined;
      clearInterval(timer);
    };
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
  /** Payload of every message (all messages are the same bytes), already in the peer's dialect. */
  payload: Buffer;
  /** Frames per write. */
  batch: number;
  /**
   * Flow control: at most this many messages published but not yet received by the average
   * subscriber. Keeps the server saturated without letting queues grow without bound.
   */
  window: number;
  /**
   * `window` (default): paced by the subscribers, as above. `socket`: unpaced, like one client
   * that writes as fast as its own socket takes: whole batches until `write` reports a full
   * buffer, again on 'drain'; `window` is then ignored. The server must push back (read less
   * from the publisher) or queue, drop or cut subscribers: the scenario reports which.
   */
  pace?: 'window' | 'socket';
}

/**
 * Publishes at saturation: whenever subscribers report progress, it tops the window up with
 * whole batches, once per event-loop turn (or, unpaced, whenever its socket takes more).
 */
export class Publisher {
  /** Messages written so far. */
  sent = 0;
  readonly #ws: RawWebSocket;
  readonly #subscribers: SubscriberPool;
  readonly #batchFrames: Buffer;
  readonly #batch: number;
  readonly #window: number;
  readonly #unpaced: boolean;
  #stop: (() => void) | undefined;

  constructor(ws: RawWebSocket, subscribers: SubscriberPool, options: PublisherOptions) {
    if (options.window < options.batch) throw new Error('the window must hold at least one batch');
    this.#ws = ws;
    this.#subscribers = subscribers;
    const frame = maskedTextFrame(options.payload);
    this.#batchFrames = Buffer.concat(Array.from({ length: options.batch }, () => frame));
    this.#batch = options.batch;
    this.#window = options.window;
    this.#unpaced = options.pace === 'socket';
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
    if (this.#unpaced) this.#stop ??= this.#floodWhileWritable();
    else this.#stop ??= this.#subscribers.pumpOnDelivery(this.#pump);
  }

  /**
   * Writes batches until the socket's buffer is full, then waits for 'drain'; at most 64 writes
   * per turn, so the generator's subscribers are still read in between.
   */
  #floodWhileWritable(): () => void {
    let stopped = false;
    const socket = this.#ws.socket;
    const flood = (): void => {
      for (let writes = 0; !stopped && !this.#ws.closed && writes < 64; writes++) {
        this.sent += this.#batch;
        if (!this.#ws.send(this.#batchFrames)) return void socket.once('drain', flood);
      }
      if (!stopped && !this.#ws.closed) setImmediate(flood);
    };
    flood();
    return () => {
      stopped = true;
      socket.off('drain', flood);
    };
  }

  stop(): void {
    this.#stop?.();
    this.#stop = undefined;
  }

  close(): void {
    this.stop();
    this.#ws.close();
  }

  readonly #pump = (): void => {
    if (this.#ws.closed) return;
    while (this.inFlight + this.#batch <= this.#window) {
      this.#ws.send(this.#batchFrames);
      this.sent += this.#batch;
    }
  };
}

/**
 * Publishes open-loop at a fixed rate: message i is due at start + i / rate, and carries that
 * intended time (not the actual write time) so that a stalled generator or server shows up as
 * latency instead of hiding it (no coordinated omission). A 1 ms timer writes whatever is due
 * as one write.
 */
export class RatePublisher {
  /** Messages written so far. */
  sent = 0;
  /** Largest lag (ms) between a message's intended time and its write, since start. */
  maxLagMs = 0;
  readonly #ws: RawWebSocket;
  readonly #template: Buffer;
  /** Offset of the first timestamp digit in the template frame. */
  readonly #digitsAt: number;
  #perMs: number;
  #startMs = 0;
  /** Messages sent before the current rate took effect. */
  #base = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(ws: RawWebSocket, payload: Buffer, ratePerSecond: number) {
    this.#ws = ws;
    this.#template = maskedTextFrame(payload);
    const mark = payload.indexOf(STAMP_MARK);
    if (mark < 0) throw new Error('RatePublisher needs a stamped payload (messagePayload(…, true))');
    this.#digitsAt = this.#template.length - payload.length + mark + 1;
    this.#perMs = ratePerSecond / 1000;
  }

  /** Messages this connection received itself (should stay 0). */
  get echoes(): number {
    return this.#ws.frames.messages;
  }

  /** Starts a new maxLagMs window (at the start of a measurement). */
  resetLag(): void {
    this.maxLagMs = 0;
  }

  start(): void {
    this.#startMs = performance.now();
    this.#base = this.sent;
    this.#timer = setInterval(this.#tick, 1);
  }

  /** Continues at a new rate from now on. */
  setRate(ratePerSecond: number): void {
    this.#startMs = performance.now();
    this.#base = this.sent;
    this.#perMs = ratePerSecond / 1000;
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  close(): void {
    this.stop();
    this.#ws.close();
  }

  readonly #tick = (): void => {
    if (this.#ws.closed) return;
    const now = performance.now();
    // Message k (counted from the rate change) is due at startMs + k / rate: k = 0 at once.
    const due = this.#base + Math.floor((now - this.#startMs) * this.#perMs) + 1;
    const count = due - this.sent;
    if (count <= 0) return;
    const frameLength = this.#template.length;
    const out = Buffer.allocUnsafe(count * frameLength);
    for (let n = 0; n < count; n++) {
      const base = n * frameLength;
      this.#template.copy(out, base);
      const intendedMs = this.#startMs + (this.sent - this.#base + n) / this.#perMs;
      writeMaskedDigits(out, base, this.#digitsAt, this.#template, Math.round((intendedMs + clockOffsetMs) * 1000));
    }
    this.maxLagMs = Math.max(this.maxLagMs, now - (this.#startMs + (this.sent - this.#base) / this.#perMs));
    this.#ws.send(out);
    this.sent = due;
  };
}

/** Stamped frames one at a time, for many publishers at a low rate each (bench:scale): the time of the call in each. */
export class StampedFrames {
  readonly #template: Buffer;
  readonly #digitsAt: number;

  /** `payload`: a stamped payload (messagePayload(…, true)). */
  constructor(payload: Buffer) {
    this.#template = maskedTextFrame(payload);
    const mark = payload.indexOf(STAMP_MARK);
    if (mark < 0) throw new Error('StampedFrames needs a stamped payload (messagePayload(…, true))');
    this.#digitsAt = this.#template.length - payload.length + mark + 1;
  }

  /** A new masked frame carrying nowMicros(). */
  next(): Buffer {
    const out = Buffer.from(this.#template);
    writeMaskedDigits(out, 0, this.#digitsAt, this.#template, nowMicros());
    return out;
  }
}

/** Writes `value` as STAMP_DIGITS decimal digits at `at`, masked like the template's payload byte there. */
function writeMaskedDigits(out: Buffer, base: number, at: number, template: Buffer, value: number): void {
  // The mask key sits right before the payload; the payload byte at `at` uses key[(at − payloadStart) & 3].
  const lengthByte = template[1]! & 0x7f;
  const payloadStart = 2 + (lengthByte === 126 ? 2 : lengthByte === 127 ? 8 : 0) + 4;
  const keyAt = payloadStart - 4;
  let remaining = value;
  for (let k = STAMP_DIGITS - 1; k >= 0; k--) {
    const digit = remaining % 10;
    remaining = Math.floor(remaining / 10);
    const position = at + k;
    const mask = template[keyAt + ((position - payloadStart) & 3)]!;
    out[base + position] = (0x30 + digit) ^ mask;
  }
}

/** Publish→deliver latencies in microseconds; percentiles from the sorted samples. */
export class LatencyRecorder {
  recording = false;
  #samples = new Float64Array(1 << 16);
  #count = 0;

  /** Record one delivery of a message stamped at `sentMicros`, received now. */
  readonly record = (sentMicros: number): void => {
    if (!this.recording) return;
    if (this.#count === this.#samples.length) {
      const grown = new Float64Array(this.#samples.length * 2);
      grown.set(this.#samples);
      this.#samples = grown;
    }
    this.#samples[this.#count++] = nowMicros() - sentMicros;
  };

  get count(): number {
    return this.#count;
  }

  reset(): void {
    this.#count = 0;
  }

  /** Latency summary in milliseconds. */
  summary(): LatencySummary {
    const sorted = this.#samples.slice(0, this.#count).sort();
    const at = (q: number): number => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! / 1000 : NaN);
    return { samples: sorted.length, p50: at(0.5), p90: at(0.9), p99: at(0.99), p999: at(0.999), max: sorted.length ? sorted[sorted.length - 1]! / 1000 : NaN };
  }
}

export interface LatencySummary {
  samples: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}
