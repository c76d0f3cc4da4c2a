/**
 * A channel handle: subscription state, recovery position, dedupe, and the app's listeners. The
 * client (client.ts) owns the socket and calls the `_`-prefixed methods; apps never need them.
 */
import type { Member, PubPush, StreamPosition, SubscribeResult } from '@chorus/protocol';
import { ErrorCodes } from '@chorus/protocol';
import { Emitter } from './emitter.js';
import { ChorusError } from './errors.js';
import { base64ToBytes } from './payload.js';
import {
  RESERVED_CHANNEL_EVENTS,
  type ChannelEvents,
  type ChannelOptions,
  type ChannelState,
  type HistoryOptions,
  type HistoryPage,
  type PresencePage,
  type Publication,
  type PublicationListener,
  type PublishOptions,
  type SubscribedEvent,
  type UnsubscribedEvent,
} from './types.js';
import type { PublishResult } from '@chorus/protocol';

/** @internal What a channel needs from its client. */
export interface ChannelHost {
  /** The channel now wants a subscription: subscribe now if connected, else on connect. */
  subscribeChannel(channel: Channel): void;
  /** The channel no longer wants its subscription: tell the server if it has (or is getting) one. */
  unsubscribeChannel(channel: Channel): Promise<void>;
  publish(channel: Channel, event: string, data: unknown, options: PublishOptions): Promise<PublishResult>;
  request(channel: Channel, body: Record<string, unknown>): Promise<unknown>;
  /** Reports an error that no promise carries (a failed resubscribe) on the client's `error` event. */
  reportError(error: ChorusError): void;
  isClosed(): boolean;
}

interface Waiter {
  resolve(result: SubscribeResult): void;
  reject(error: unknown): void;
}

/** One of an app's channels. Get it with `client.channel(name)`; the same name gives the same object. */
export class Channel extends Emitter {
  readonly name: string;
  #options: ChannelOptions;
  readonly #host: ChannelHost;
  #wanted = false;
  #state: ChannelState = 'unsubscribed';
  #position: StreamPosition | undefined;
  #lastResult: SubscribeResult | undefined;
  #succeededOnce = false;
  #waiters: Waiter[] = [];
  /** @internal Bumped on every subscribe attempt so a stale async token fetch is ignored. */
  _attempt = 0;
  /** @internal Subscribes refused with a transient error in a row (they are retried with backoff). */
  _transientFailures = 0;

  /** @internal */
  constructor(host: ChannelHost, name: string, options: ChannelOptions) {
    super();
    this.#host = host;
    this.name = name;
    this.#options = validateChannelOptions(options);
  }

  get state(): ChannelState {
    return this.#state;
  }

  /** The last position seen (latest publication delivered, or the subscribe position); used for recovery. */
  get position(): StreamPosition | undefined {
    return this.#position;
  }

  get options(): Readonly<ChannelOptions> {
    return this.#options;
  }

  /** @internal Replaces the options for the next (re)subscribe. */
  _setOptions(options: ChannelOptions): void {
    this.#options = validateChannelOptions(options);
  }

  /**
   * Subscribes (or waits for the connection, then subscribes). Resolves with the first successful
   * subscribe result; after that the SDK keeps the subscription across reconnects by itself.
   * Rejects with the server's error (102, 103, 107…), 202 timeout, or 203/204 if the client closes.
   */
  subscribe(): Promise<SubscribeResult> {
    if (this.#host.isClosed()) return Promise.reject(ChorusError.of(ErrorCodes.CLIENT_CLOSED, 'the client is closed; call connect() first'));
    if (this.#state === 'subscribed' && this.#lastResult) return Promise.resolve(this.#lastResult);
    const promise = new Promise<SubscribeResult>((resolve, reject) => this.#waiters.push({ resolve, reject }));
    if (!this.#wanted) {
      this.#wanted = true;
      this.#position = undefined;
      this.#succeededOnce = false;
      this.#setState('subscribing');
      this.#host.subscribeChannel(this);
    }
    return promise;
  }

  /**
   * Ends the subscription (and presence). Resolves once the server confirmed, or at once when
   * there is no live subscription. A pending `subscribe()` rejects with 203 client_closed.
   */
  unsubscribe(): Promise<void> {
    if (!this.#wanted) return Promise.resolve();
    this.#end('unsubscribe', ChorusError.of(ErrorCodes.CLIENT_CLOSED, `unsubscribe() was called before the subscription to ${this.name} completed`));
    return this.#host.unsubscribeChannel(this);
  }

  /**
   * Publishes; resolves with `{offset, epoch}` once the server accepted it. Strings and JSON
   * values go as `data`; ArrayBuffer, typed arrays/DataView and Blob as binary (`b64`). Queued
   * while not connected (bounded: 201 queue_full) and re-sent after a reconnect with the same
   * msgId, so the server publishes it exactly once.
   */
  publish(event: string, data: unknown, options: PublishOptions = {}): Promise<PublishResult> {
    return this.#host.publish(this, event, data, options);
  }

  /** Retained publications, oldest first (binary ones as Uint8Array, like live ones). */
  async history(options: HistoryOptions = {}): Promise<HistoryPage> {
    const body: Record<string, unknown> = { type: 'history', channel: this.name };
    if (options.limit !== undefined) body['limit'] = options.limit;
    if (options.since !== undefined) body['since'] = { offset: options.since.offset, epoch: options.since.epoch };
    const result = (await this.#host.request(this, body)) as {
      epoch: string;
      offset: number;
      recovered?: boolean;
      publications: Array<Omit<PubPush, 'type' | 'channel' | 'epoch'>>;
    };
    const page: { -readonly [K in keyof HistoryPage]: HistoryPage[K] } = {
      epoch: result.epoch,
      offset: result.offset,
      publications: result.publications.map((p) => toPublication(this.name, result.epoch, p)),
    };
    if (result.recovered !== undefined) page.recovered = result.recovered;
    return page;
  }

  /** The channel's presence roster. */
  async presence(): Promise<PresencePage> {
    const result = (await this.#host.request(this, { type: 'presence', channel: this.name })) as PresencePage;
    return { members: result.members };
  }

  /** Channel-level events (reserved names), see ChannelEvents. Returns a function removing the listener. */
  on<K extends keyof ChannelEvents>(event: K, listener: ChannelEvents[K]): () => void;
  /** Publications whose `event` equals the name, or every publication with `'*'`. */
  on(event: string, listener: PublicationListener): () => void;
  on(event: string, listener: (...args: never[]) => unknown): () => void {
    return this.addListener(event, listener);
  }

  off<K extends keyof ChannelEvents>(event: K, listener: ChannelEvents[K]): void;
  off(event: string, listener: PublicationListener): void;
  off(event: string, listener: (...args: never[]) => unknown): void {
    this.removeListener(event, listener);
  }

  // ---- driven by the client -------------------------------------------------------------------

  /** @internal */
  get _wanted(): boolean {
    return this.#wanted;
  }

  /** @internal The subscribe command (without id); resolves the channel token first if needed. */
  async _subscribeCommand(): Promise<Record<string, unknown>> {
    const body: Record<string, unknown> = { type: 'subscribe', channel: this.name };
    if (this.#options.presence) body['presence'] = true;
    if (this.#position) body['since'] = { offset: this.#position.offset, epoch: this.#position.epoch };
    if (this.#options.getAuth) {
      const { auth, channelData } = await this.#options.getAuth();
      body['auth'] = auth;
      if (channelData !== undefined) body['channelData'] = channelData;
      return body;
    }
    const token = this.#options.getToken ? await this.#options.getToken() : this.#options.token;
    if (token !== undefined) body['token'] = token;
    return body;
  }

  /** @internal A subscribe succeeded on the current connection. */
  _subscribed(result: SubscribeResult): void {
    const since = this.#position;
    const resubscribed = this.#succeededOnce;
    this.#succeededOnce = true;
    this._transientFailures = 0;
    this.#lastResult = result;
    this.#setState('subscribed');
    const current = { offset: result.offset, epoch: result.epoch };
    // recovered: true → the replay follows as pub pushes; keep `since` so they pass the dedupe.
    if (!(since && result.recovered === true)) this.#position = current;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiters) waiter.resolve(result);
    if (since && result.recovered !== true) this.emit('recovery-failed', { since, position: current });
    const event: SubscribedEvent = { ...result, resubscribed };
    this.emit('subscribed', event);
  }

  /** @internal A subscribe failed: the channel is given up (the app may call subscribe() again). */
  _subscribeFailed(error: ChorusError): void {
    if (!this.#wanted) return;
    const unreported = this.#waiters.length === 0;
    this.#end('error', error);
    if (unreported) {
      this.emit('error', error);
      this.#host.reportError(error);
    }
  }

  /** @internal The connection dropped: a wanted subscription is resubscribed on the next connect. */
  _connectionLost(): void {
    if (this.#wanted) this.#setState('subscribing');
  }

  /** @internal The client closed (close() or a terminal disconnect). */
  _clientClosed(error: ChorusError): void {
    if (this.#wanted) this.#end('client_closed', error);
  }

  /** @internal The server ended the subscription on its own. */
  _serverUnsubscribed(error: ChorusError | undefined): void {
    if (!this.#wanted) return;
    this.#end('server', error);
  }

  /** @internal A `pub` push. Publications at or before the last seen offset of the same epoch are dropped. */
  _pub(push: PubPush): void {
    if (this.#state !== 'subscribed') return;
    const seen = this.#position;
    if (seen && push.epoch === seen.epoch && push.offset <= seen.offset) return;
    this.#position = { offset: push.offset, epoch: push.epoch };
    const publication = toPublication(this.name, push.epoch, push);
    if (!RESERVED_CHANNEL_EVENTS.has(publication.event) && publication.event !== '*') this.emit(publication.event, publication.data, publication);
    this.emit('*', publication.data, publication);
  }

  /** @internal A `join` or `leave` push. */
  _presence(type: 'join' | 'leave', member: Member): void {
    if (this.#state === 'subscribed') this.emit(type, member);
  }

  #end(reason: UnsubscribedEvent['reason'], error: ChorusError | undefined): void {
    this.#wanted = false;
    this._attempt++;
    const wasActive = this.#state !== 'unsubscribed';
    this.#setState('unsubscribed');
    this.#position = undefined;
    this.#lastResult = undefined;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiters) waiter.reject(error ?? ChorusError.of(ErrorCodes.CLIENT_CLOSED));
    if (wasActive) this.emit('unsubscribed', error ? { reason, error } : { reason });
  }

  #setState(state: ChannelState): void {
    this.#state = state;
  }
}

function validateChannelOptions(options: ChannelOptions): ChannelOptions {
  if (options.token !== undefined && options.getToken !== undefined) throw new TypeError('channel options: pass token or getToken, not both');
  if (options.getAuth !== undefined && (options.token !== undefined || options.getToken !== undefined)) throw new TypeError('channel options: pass getAuth or a token, not both');
  return { ...options };
}

function toPublication(channel: string, epoch: string, p: { offset: number; event: string; data?: unknown; b64?: string; meta?: unknown; ts: number }): Publication {
  const binary = typeof p.b64 === 'string';
  const publication: { -readonly [K in keyof Publication]: Publication[K] } = {
    channel,
    event: p.event,
    data: binary ? base64ToBytes(p.b64 as string) : p.data,
    binary,
    offset: p.offset,
    epoch,
    ts: p.ts,
  };
  if (p.meta !== undefined) publication.meta = p.meta;
  return publication;
}
