/**
 * One client connection: the outbound queue and its limits, whatever the dialect.
 *
 * Why a queue of our own instead of `ws.send`: one `socket.write` costs ~6–8 µs of mostly
 * kernel time, so writing each message to each recipient caps a core near 0.1 M deliveries/s.
 * Frames are built once per publication (see frame.ts), appended here, and everything due to
 * this socket within one event-loop turn goes out as a single write (see OutboundScheduler).
 * All server-originated frames go through `send` so their order on the wire is the order of
 * the calls.
 */
import type { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { WebSocket } from 'ws';
import { CloseCodes, type CloseCodeInfo } from '@chorus/protocol';
import type { OutboundScheduler } from './outbound.js';

/** After a slow consumer is sent its close frame, how long it gets before the socket is cut. */
const SLOW_CONSUMER_GRACE_MS = 5_000;

export class Connection {
  readonly id: string;
  readonly ws: WebSocket;
  /** Set by the heartbeat before each ping, cleared by the pong. */
  awaitingPong = false;
  /** Called before the close frame, while frames can still be sent (v1 sends its disconnect advice). */
  onClosing: ((info: CloseCodeInfo, reason: string) => void) | undefined;
  readonly #socket: Duplex;
  readonly #scheduler: OutboundScheduler;
  readonly #maxPendingBytes: number;
  #queue: Buffer[] = [];
  #queuedBytes = 0;
  /**
   * The socket's unwritten bytes when this turn's queue was started. Read once per turn rather
   * than per frame (a getter chain into the stream state, on every recipient of every
   * publication); the kernel takes nothing from the socket during our turn, so it can only be
   * an overestimate.
   */
  #socketBacklog = 0;
  #closing = false;

  constructor(id: string, ws: WebSocket, socket: Duplex, scheduler: OutboundScheduler, maxPendingBytes: number) {
    this.id = id;
    this.ws = ws;
    this.#socket = socket;
    this.#scheduler = scheduler;
    this.#maxPendingBytes = maxPendingBytes;
    ws.on('pong', () => {
      this.awaitingPong = false;
    });
    // When a client sends a message and then closes, both often arrive in one TCP chunk and ws
    // answers the close at once. Writing what is queued first keeps the reply (a notify_self
    // echo, say) on the wire before the close frame. ws exposes no public hook for "close frame
    // received", so this listens on its receiver, guarded in case the internals change.
    const receiver = (ws as unknown as { _receiver?: EventEmitter })._receiver;
    receiver?.prependListener('conclude', () => this.flush());
  }

  get isOpen(): boolean {
    return !this.#closing && this.ws.readyState === WebSocket.OPEN;
  }

  /** Bytes accepted for this client but not yet taken by the kernel. */
  get pendingBytes(): number {
    return this.#queuedBytes + (this.#queue.length > 0 ? this.#socketBacklog : this.#socket.writableLength);
  }

  /**
   * Queues a complete, pre-built WebSocket frame. The buffer may be shared with other
   * connections and must not be modified afterwards.
   */
  send(frame: Buffer): void {
    if (!this.isOpen) return;
    if (this.#queue.length === 0) {
      this.#socketBacklog = this.#socket.writableLength;
      this.#scheduler.schedule(this);
    }
    if (this.#queuedBytes + this.#socketBacklog + frame.length > this.#maxPendingBytes) {
      this.#dropSlowConsumer();
      return;
    }
    this.#queue.push(frame);
    this.#queuedBytes += frame.length;
  }

  /**
   * Writes everything queued as one buffer (shared with every other connection that was due the
   * same frames: see OutboundScheduler.join). Called by the scheduler once per turn.
   */
  flush(): void {
    const queue = this.#queue;
    if (queue.length === 0) return;
    if (this.ws.readyState === WebSocket.OPEN) this.#socket.write(this.#scheduler.join(queue, this.#queuedBytes));
    this.#queue = [];
    this.#queuedBytes = 0;
  }

  /** Flushes what is queued (so nothing accepted is lost), then starts the close handshake. */
  close(info: CloseCodeInfo, reason: string = info.reason): void {
    if (this.#closing) return;
    if (this.isOpen) this.onClosing?.(info, reason);
    this.flush();
    this.#closing = true;
    this.ws.close(info.code, reason);
  }

  terminate(): void {
    this.#closing = true;
    this.#queue = [];
    this.#queuedBytes = 0;
    this.ws.terminate();
  }

  #dropSlowConsumer(): void {
    // What is queued cannot be delivered in time anyway; dropping it is what bounds memory.
    // No onClosing advice either: it would only queue behind the bytes the client isn't reading.
    this.#queue = [];
    this.#queuedBytes = 0;
    this.#closing = true;
    this.ws.close(CloseCodes.SLOW_CONSUMER.code, CloseCodes.SLOW_CONSUMER.reason);
    setTimeout(() => this.ws.terminate(), SLOW_CONSUMER_GRACE_MS).unref();
  }
}
