/**
 * The Chorus v1 client: one WebSocket to `/v1/connect`, many channels, acknowledged commands,
 * automatic reconnect (exponential backoff, full jitter) with recovery of missed publications.
 *
 * Invariants that keep it simple:
 * - A socket is only written to when it is OPEN and its connect was acknowledged (the connect
 *   command itself excepted), so "Still in CONNECTING state" cannot happen. Everything else waits
 *   in `#queue` (publish, history, presence) or is (re)issued on connect (subscribe).
 * - Every socket event handler first checks that its socket is still the current one; a socket
 *   the SDK gave up on (timeouts) is forgotten at once, whatever it does later.
 * - Commands in flight when a connection drops go back to the queue in their original order and
 *   are sent again after the reconnect; publishes keep their msgId so the server dedupes them.
 */
import {
  ErrorCodes,
  MAX_MSG_ID_LENGTH,
  V1_PATH,
  isTerminalCloseCode,
  type ConnectResult,
  type DisconnectPush,
  type JoinPush,
  type LeavePush,
  type PubPush,
  type PublishResult,
  type RefreshResult,
  type Reply,
  type SubscribeResult,
} from '@chorus/protocol';
import { backoffDelay } from './backoff.js';
import { Channel, type ChannelHost } from './channel.js';
import { Emitter } from './emitter.js';
import { ChorusError } from './errors.js';
import { bytesToBase64, isBlob, isBufferSource, toBytes } from './payload.js';
import { MsgIdGenerator } from './random.js';
import type {
  ChannelOptions,
  ClientEvents,
  ClientOptions,
  ClientState,
  DisconnectedEvent,
  PublishOptions,
  WebSocketConstructor,
  WebSocketLike,
} from './types.js';

export const SDK_NAME = 'chorus-js/0.1.0';

const OPEN = 1;
/** Reported in `disconnected` when the SDK itself gave up on a socket (no close frame came). */
const ABNORMAL_CLOSURE = 1006;
/** Subscribe refusals worth retrying: the same command may well succeed a moment later. */
const TRANSIENT_REPLY_CODES: ReadonlySet<number> = new Set([ErrorCodes.INTERNAL.code, ErrorCodes.RATE_LIMITED.code, ErrorCodes.ENGINE_UNAVAILABLE.code]);
const MESSAGE_TOO_BIG = 1009;

export const DEFAULT_OPTIONS = Object.freeze({
  autoConnect: true,
  minDelayMs: 500,
  maxDelayMs: 20_000,
  commandTimeoutMs: 10_000,
  connectTimeoutMs: 10_000,
  maxQueuedPublishes: 1000,
  pingMarginMs: 5_000,
  pingTimeoutMs: 5_000,
});

interface Settings {
  autoConnect: boolean;
  minDelayMs: number;
  maxDelayMs: number;
  commandTimeoutMs: number;
  connectTimeoutMs: number;
  maxQueuedPublishes: number;
  pingMarginMs: number;
  pingTimeoutMs: number;
  pingIntervalMs: number | undefined;
  random: () => number;
}

type Timer = ReturnType<typeof setTimeout>;

/** A publish, history or presence command waiting for the connection (or for its channel's subscribe). */
interface QueuedCommand {
  /** Creation order: the queue is kept sorted by it, in-flight commands that were lost included. */
  readonly seq: number;
  readonly channel: Channel;
  readonly isPublish: boolean;
  /** The command as JSON without its id; undefined while a Blob is being read. */
  body: string | undefined;
  resolve(result: unknown): void;
  reject(error: unknown): void;
}

interface InFlight {
  readonly timer: Timer | undefined;
  /** Length of the frame sent, to find the culprit of a 1009 close. */
  readonly size: number;
  /** Queued commands are put back in the queue when the connection drops before their reply. */
  readonly queued: QueuedCommand | undefined;
  onReply(reply: Reply): void;
  onTimeout(): void;
  /** The connection ended before the reply (for commands that are not queued ones). */
  onLost?(): void;
}

interface Waiter<T> {
  resolve(value: T): void;
  reject(error: unknown): void;
}

export class ChorusClient extends Emitter {
  readonly url: string;
  readonly #options: ClientOptions;
  readonly #settings: Settings;
  readonly #WebSocket: WebSocketConstructor;
  readonly #channels = new Map<string, Channel>();
  readonly #msgIds = new MsgIdGenerator();
  readonly #host: ChannelHost;

  #state: ClientState = 'disconnected';
  #ws: WebSocketLike | undefined;
  /** Bumped whenever the current connection attempt ends: stale async continuations compare it. */
  #generation = 0;
  #nextId = 1;
  #inFlight = new Map<number, InFlight>();
  #queue: QueuedCommand[] = [];
  #seq = 0;
  #session: ConnectResult | undefined;
  /** Set by a `disconnect` push: no more commands on this socket, and how to reconnect. */
  #disconnectPush: DisconnectPush | undefined;
  /** A connect refusal (101…) waiting for the close that follows it. */
  #connectError: ChorusError | undefined;
  #attempt = 0;
  #reconnectTimer: Timer | undefined;
  #connectTimer: Timer | undefined;
  #idleTimer: Timer | undefined;
  #refreshTimer: Timer | undefined;
  #pingInFlight = false;
  #lastReceived = 0;
  #connectWaiters: Array<Waiter<ConnectResult>> = [];
  /** Channels with a subscribe sent on the current connection and not refused nor undone. */
  readonly #onServer = new Set<Channel>();
  /** Subscribes waiting to be retried after a transient refusal, on the current connection. */
  readonly #subscribeRetryTimers = new Set<ReturnType<typeof setTimeout>>();

  constructor(url: string, options: ClientOptions) {
    super();
    this.#options = options;
    this.#settings = validateOptions(options);
    this.#WebSocket = resolveWebSocket(options.WebSocket);
    this.url = resolveUrl(url, options.key);
    this.#host = {
      subscribeChannel: (channel) => this.#subscribeChannel(channel),
      unsubscribeChannel: (channel) => this.#unsubscribeChannel(channel),
      publish: (channel, event, data, publishOptions) => this.#publish(channel, event, data, publishOptions),
      request: (channel, body) => this.#enqueue(channel, false, JSON.stringify(body)),
      reportError: (error) => this.emit('error', error),
      isClosed: () => this.#state === 'closed',
    };
    if (this.#settings.autoConnect) {
      queueMicrotask(() => {
        if (this.#state === 'disconnected' && this.#ws === undefined && this.#reconnectTimer === undefined) this.#open();
      });
    }
  }

  get state(): ClientState {
    return this.#state;
  }

  /** The connect result of the current connection (client id, user, pingIntervalMs); undefined when not connected. */
  get session(): ConnectResult | undefined {
    return this.#state === 'connected' ? this.#session : undefined;
  }

  /**
   * Starts connecting (if not already) and resolves once connected. After close() or a terminal
   * disconnect it starts over. Rejects only when the client closes before connecting: with the
   * server's connect error (101) when there was one, else 203 client_closed / 204 terminal_disconnect.
   */
  connect(): Promise<ConnectResult> {
    if (this.#state === 'connected' && this.#session) return Promise.resolve(this.#session);
    const promise = new Promise<ConnectResult>((resolve, reject) => this.#connectWaiters.push({ resolve, reject }));
    if (this.#state === 'closed') this.#attempt = 0;
    if (this.#state !== 'connecting') {
      clearTimeout(this.#reconnectTimer);
      this.#reconnectTimer = undefined;
      this.#open();
    }
    return promise;
  }

  /**
   * Closes the connection and stops reconnecting. Queued and in-flight commands reject with 203
   * client_closed, subscriptions end. connect() starts again from scratch.
   */
  close(): void {
    if (this.#state === 'closed') return;
    this.#shutdown(1000, 'client closed', ChorusError.of(ErrorCodes.CLIENT_CLOSED, 'close() was called'), false);
  }

  /** The channel named `name` (the same object for the same name). Options given again replace the old ones for the next subscribe. */
  channel(name: string, options?: ChannelOptions): Channel {
    let channel = this.#channels.get(name);
    if (!channel) {
      channel = new Channel(this.#host, name, options ?? {});
      this.#channels.set(name, channel);
    } else if (options) {
      channel._setOptions(options);
    }
    return channel;
  }

  on<K extends keyof ClientEvents>(event: K, listener: ClientEvents[K]): () => void {
    return this.addListener(event, listener);
  }

  off<K extends keyof ClientEvents>(event: K, listener: ClientEvents[K]): void {
    this.removeListener(event, listener);
  }

  // ---- connection ---------------------------------------------------------------------------

  #setState(state: ClientState): void {
    const previous = this.#state;
    if (previous === state) return;
    this.#state = state;
    this.emit('state', state, previous);
  }

  #open(): void {
    const generation = ++this.#generation;
    this.#disconnectPush = undefined;
    this.#connectError = undefined;
    this.#setState('connecting');
    this.emit('connecting');
    if (generation !== this.#generation) return; // a listener closed the client
    // One deadline for the token, the socket opening and the connect reply.
    this.#connectTimer = setTimeout(() => {
      if (generation === this.#generation) this.#abandon('connect timeout');
    }, this.#settings.connectTimeoutMs);
    const { getToken } = this.#options;
    if (!getToken) return this.#openSocket(generation, this.#options.token);
    let pending: Promise<string>;
    try {
      pending = getToken();
    } catch (error) {
      pending = Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    pending.then(
      (token) => {
        if (generation !== this.#generation) return;
        if (typeof token !== 'string' || token === '') return this.#tokenFailed(new TypeError('getToken() must resolve with a non-empty string'));
        this.#openSocket(generation, token);
      },
      (error: unknown) => {
        if (generation === this.#generation) this.#tokenFailed(error);
      },
    );
  }

  #tokenFailed(cause: unknown): void {
    const error = ChorusError.of(ErrorCodes.UNAUTHORIZED, `getToken() failed: ${describe(cause)}`, { cause });
    this.emit('error', error);
    this.#connectionEnded(ABNORMAL_CLOSURE, 'getToken() failed');
  }

  #openSocket(generation: number, token: string | undefined): void {
    let ws: WebSocketLike;
    try {
      ws = new this.#WebSocket(this.url);
    } catch (error) {
      this.emit('error', new ChorusError(ErrorCodes.INTERNAL.code, ErrorCodes.INTERNAL.name, `WebSocket constructor failed: ${describe(error)}`, { cause: error }));
      return this.#connectionEnded(ABNORMAL_CLOSURE, 'WebSocket constructor failed');
    }
    this.#ws = ws;
    // Every handler ignores a socket that is no longer the current one.
    ws.addEventListener('open', () => {
      if (ws !== this.#ws || generation !== this.#generation || ws.readyState !== OPEN) return;
      const command: Record<string, unknown> = { type: 'connect', client: SDK_NAME };
      if (this.#options.secret !== undefined) command['secret'] = this.#options.secret;
      else if (token !== undefined) command['token'] = token;
      this.#write(ws, JSON.stringify(command), undefined, {
        onReply: (reply) => this.#onConnectReply(reply),
        onTimeout: () => undefined, // covered by the connect timer
      });
    });
    ws.addEventListener('message', (event) => {
      if (ws === this.#ws) this.#onMessage(event.data);
    });
    ws.addEventListener('close', (event) => {
      if (ws === this.#ws) this.#connectionEnded(event.code, event.reason);
    });
    // An error event is always followed by a close event, which does the work.
    ws.addEventListener('error', () => undefined);
  }

  #onConnectReply(reply: Reply): void {
    if (!reply.ok) {
      // The server closes right after (4003); the close decides what happens next.
      this.#connectError = ChorusError.fromReply(reply.error);
      this.emit('error', this.#connectError);
      return;
    }
    const result = reply.result as ConnectResult;
    clearTimeout(this.#connectTimer);
    this.#connectTimer = undefined;
    this.#session = result;
    this.#attempt = 0;
    this.#setState('connected');
    this.#lastReceived = Date.now();
    this.#armIdleTimer();
    this.#armRefresh(result.expiresAt);
    for (const channel of this.#channels.values()) if (channel._wanted) this.#sendSubscribe(channel);
    this.#flush();
    const waiters = this.#connectWaiters;
    this.#connectWaiters = [];
    for (const waiter of waiters) waiter.resolve(result);
    if (this.#state === 'connected') this.emit('connected', result);
  }

  #onMessage(data: unknown): void {
    this.#lastReceived = Date.now();
    if (typeof data !== 'string') return; // v1 servers only send text
    let frame: unknown;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    if (typeof frame !== 'object' || frame === null) return;
    const record = frame as Record<string, unknown>;
    if (typeof record['id'] === 'number') {
      const pending = this.#inFlight.get(record['id']);
      if (!pending) return; // a reply after its timeout
      this.#inFlight.delete(record['id']);
      clearTimeout(pending.timer);
      pending.onReply(frame as Reply);
      return;
    }
    switch (record['type']) {
      case 'pub': {
        const push = frame as PubPush;
        this.#channels.get(push.channel)?._pub(push);
        return;
      }
      case 'join':
      case 'leave': {
        const push = frame as JoinPush | LeavePush;
        this.#channels.get(push.channel)?._presence(push.type, push.member);
        return;
      }
      case 'unsubscribed': {
        // Not specified in docs/protocol.md yet: take a code/name/message (or reason) if present.
        const push = frame as { channel?: unknown; code?: unknown; name?: unknown; reason?: unknown; message?: unknown };
        if (typeof push.channel !== 'string') return;
        const text = typeof push.message === 'string' ? push.message : typeof push.reason === 'string' ? push.reason : 'unsubscribed by the server';
        const error = typeof push.code === 'number' ? new ChorusError(push.code, typeof push.name === 'string' ? push.name : 'unsubscribed', text) : undefined;
        const channel = this.#channels.get(push.channel);
        if (channel) this.#onServer.delete(channel);
        channel?._serverUnsubscribed(error);
        return;
      }
      case 'token_expired':
        // Our refresh did not make it in time (or there is no getToken): try once more now.
        this.#refreshToken();
        return;
      case 'disconnect':
        // The close follows; send nothing more on this socket.
        this.#disconnectPush = frame as DisconnectPush;
        return;
      default:
        return;
    }
  }

  /** Gives up on the current socket without waiting for its close (which may never come). */
  #abandon(reason: string): void {
    const ws = this.#ws;
    if (ws) {
      this.#ws = undefined;
      try {
        ws.close();
      } catch {
        // Already closing; nothing to do.
      }
    }
    this.#connectionEnded(ABNORMAL_CLOSURE, reason);
  }

  /** The current connection (or attempt) is over: requeue, then reconnect or stop. */
  #connectionEnded(code: number, reason: string): void {
    this.#ws = undefined;
    this.#generation++;
    this.#clearConnectionTimers();
    const push = this.#disconnectPush;
    this.#disconnectPush = undefined;
    if (push && code === ABNORMAL_CLOSURE) ({ code, reason } = push);
    this.#requeueInFlight(code);
    this.#onServer.clear();
    for (const channel of this.#channels.values()) channel._connectionLost();
    this.#session = undefined;

    const terminal = isTerminalCloseCode(code) || push?.reconnect === false;
    if (terminal) {
      const error = ChorusError.of(ErrorCodes.TERMINAL_DISCONNECT, `the server closed the connection with ${code}${reason ? ` (${reason})` : ''}; not reconnecting`, {
        closeCode: code,
        closeReason: reason,
        ...(this.#connectError ? { cause: this.#connectError } : {}),
      });
      return this.#shutdown(code, reason, error, true);
    }
    this.#setState('disconnected');
    const event: DisconnectedEvent = { code, reason, willReconnect: true };
    this.emit('disconnected', event);
    if (this.#state !== 'disconnected' || this.#ws !== undefined || this.#reconnectTimer !== undefined) return; // a listener took over
    this.#attempt++;
    const delayMs = push?.retryAfterMs !== undefined && push.retryAfterMs >= 0 ? push.retryAfterMs : backoffDelay(this.#attempt, this.#settings, this.#settings.random);
    this.emit('reconnecting', { attempt: this.#attempt, delayMs });
    if (this.#state !== 'disconnected' || this.#ws !== undefined || this.#reconnectTimer !== undefined) return;
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      if (this.#state === 'disconnected') this.#open();
    }, delayMs);
  }

  /** Ends everything: close(), or a terminal disconnect (`terminal` true). */
  #shutdown(code: number, reason: string, error: ChorusError, terminal: boolean): void {
    this.#generation++;
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    this.#clearConnectionTimers();
    this.#onServer.clear();
    const ws = this.#ws;
    this.#ws = undefined;
    if (ws) {
      try {
        ws.close(1000);
      } catch {
        // Closing a socket that is already closing.
      }
    }
    const inFlight = [...this.#inFlight.values()];
    this.#inFlight.clear();
    const queue = this.#queue;
    this.#queue = [];
    for (const pending of inFlight) {
      clearTimeout(pending.timer);
      pending.queued?.reject(error);
      pending.onLost?.();
    }
    for (const queued of queue) queued.reject(error);
    const previous = this.#state;
    this.#session = undefined;
    this.#setState('closed');
    for (const channel of this.#channels.values()) channel._clientClosed(error);
    const waiters = this.#connectWaiters;
    this.#connectWaiters = [];
    for (const waiter of waiters) waiter.reject(terminal && this.#connectError ? this.#connectError : error);
    if (previous === 'connected' || previous === 'connecting' || terminal) this.emit('disconnected', { code, reason, willReconnect: false });
    if (terminal) this.emit('error', error);
    this.emit('closed', terminal ? { code, reason, error } : { code, reason });
  }

  // ---- token refresh ------------------------------------------------------------------------

  /**
   * With `getToken`, a connection token is replaced in-band shortly before it expires (a tenth
   * of its remaining life, between 5 s and 60 s early, but never before half of it has passed,
   * so short-lived tokens cannot cause a refresh storm), and the connection never drops for it.
   */
  #armRefresh(expiresAt: number | undefined): void {
    clearTimeout(this.#refreshTimer);
    this.#refreshTimer = undefined;
    if (expiresAt === undefined || !this.#options.getToken) return;
    const remaining = expiresAt - Date.now();
    const early = Math.min(60_000, Math.max(5_000, remaining / 10));
    this.#refreshTimer = setTimeout(() => this.#refreshToken(), Math.max(0, remaining / 2, remaining - early));
  }

  #refreshToken(): void {
    const { getToken } = this.#options;
    const ws = this.#ws;
    const generation = this.#generation;
    if (!getToken || !ws || this.#state !== 'connected') return;
    getToken().then(
      (token) => {
        if (ws !== this.#ws || generation !== this.#generation || ws.readyState !== OPEN || this.#disconnectPush) return;
        this.#write(
          ws,
          JSON.stringify({ type: 'refresh', token }),
          undefined,
          {
            onReply: (reply) => {
              if (reply.ok) {
                const { expiresAt } = reply.result as RefreshResult;
                if (this.#session) this.#session = { ...this.#session, expiresAt };
                this.#armRefresh(expiresAt);
              } else {
                this.emit('error', ChorusError.fromReply(reply.error));
              }
            },
            onTimeout: () => this.emit('error', ChorusError.of(ErrorCodes.TIMEOUT, 'token refresh timed out')),
          },
          this.#settings.commandTimeoutMs,
        );
      },
      (error: unknown) => {
        if (generation === this.#generation) this.emit('error', ChorusError.of(ErrorCodes.UNAUTHORIZED, `getToken() failed for a refresh: ${describe(error)}`, { cause: error }));
      },
    );
  }

  #clearConnectionTimers(): void {
    for (const timer of this.#subscribeRetryTimers) clearTimeout(timer);
    this.#subscribeRetryTimers.clear();
    clearTimeout(this.#connectTimer);
    clearTimeout(this.#idleTimer);
    clearTimeout(this.#refreshTimer);
    this.#connectTimer = undefined;
    this.#idleTimer = undefined;
    this.#refreshTimer = undefined;
    this.#pingInFlight = false;
  }

  /** Lost in-flight commands go back to the queue in their original order; others are settled. */
  #requeueInFlight(closeCode: number): void {
    const lost = [...this.#inFlight.values()];
    this.#inFlight.clear();
    for (const pending of lost) {
      clearTimeout(pending.timer);
      pending.onLost?.();
    }
    const queued = lost.map((pending) => pending.queued).filter((q): q is QueuedCommand => q !== undefined);
    if (closeCode === MESSAGE_TOO_BIG && queued.length > 0) {
      // The server refused a frame over its limit. The largest frame in flight is at least as big
      // as the culprit, so it is over the limit too: refuse it rather than send it forever.
      let largest: InFlight | undefined;
      for (const pending of lost) if (pending.queued && (!largest || pending.size > largest.size)) largest = pending;
      const culprit = largest?.queued;
      if (culprit) {
        culprit.reject(ChorusError.of(ErrorCodes.MESSAGE_TOO_LARGE, 'the server closed the connection with 1009: the command was larger than the app allows'));
        queued.splice(queued.indexOf(culprit), 1);
      }
    }
    if (queued.length > 0) this.#queue = [...queued, ...this.#queue].sort((a, b) => a.seq - b.seq);
  }

  // ---- dead connection detection ------------------------------------------------------------

  #idleLimit(): number {
    const interval = this.#settings.pingIntervalMs ?? this.#session?.pingIntervalMs ?? 0;
    return interval > 0 ? interval + this.#settings.pingMarginMs : 0;
  }

  #armIdleTimer(delay: number = this.#idleLimit()): void {
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    if (delay <= 0) return;
    this.#idleTimer = setTimeout(() => this.#checkIdle(), delay);
  }

  #checkIdle(): void {
    this.#idleTimer = undefined;
    const limit = this.#idleLimit();
    if (limit <= 0 || this.#pingInFlight) return;
    const silence = Date.now() - this.#lastReceived;
    if (silence < limit) return this.#armIdleTimer(limit - silence);
    if (!this.#canSend()) return;
    this.#pingInFlight = true;
    this.#send(
      JSON.stringify({ type: 'ping' }),
      {
        onReply: () => {
          this.#pingInFlight = false;
          this.#armIdleTimer();
        },
        onTimeout: () => this.#abandon('no reply to ping'),
      },
      this.#settings.pingTimeoutMs,
    );
  }

  // ---- sending --------------------------------------------------------------------------------

  #canSend(): boolean {
    return this.#state === 'connected' && this.#ws !== undefined && this.#ws.readyState === OPEN && this.#disconnectPush === undefined;
  }

  /** Sends a command on the connected socket; only call when #canSend(). */
  #send(body: string, handlers: Omit<InFlight, 'timer' | 'size' | 'queued'>, timeoutMs: number, queued?: QueuedCommand): void {
    const ws = this.#ws;
    if (!ws) return;
    this.#write(ws, body, queued, handlers, timeoutMs);
  }

  #write(ws: WebSocketLike, body: string, queued: QueuedCommand | undefined, handlers: Omit<InFlight, 'timer' | 'size' | 'queued'>, timeoutMs?: number): void {
    const id = this.#nextId++;
    const frame = `{"id":${id},${body.slice(1)}`;
    const timer =
      timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            if (this.#inFlight.delete(id)) handlers.onTimeout();
          }, timeoutMs);
    this.#inFlight.set(id, { ...handlers, timer, size: frame.length, queued });
    try {
      ws.send(frame);
    } catch (error) {
      // Should not happen (we checked readyState); treat the socket as broken.
      this.#inFlight.delete(id);
      clearTimeout(timer);
      if (queued) this.#queue = [queued, ...this.#queue].sort((a, b) => a.seq - b.seq);
      queueMicrotask(() => {
        if (ws === this.#ws) this.#abandon(`send failed: ${describe(error)}`);
      });
    }
  }

  /**
   * Sends what the queue allows, in order. A command waits while its channel's subscribe is in
   * progress (a private channel needs it first) or its Blob is still being read, and so does
   * every later command of that channel; other channels go ahead.
   */
  #flush(): void {
    if (!this.#canSend() || this.#queue.length === 0) return;
    const held = new Set<Channel>();
    const remaining: QueuedCommand[] = [];
    for (const command of this.#queue) {
      const { channel } = command;
      if (!this.#canSend() || held.has(channel) || command.body === undefined || channel.state === 'subscribing') {
        held.add(channel);
        remaining.push(command);
        continue;
      }
      this.#dispatch(command, command.body);
    }
    this.#queue = remaining;
  }

  #dispatch(command: QueuedCommand, body: string): void {
    this.#send(
      body,
      {
        onReply: (reply) => (reply.ok ? command.resolve(reply.result) : command.reject(ChorusError.fromReply(reply.error))),
        onTimeout: () =>
          command.reject(
            ChorusError.of(
              ErrorCodes.TIMEOUT,
              command.isPublish
                ? `no reply to publish on ${command.channel.name} within ${this.#settings.commandTimeoutMs} ms; it may or may not have been published (retry with the same msgId to be sure)`
                : `no reply within ${this.#settings.commandTimeoutMs} ms`,
            ),
          ),
      },
      this.#settings.commandTimeoutMs,
      command,
    );
  }

  #enqueue(channel: Channel, isPublish: boolean, body: string | Promise<string>): Promise<unknown> {
    if (this.#state === 'closed') return Promise.reject(ChorusError.of(ErrorCodes.CLIENT_CLOSED, 'the client is closed; call connect() first'));
    if (isPublish) {
      let queuedPublishes = 0;
      for (const queued of this.#queue) if (queued.isPublish) queuedPublishes++;
      if (queuedPublishes >= this.#settings.maxQueuedPublishes) {
        return Promise.reject(ChorusError.of(ErrorCodes.QUEUE_FULL, `${queuedPublishes} publishes are already waiting to be sent (maxQueuedPublishes)`));
      }
    }
    return new Promise((resolve, reject) => {
      const command: QueuedCommand = { seq: ++this.#seq, channel, isPublish, body: undefined, resolve, reject };
      this.#queue.push(command);
      if (typeof body === 'string') {
        command.body = body;
        this.#flush();
        return;
      }
      body.then(
        (text) => {
          command.body = text;
          this.#flush();
        },
        (error: unknown) => {
          const index = this.#queue.indexOf(command);
          if (index >= 0) this.#queue.splice(index, 1);
          reject(error instanceof Error ? error : new Error(String(error)));
          this.#flush();
        },
      );
    });
  }

  #publish(channel: Channel, event: string, data: unknown, options: PublishOptions): Promise<PublishResult> {
    const msgId = options.msgId ?? this.#msgIds.next();
    if (typeof event !== 'string') return Promise.reject(new TypeError('publish(event, data): event must be a string'));
    if (typeof msgId !== 'string' || msgId.length === 0 || msgId.length > MAX_MSG_ID_LENGTH) {
      return Promise.reject(new TypeError(`publish: msgId must be 1–${MAX_MSG_ID_LENGTH} characters`));
    }
    const head = { type: 'publish', channel: channel.name, event };
    let body: string | Promise<string>;
    if (isBlob(data)) {
      body = data.arrayBuffer().then((buffer) => JSON.stringify({ ...head, b64: bytesToBase64(new Uint8Array(buffer)), msgId }));
    } else if (isBufferSource(data)) {
      body = JSON.stringify({ ...head, b64: bytesToBase64(toBytes(data)), msgId });
    } else {
      try {
        // Serialized now: later changes to `data` do not alter a queued publish.
        body = JSON.stringify({ ...head, data: data === undefined ? null : data, msgId });
      } catch (error) {
        return Promise.reject(error instanceof Error ? error : new TypeError(String(error)));
      }
    }
    return this.#enqueue(channel, true, body) as Promise<PublishResult>;
  }

  // ---- subscriptions ----------------------------------------------------------------------------

  #subscribeChannel(channel: Channel): void {
    if (this.#canSend()) this.#sendSubscribe(channel);
    // Otherwise #onConnectReply subscribes every wanted channel.
  }

  #sendSubscribe(channel: Channel): void {
    const attempt = ++channel._attempt;
    const generation = this.#generation;
    const current = (): boolean => attempt === channel._attempt && generation === this.#generation && channel._wanted;
    channel._subscribeCommand().then(
      (body) => {
        if (!current()) return;
        if (!this.#canSend()) return; // the connection dropped meanwhile: the next connect resubscribes
        this.#onServer.add(channel);
        this.#send(
          JSON.stringify(body),
          {
            onReply: (reply) => {
              if (!reply.ok && current()) this.#onServer.delete(channel);
              // A stale attempt: unsubscribe() came meanwhile and already sent its unsubscribe.
              if (!current()) return;
              if (reply.ok) channel._subscribed(reply.result as SubscribeResult);
              else {
                const error = ChorusError.fromReply(reply.error);
                if (TRANSIENT_REPLY_CODES.has(error.code)) this.#retrySubscribe(channel);
                else channel._subscribeFailed(error);
              }
              this.#flush();
            },
            onTimeout: () => {
              if (!current()) return;
              // The server may still do it later: queue an unsubscribe behind it to be sure.
              if (this.#onServer.delete(channel) && this.#canSend()) void this.#sendUnsubscribe(channel);
              channel._subscribeFailed(ChorusError.of(ErrorCodes.TIMEOUT, `no reply to subscribe ${channel.name} within ${this.#settings.commandTimeoutMs} ms`));
              this.#flush();
            },
          },
          this.#settings.commandTimeoutMs,
        );
      },
      (error: unknown) => {
        if (!current()) return;
        const source = channel.options.getAuth ? 'getAuth()' : 'getToken()';
        channel._subscribeFailed(ChorusError.of(ErrorCodes.PERMISSION_DENIED, `${source} for channel ${channel.name} failed: ${describe(error)}`, { cause: error }));
        this.#flush();
      },
    );
  }

  /**
   * The server could not subscribe right now (its engine failed, or this connection sent too many
   * commands): try again on this connection after a backoff delay. The channel stays
   * "subscribing" and its subscribe() promise pending; a reconnect resubscribes anyway.
   */
  #retrySubscribe(channel: Channel): void {
    const generation = this.#generation;
    const attempt = channel._attempt;
    const delayMs = backoffDelay(++channel._transientFailures, this.#settings, this.#settings.random);
    const timer = setTimeout(() => {
      this.#subscribeRetryTimers.delete(timer);
      if (generation === this.#generation && attempt === channel._attempt && channel._wanted && this.#canSend()) this.#sendSubscribe(channel);
    }, delayMs);
    this.#subscribeRetryTimers.add(timer);
  }

  #unsubscribeChannel(channel: Channel): Promise<void> {
    this.#flush(); // commands held back by the subscribe may go now
    // Subscribed, or a subscribe on the wire: undo it (the server handles commands in order).
    if (!this.#onServer.delete(channel) || !this.#canSend()) return Promise.resolve();
    return this.#sendUnsubscribe(channel);
  }

  #sendUnsubscribe(channel: Channel): Promise<void> {
    return new Promise((resolve) => {
      // Whatever the answer (108 not_subscribed included), the subscription is gone.
      this.#send(JSON.stringify({ type: 'unsubscribe', channel: channel.name }), { onReply: () => resolve(), onTimeout: () => resolve(), onLost: () => resolve() }, this.#settings.commandTimeoutMs);
    });
  }
}

/** Creates a client; see ClientOptions. Connects at once unless `autoConnect: false`. */
export function createClient(url: string, options: ClientOptions): ChorusClient {
  return new ChorusClient(url, options);
}

function validateOptions(options: ClientOptions): Settings {
  if (typeof options !== 'object' || options === null) throw new TypeError('createClient(url, options): options are required (at least { key })');
  if (typeof options.key !== 'string' || options.key === '') throw new TypeError('createClient: options.key (the app key) is required');
  if (options.token !== undefined && options.getToken !== undefined) throw new TypeError('createClient: pass token or getToken, not both');
  const settings: Settings = {
    autoConnect: options.autoConnect ?? DEFAULT_OPTIONS.autoConnect,
    minDelayMs: options.minDelayMs ?? DEFAULT_OPTIONS.minDelayMs,
    maxDelayMs: options.maxDelayMs ?? DEFAULT_OPTIONS.maxDelayMs,
    commandTimeoutMs: options.commandTimeoutMs ?? DEFAULT_OPTIONS.commandTimeoutMs,
    connectTimeoutMs: options.connectTimeoutMs ?? DEFAULT_OPTIONS.connectTimeoutMs,
    maxQueuedPublishes: options.maxQueuedPublishes ?? DEFAULT_OPTIONS.maxQueuedPublishes,
    pingMarginMs: options.pingMarginMs ?? DEFAULT_OPTIONS.pingMarginMs,
    pingTimeoutMs: options.pingTimeoutMs ?? DEFAULT_OPTIONS.pingTimeoutMs,
    pingIntervalMs: options.pingIntervalMs,
    random: options.random ?? Math.random,
  };
  for (const name of ['minDelayMs', 'maxDelayMs', 'commandTimeoutMs', 'connectTimeoutMs', 'maxQueuedPublishes', 'pingMarginMs', 'pingTimeoutMs', 'pingIntervalMs'] as const) {
    const value = settings[name];
    if (value !== undefined && (typeof value !== 'number' || !Number.isFinite(value) || value < 0)) throw new RangeError(`createClient: options.${name} must be a finite number ≥ 0`);
  }
  if (settings.maxDelayMs < settings.minDelayMs) throw new RangeError('createClient: options.maxDelayMs must be ≥ minDelayMs');
  return settings;
}

function resolveWebSocket(given: WebSocketConstructor | undefined): WebSocketConstructor {
  const ctor = given ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (typeof ctor !== 'function') {
    throw new TypeError(
      'createClient: no WebSocket implementation found. This runtime has no global WebSocket (Node.js < 22); ' +
        "pass one with the WebSocket option, e.g. import WebSocket from 'ws' and createClient(url, { key, WebSocket }).",
    );
  }
  return ctor;
}

/**
 * `ws(s)://host[:port]` or `http(s)://…` (a page's origin), with or without the `/v1/connect`
 * path; relative URLs resolve against the page. The app key goes in the query (`?key=`): the
 * server checks the Origin against the app before accepting the upgrade.
 */
function resolveUrl(url: string, key: string): string {
  const base = (globalThis as { location?: { href?: string } }).location?.href;
  let parsed: URL;
  try {
    parsed = new URL(url, base);
  } catch {
    throw new TypeError(`createClient: ${JSON.stringify(url)} is not a valid URL`);
  }
  if (parsed.protocol === 'http:') parsed.protocol = 'ws:';
  else if (parsed.protocol === 'https:') parsed.protocol = 'wss:';
  if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') throw new TypeError(`createClient: the URL must be ws://, wss://, http:// or https://, not ${parsed.protocol}`);
  if (parsed.pathname === '' || parsed.pathname === '/') parsed.pathname = V1_PATH;
  parsed.searchParams.set('key', key);
  parsed.hash = '';
  return parsed.toString();
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
