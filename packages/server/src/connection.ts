/**
 * One client connection: the outbound queue and its limits, whatever the dialect.
 *
 * Why a queue of our own instead of `ws.send`: one `socket.write` costs ~6–8 µs of mostly
 * kernel time, so writing each message to each recipient caps a core near 0.1 M deliveries/s.
 * Frames are built once per publication (see frame.ts), appended here (or, for fan-out, held
 * once in a run shared with the channel's other subscribers), and everything due to this socket
 * within one event-loop turn goes out as a single write (see OutboundScheduler).
 * All server-originated frames go through `send` so their order on the wire is the order of
 * the calls.
 */
import type { EventEmitter } from 'node:events';
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocket } from 'ws';
import { CloseCodes, type CloseCodeInfo } from '@chorus/protocol';
import type { Traffic } from './metrics/stats.js';
import { InboundReader, takeInbound, type InboundSink } from './inbound.js';
import { SharedRun, type OutboundScheduler } from './outbound.js';
import { framedLength, writeFrame } from './frame.js';

export interface ConnectionLimits {
  /** The slow-consumer cap (limits.maxPendingBytes). */
  readonly maxPendingBytes: number;
  /** The largest message the client may send (the dialect's frame limit); larger ones close 1009. */
  readonly maxMessageBytes: number;
  /** For the one-time notice that ws reads inbound frames itself (inbound.ts). */
  readonly warn: (message: string) => void;
}

/**
 * What a dialect does with one connection: its messages, the moment before its close frame, and
 * its end. One object per connection (the dialect's session) rather than a closure per event: an
 * idle connection would otherwise carry the closures, and the context they share, all its life.
 */
export interface ConnectionHandler {
  /** A message from the client (text UTF-8 checked, fragments joined). */
  message(data: Buffer, binary: boolean): void;
  /** Called before the close frame, while frames can still be sent (v1 sends its disconnect advice). */
  closing?(info: CloseCodeInfo, reason: string): void;
  /** The socket closed; called once, after the connection left the registry. */
  closed(): void;
  /** The dialect's own code for a core close (Pusher: 4200 instead of 1001 on shutdown). */
  closeCodeFor?(info: CloseCodeInfo): CloseCodeInfo;
  /**
   * The close a dialect sends a peer that stopped answering pings (Pusher: 4201, so pusher-js
   * reconnects at once). Unset, such a connection is terminated without a close frame: its peer
   * is most likely gone, and raw and v1 clients learn it from their own side of the socket.
   */
  readonly pongTimeoutClose?: CloseCodeInfo;
}

export class Connection implements InboundSink {
  readonly id: string;
  readonly ws: WebSocket;
  /** The client's IP address (the forwarded one behind a trusted proxy): what per-IP limits count. */
  readonly ip: string;
  /** Set by the heartbeat before each ping, cleared by the pong. */
  awaitingPong = false;
  /** The dialect's session, set when the dialect opens the connection. */
  handler: ConnectionHandler | undefined;
  /** The counters of this connection's app and dialect (plain increments; read by /metrics). */
  readonly traffic: Traffic;
  readonly #socket: Duplex;
  readonly #scheduler: OutboundScheduler;
  readonly #maxPendingBytes: number;
  readonly #maxMessageBytes: number;
  /** Created at the first read: most of what it holds is for frames split across reads. */
  #reader: InboundReader | undefined;
  /**
   * Frames, runs of frames shared with other connections (see SharedRun), and payloads this
   * connection alone gets (see PayloadRun), in send order. Undefined while nothing is queued (an
   * idle connection holds no array).
   */
  #queue: Array<Buffer | SharedRun | PayloadRun> | undefined;
  /**
   * Bytes in the queue, except the tail run's while that run may still grow (it is counted live,
   * through #tailRun, until something else is queued after it).
   */
  #queuedBytes = 0;
  /** The run at the tail of the queue: frames appended to it are this connection's too. */
  #tailRun: SharedRun | undefined;
  #closing = false;
  /** Set while a slow consumer's farewell is queued: the cap it is being cut for must not refuse it. */
  #writingFarewell = false;
  /** Socket bytes already added to `traffic` (see Traffic.bytesIn); the rest is added by settleBytes. */
  #countedIn = 0;
  #countedOut = 0;

  constructor(id: string, ws: WebSocket, socket: Duplex, scheduler: OutboundScheduler, limits: ConnectionLimits, traffic: Traffic, ip: string) {
    this.id = id;
    this.ip = ip;
    this.traffic = traffic;
    this.ws = ws;
    this.#socket = socket;
    this.#scheduler = scheduler;
    this.#maxPendingBytes = limits.maxPendingBytes;
    this.#maxMessageBytes = limits.maxMessageBytes;
    // The handshake, both ways. Bytes read past the request (a client that did not wait for the
    // response) are back in the socket's buffer, and are counted when they are read again.
    this.#countIn(this.#socketBytesIn - socket.readableLength);
    this.#countOut(this.#socketBytesOut);
    if (takeInbound(ws, socket, this, limits.warn)) return;
    // ws reads the connection itself (see inbound.ts): the same three hooks, through its events.
    // Its reads are then counted when the connection closes (settleBytes).
    ws.on('message', (data: Buffer, binary: boolean) => this.received(data, binary));
    ws.on('pong', () => this.ponged());
    (ws as unknown as { _receiver?: EventEmitter })._receiver?.prependListener('conclude', () => this.peerClosing());
  }

  readerFor(bytes: number): InboundReader {
    this.#countIn(bytes);
    return (this.#reader ??= new InboundReader(this, this.#maxMessageBytes, this.ws, this.#socket));
  }

  /** A message from the client (inbound.ts): to the dialect's handler. */
  received(data: Buffer, binary: boolean): void {
    this.handler?.message(data, binary);
  }

  /** The socket closed (the registry's shared 'close' listener): to the dialect's handler. */
  closed(): void {
    this.handler?.closed();
  }

  ponged(): void {
    this.awaitingPong = false;
  }

  /**
   * The client's close frame arrived. When a client sends a message and then closes, both often
   * arrive in one read and the close is answered at once: writing what is queued first keeps the
   * reply (a notify_self echo, say) on the wire before the close frame.
   */
  peerClosing(): void {
    this.flush();
  }

  /**
   * The connection closed: what its socket read and wrote that was not counted as it went (what
   * ws wrote itself: pings, pongs, its close frame) goes to the totals, from the socket's own
   * counts. Never less than counted: the counters only go up.
   */
  settleBytes(): void {
    this.#countIn(Math.max(0, this.#socketBytesIn - this.#countedIn));
    this.#countOut(Math.max(0, this.#socketBytesOut - this.#countedOut));
  }

  /** Bytes the socket has read and written so far, WebSocket framing and handshake included. */
  get #socketBytesIn(): number {
    return (this.#socket as Partial<Socket>).bytesRead ?? 0;
  }

  get #socketBytesOut(): number {
    return (this.#socket as Partial<Socket>).bytesWritten ?? 0;
  }

  #countIn(bytes: number): void {
    this.traffic.bytesIn += bytes;
    this.#countedIn += bytes;
  }

  #countOut(bytes: number): void {
    this.traffic.bytesOut += bytes;
    this.#countedOut += bytes;
  }

  #write(bytes: Buffer): void {
    this.#countOut(bytes.length);
    this.#socket.write(bytes);
  }

  get isOpen(): boolean {
    return !this.#closing && this.ws.readyState === WebSocket.OPEN;
  }

  /**
   * Queues a complete, pre-built WebSocket frame. The buffer may be shared with other
   * connections and must not be modified afterwards.
   */
  send(frame: Buffer): void {
    if (!this.isOpen) return;
    this.#leaveTailRun();
    if (!this.#reserve(frame.length)) return;
    (this.#queue ??= []).push(frame);
    this.#queuedBytes += frame.length;
  }

  /**
   * Queues one message for this connection alone, as its payload: it is framed at the flush,
   * together with the other payloads queued after it, into the buffer that is written. So a
   * client that alone receives many messages in a turn (a publisher's only subscriber, the other
   * member of a chat) costs no buffer per message. The payload must not change until the flush.
   */
  sendPayload(payload: Buffer, binary: boolean): void {
    if (!this.isOpen) return;
    const bytes = framedLength(payload.length);
    const queue = this.#queue;
    const tail = queue?.[queue.length - 1];
    if (tail instanceof PayloadRun && tail.binary === binary) {
      if (!this.#reserve(bytes)) return;
      tail.add(payload, bytes);
    } else {
      this.#leaveTailRun();
      if (!this.#reserve(bytes)) return;
      (this.#queue ??= []).push(new PayloadRun(payload, binary, bytes));
    }
    this.#queuedBytes += bytes;
  }

  /**
   * Queues a shared run: its frames so far, and every frame appended to it until it is sealed.
   * Returns false, and queues nothing, when the connection is closed or would exceed its cap.
   */
  attach(run: SharedRun): boolean {
    if (!this.isOpen) return false;
    this.#leaveTailRun();
    if (!this.#reserve(run.bytes)) return false;
    (this.#queue ??= []).push(run);
    this.#tailRun = run;
    run.holders++;
    run.flushAt = Math.min(run.flushAt, this.#flushAt);
    return true;
  }

  /**
   * Writes everything queued as one buffer: a lone run is written as the run's own joined
   * buffer, shared with every connection holding it; otherwise see OutboundScheduler.join.
   * Called by the scheduler once per turn (runs are sealed by then), or before a close.
   */
  flush(): void {
    const queue = this.#queue;
    if (!queue) return;
    this.#leaveTailRun();
    // Runs grew after they were queued; the cap is checked again on what actually goes out.
    if (this.#queuedBytes + this.#socket.writableLength > this.#maxPendingBytes) return this.#dropSlowConsumer();
    if (this.ws.readyState === WebSocket.OPEN) {
      if (queue.length === 1) this.#write(bytesOf(queue[0] as Buffer | SharedRun | PayloadRun));
      else this.#write(this.#scheduler.join(queue.map(bytesOf), this.#queuedBytes));
      this.traffic.messagesOut += frameCount(queue);
    }
    this.#queue = undefined;
    this.#queuedBytes = 0;
  }

  /**
   * Something else is queued after the tail run: the run must not grow any more (its later
   * frames would land before what is queued now), so it is sealed for every connection holding
   * it, and the channel's next frame starts a new one.
   */
  #leaveTailRun(): void {
    const run = this.#tailRun;
    if (!run) return;
    run.seal();
    this.#queuedBytes += run.bytes;
    this.#tailRun = undefined;
  }

  /**
   * Starts this turn's queue if needed; false (and the connection closed) past the cap. The
   * socket's backlog is read live: writes can complete between two calls of one turn.
   */
  #reserve(bytes: number): boolean {
    if (this.#writingFarewell) return true;
    if (!this.#queue) this.#scheduler.schedule(this);
    if (this.#queuedBytes + this.#socket.writableLength + bytes <= this.#maxPendingBytes) {
      if (this.#queuedBytes + bytes > this.#flushAt) this.#scheduler.flushSoon();
      return true;
    }
    this.#dropSlowConsumer();
    return false;
  }

  /**
   * Queued past this within one turn, the turn's writes go out early (OutboundScheduler.flushSoon):
   * then only the socket's own backlog, what its peer has not read, counts against the cap.
   */
  get #flushAt(): number {
    return this.#maxPendingBytes / 2;
  }

  /** Flushes what is queued (so nothing accepted is lost), then starts the close handshake. */
  close(core: CloseCodeInfo, coreReason?: string): void {
    if (this.#closing) return;
    const info = this.handler?.closeCodeFor?.(core) ?? core;
    const reason = info === core ? (coreReason ?? core.reason) : info.reason;
    if (this.isOpen) this.handler?.closing?.(info, reason);
    this.flush();
    this.#closing = true;
    this.ws.close(info.code, reason);
  }

  /** The heartbeat's verdict on a peer that did not answer the last ping within an interval. */
  pongTimedOut(): void {
    const info = this.handler?.pongTimeoutClose;
    if (!info || !this.isOpen) return this.terminate();
    this.close(info);
    // A dead peer never completes the handshake: its socket goes after closeTimeoutMs.
    setTimeout(terminate, this.#scheduler.closeTimeoutMs, this).unref();
  }

  /** Ends the connection at once, without a close handshake, resetting the TCP connection. */
  terminate(): void {
    this.#closing = true;
    this.#dropQueue();
    resetSocket(this.#socket);
    this.ws.terminate();
  }

  #dropSlowConsumer(): void {
    this.traffic.slowConsumers++;
    // What is queued cannot be delivered in time anyway; dropping it is what bounds memory.
    this.#dropQueue();
    // The dialect's code too (Pusher: 4100, which pusher-js retries after a back-off).
    const info = this.handler?.closeCodeFor?.(CloseCodes.SLOW_CONSUMER) ?? CloseCodes.SLOW_CONSUMER;
    this.#writeFarewell(info);
    this.#closing = true;
    // A client still reading gets the close frame after its backlog and answers within
    // closeTimeoutMs. One that stopped reading never does, and closing its socket normally (as
    // ws's own close timer does) leaves the kernel holding the unsent backlog (~4 MB on
    // loopback) in FIN-WAIT-1 for minutes, the client's end open. So it is reset instead:
    // this timer has the delay of ws's close timer and is set before it, so it fires first.
    setTimeout(terminate, this.#scheduler.closeTimeoutMs, this).unref();
    this.ws.close(info.code, info.reason);
  }

  /**
   * The dialect's last words before a slow consumer's close (raw `{"error"}`, `pusher:error`, v1
   * disconnect advice), written straight to the socket: only a few hundred bytes past the cap,
   * and a client that is still reading learns why it was cut instead of seeing a bare code.
   */
  #writeFarewell(info: CloseCodeInfo): void {
    const handler = this.handler;
    if (!handler?.closing || !this.isOpen) return;
    this.#writingFarewell = true;
    try {
      handler.closing(info, `Slow consumer: more than ${this.#maxPendingBytes} bytes were queued for this connection (limits.maxPendingBytes); reconnect and read faster`);
    } finally {
      this.#writingFarewell = false;
    }
    const frames = (this.#queue ?? []).filter((item): item is Buffer => item instanceof Buffer);
    if (frames.length > 0) this.#write(frames.length === 1 ? (frames[0] as Buffer) : Buffer.concat(frames));
    this.traffic.messagesOut += frames.length;
    this.#dropQueue();
  }

  #dropQueue(): void {
    this.#leaveTailRun();
    this.#queue = undefined;
    this.#queuedBytes = 0;
  }
}

/** For timers: an argument instead of a closure per connection. */
function terminate(connection: Connection): void {
  connection.terminate();
}

/**
 * Consecutive payloads of one kind (text or binary) queued for one connection alone
 * (Connection.sendPayload): references until the flush frames them all into one new buffer,
 * instead of a buffer per message that the flush would then copy again to join them.
 */
class PayloadRun {
  readonly payloads: Buffer[];
  readonly binary: boolean;
  /** The framed length of them all. */
  bytes: number;

  constructor(payload: Buffer, binary: boolean, bytes: number) {
    this.payloads = [payload];
    this.binary = binary;
    this.bytes = bytes;
  }

  add(payload: Buffer, bytes: number): void {
    this.payloads.push(payload);
    this.bytes += bytes;
  }

  frames(): Buffer {
    const out = Buffer.allocUnsafe(this.bytes);
    let at = 0;
    for (const payload of this.payloads) at = writeFrame(out, at, payload, this.binary);
    return out;
  }
}

function bytesOf(item: Buffer | SharedRun | PayloadRun): Buffer {
  return item instanceof SharedRun ? item.joined() : item instanceof PayloadRun ? item.frames() : item;
}

/** Frames in a queue: one per buffer, a run's frames, and a payload run's payloads. */
function frameCount(queue: ReadonlyArray<Buffer | SharedRun | PayloadRun>): number {
  let count = 0;
  for (const item of queue) count += item instanceof SharedRun ? item.frames.length : item instanceof PayloadRun ? item.payloads.length : 1;
  return count;
}

/**
 * Destroys the socket with a TCP reset, so the kernel drops what it still holds for the peer
 * instead of trying to deliver it. Only a plain TCP socket can be reset; a TLS one is destroyed.
 */
function resetSocket(socket: Duplex): void {
  if (socket.destroyed) return;
  if (socket instanceof Socket && !('encrypted' in socket)) socket.resetAndDestroy();
  else socket.destroy();
}
