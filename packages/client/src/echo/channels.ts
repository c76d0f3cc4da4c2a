/**
 * Echo's channel objects (public, private, presence) over SDK channels. They mirror Echo's
 * PusherChannel family method for method, so app code written against Echo runs unchanged; what
 * happens underneath is the SDK's: resubscribe after a reconnect and resume from the last offset,
 * so an event published during a cut arrives once, in order.
 *
 * Pusher's internal event names (`pusher:subscription_succeeded`, …) are kept on `on()`, because
 * apps bind to them directly too.
 */
import type { Member, PublishResult, StreamPosition } from '@chorus/protocol';
import { ErrorCodes } from '@chorus/protocol';
import type { Channel } from '../channel.js';
import { ChorusError } from '../errors.js';
import type { Publication, SubscribedEvent, UnsubscribedEvent } from '../types.js';
import { AuthEndpointError } from './auth.js';
import { EventFormatter } from './formatter.js';

/** Echo's whispers are Pusher client events: `whisper('typing')` sends `client-typing`. */
export const WHISPER_PREFIX = 'client-';

const SUBSCRIPTION_SUCCEEDED = 'pusher:subscription_succeeded';
const SUBSCRIPTION_ERROR = 'pusher:subscription_error';
const MEMBER_ADDED = 'pusher:member_added';
const MEMBER_REMOVED = 'pusher:member_removed';

/** What `error(callback)` gets, shaped like pusher-js's `pusher:subscription_error` data. */
export interface SubscriptionErrorStatus {
  /** `AuthError`: the auth endpoint or the server refused the authorization. */
  readonly type: 'AuthError' | 'SubscriptionError' | 'WhisperError';
  readonly error: string;
  /** The auth endpoint's HTTP status, 403 for a refused signature, else the Chorus error code. */
  readonly status: number;
}

/** What `here()` callbacks get inside `pusher:subscription_succeeded` on presence channels. */
export interface PresenceRoster {
  /** user id → user_info (the presence auth's channel_data), one entry per user. */
  readonly members: Record<string, unknown>;
  readonly count: number;
}

/** A member as `pusher:member_added`/`removed` carry it; Echo's joining/leaving get its `info`. */
export interface PresenceMember {
  readonly id: string;
  readonly info: unknown;
}

/** The public channel: `Echo.channel(name)`. */
export class ChorusEchoChannel {
  readonly name: string;
  /** The SDK channel underneath (offsets, history, state). */
  readonly subscription: Channel;
  readonly eventFormatter: EventFormatter;
  /** The event Laravel's database/broadcast notifications are sent as. */
  notificationCreatedEvent = '.Illuminate\\Notifications\\Events\\BroadcastNotificationCreated';
  readonly #listeners = new Map<string, CallableFunction[]>();
  #global: CallableFunction[] = [];
  readonly #removers: Array<() => void> = [];
  #left = false;

  /** @internal Created by ChorusConnector; call subscribe() after construction. */
  constructor(subscription: Channel, namespace: string | false) {
    this.name = subscription.name;
    this.subscription = subscription;
    this.eventFormatter = new EventFormatter(namespace);
    this._track(subscription.on('*', (_data, publication) => this._publication(publication)));
    this._track(subscription.on('subscribed', (event) => this._subscribed(event)));
    this._track(subscription.on('unsubscribed', (event) => this.#unsubscribed(event)));
  }

  /** Subscribes (again, after a refusal). Failures reach error() callbacks, not an exception. */
  subscribe(): void {
    if (this.#left) return;
    this.subscription.subscribe().catch(() => undefined); // reported by the 'unsubscribed' event
  }

  /** Leaves the channel for good; the connector forgets this object (Echo's leaveChannel). */
  unsubscribe(): void {
    if (this.#left) return;
    this.#left = true;
    for (const remove of this.#removers.splice(0)) remove();
    void this.subscription.unsubscribe();
  }

  /** `listen('OrderShipped', cb)`: the event `App\Events\OrderShipped`; `'.name'` is the name as is. */
  listen(event: string, callback: CallableFunction): this {
    return this.on(this.eventFormatter.format(event), callback);
  }

  /** Every event (not Pusher's internal ones), as `callback(name, data)` with the namespace removed. */
  listenToAll(callback: CallableFunction): this {
    this.#global.push(callback);
    return this;
  }

  stopListening(event: string, callback?: CallableFunction): this {
    return this.#unbind(this.eventFormatter.format(event), callback);
  }

  stopListeningToAll(callback?: CallableFunction): this {
    this.#global = callback ? this.#global.filter((c) => c !== callback) : [];
    return this;
  }

  listenForWhisper(event: string, callback: CallableFunction): this {
    return this.listen(`.${WHISPER_PREFIX}${event}`, callback);
  }

  stopListeningForWhisper(event: string, callback?: CallableFunction): this {
    return this.stopListening(`.${WHISPER_PREFIX}${event}`, callback);
  }

  notification(callback: CallableFunction): this {
    return this.listen(this.notificationCreatedEvent, callback);
  }

  stopListeningForNotification(callback: CallableFunction): this {
    return this.stopListening(this.notificationCreatedEvent, callback);
  }

  /** After every successful subscribe, the automatic ones after a reconnect included (as pusher-js). */
  subscribed(callback: CallableFunction): this {
    return this.on(SUBSCRIPTION_SUCCEEDED, () => call(callback));
  }

  /** A refused subscription (see SubscriptionErrorStatus). */
  error(callback: CallableFunction): this {
    return this.on(SUBSCRIPTION_ERROR, (status: SubscriptionErrorStatus) => call(callback, status));
  }

  /** Binds to an exact event name, Pusher's internal ones included. */
  on(event: string, callback: CallableFunction): this {
    const list = this.#listeners.get(event);
    if (list) list.push(callback);
    else this.#listeners.set(event, [callback]);
    return this;
  }

  // ---- driven by the SDK channel ---------------------------------------------------------------

  /** @internal */
  protected _track(remove: () => void): void {
    this.#removers.push(remove);
  }

  /** @internal */
  protected get _left(): boolean {
    return this.#left;
  }

  /** @internal */
  protected _publication(publication: Publication): void {
    this._emit(publication.event, eventData(publication));
  }

  /** @internal */
  protected _subscribed(_event: SubscribedEvent): void {
    this._announceSubscribed();
  }

  /** @internal */
  protected _announceSubscribed(): void {
    this._emit(SUBSCRIPTION_SUCCEEDED, {});
  }

  /** @internal */
  protected _emit(event: string, data: unknown): void {
    for (const callback of [...(this.#listeners.get(event) ?? [])]) invoke(callback, [data]);
    if (event.startsWith('pusher:') || this.#global.length === 0) return;
    const name = this.eventFormatter.unformat(event);
    for (const callback of [...this.#global]) invoke(callback, [name, data]);
  }

  /** @internal Also the connector's, for auth endpoint failures it retries. */
  _error(status: SubscriptionErrorStatus): void {
    this._emit(SUBSCRIPTION_ERROR, status);
  }

  #unbind(event: string, callback: CallableFunction | undefined): this {
    const list = this.#listeners.get(event);
    if (!list) return this;
    const kept = callback ? list.filter((c) => c !== callback) : [];
    if (kept.length > 0) this.#listeners.set(event, kept);
    else this.#listeners.delete(event);
    return this;
  }

  #unsubscribed(event: UnsubscribedEvent): void {
    if ((event.reason === 'error' || event.reason === 'server') && event.error) this._error(errorStatus(event.error));
  }
}

/**
 * `Echo.private(name)`: authorized through the auth endpoint, and with whispers. A whisper goes
 * to the channel's other members only: the server never sends it back live, and one that comes
 * back in a replay after a reconnect (the sender had not seen past it) is recognised by its
 * offset, from the publish's acknowledgement, and dropped.
 */
export class ChorusEchoPrivateChannel extends ChorusEchoChannel {
  /** `epoch:offset` of this client's whispers that a replay could still bring back. */
  readonly #own = new Set<string>();
  #pendingWhispers = 0;
  /** Whispers of a replay that may be this client's own, held until its pending whispers are acknowledged. */
  #held: Publication[] = [];
  /** The replay of the latest resubscribe runs up to here. */
  #replayEnd: StreamPosition | undefined;

  /** Sends `client-<eventName>` to the channel's other subscribers (queued while offline). */
  whisper(eventName: string, data: unknown): this {
    this.#pendingWhispers++;
    this.subscription.publish(`${WHISPER_PREFIX}${eventName}`, data).then(
      (result) => this.#whisperDone(result),
      (error: unknown) => {
        this.#whisperDone(undefined);
        // Refusals by the server; not the SDK's own 2xx (a disconnect() while it was queued).
        if (error instanceof ChorusError && error.code < 200) this._error({ type: 'WhisperError', error: error.message, status: error.code });
      },
    );
    return this;
  }

  protected override _subscribed(event: SubscribedEvent): void {
    this.#replayEnd = event.recovered === true ? { epoch: event.epoch, offset: event.offset } : undefined;
    super._subscribed(event);
  }

  protected override _publication(publication: Publication): void {
    if (publication.event.startsWith(WHISPER_PREFIX)) {
      if (this.#own.delete(positionKey(publication))) return;
      if (this.#held.length > 0 || (this.#pendingWhispers > 0 && this.#inReplay(publication))) {
        this.#held.push(publication);
        return;
      }
    }
    this.#forgetPassed();
    super._publication(publication);
  }

  #whisperDone(result: PublishResult | undefined): void {
    this.#pendingWhispers--;
    if (result) {
      const key = positionKey(result);
      const held = this.#held.findIndex((publication) => positionKey(publication) === key);
      if (held >= 0) this.#held.splice(held, 1);
      else if (!this.#passed(result)) this.#own.add(key);
    }
    if (this.#pendingWhispers > 0 || this.#held.length === 0) return;
    const held = this.#held;
    this.#held = [];
    for (const publication of held) if (!this._left) super._publication(publication);
  }

  #inReplay(publication: Publication): boolean {
    const end = this.#replayEnd;
    return end !== undefined && publication.epoch === end.epoch && publication.offset <= end.offset;
  }

  /** The channel's position is at or past it: no replay can bring it back any more. */
  #passed(position: StreamPosition): boolean {
    const seen = this.subscription.position;
    return seen !== undefined && (seen.epoch !== position.epoch || seen.offset >= position.offset);
  }

  #forgetPassed(): void {
    for (const key of this.#own) {
      const [epoch = '', offset = '0'] = splitKey(key);
      if (this.#passed({ epoch, offset: Number(offset) })) this.#own.delete(key);
    }
  }
}

/**
 * `Echo.join(name)`: a presence channel. Chorus reports every connection joining and leaving;
 * Echo's callbacks are per user, as with Pusher, so a user's second tab changes nothing and
 * `here()` lists each user once. After a reconnect `here()` is called again with the roster as it
 * is then (pusher-js does the same).
 */
export class ChorusEchoPresenceChannel extends ChorusEchoPrivateChannel {
  /** By connection (Member.uuid). */
  #members = new Map<string, Member>();
  #connectionsPerUser = new Map<string, number>();
  /** join/leave pushes that came while the roster was being read; applied on top of it. */
  #queued: Array<{ readonly type: 'join' | 'leave'; readonly member: Member }> | undefined;
  #rosterRequest = 0;

  /** @internal */
  constructor(subscription: Channel, namespace: string | false) {
    super(subscription, namespace);
    this._track(subscription.on('join', (member) => this.#change('join', member)));
    this._track(subscription.on('leave', (member) => this.#change('leave', member)));
  }

  /** The members (their user_info) right after each subscribe. */
  here(callback: CallableFunction): this {
    return this.on(SUBSCRIPTION_SUCCEEDED, (roster: PresenceRoster) => call(callback, Object.keys(roster.members).map((id) => roster.members[id])));
  }

  /** A user joined (the first of their connections): `callback(user_info)`. */
  joining(callback: CallableFunction): this {
    return this.on(MEMBER_ADDED, (member: PresenceMember) => call(callback, member.info));
  }

  /** A user left (the last of their connections): `callback(user_info)`. */
  leaving(callback: CallableFunction): this {
    return this.on(MEMBER_REMOVED, (member: PresenceMember) => call(callback, member.info));
  }

  protected override _announceSubscribed(): void {
    const request = ++this.#rosterRequest;
    this.#queued = [];
    this.subscription.presence().then(
      ({ members }) => {
        if (request !== this.#rosterRequest || this._left) return;
        const queued = this.#queued ?? [];
        this.#queued = undefined;
        this.#members = new Map();
        this.#connectionsPerUser = new Map();
        for (const member of members) this.#apply('join', member, false);
        for (const { type, member } of queued) this.#apply(type, member, false);
        const roster: Record<string, unknown> = {};
        for (const member of this.#members.values()) if (!(member.user in roster)) roster[member.user] = userInfo(member);
        this._emit(SUBSCRIPTION_SUCCEEDED, { members: roster, count: Object.keys(roster).length } satisfies PresenceRoster);
      },
      (error: unknown) => {
        if (request !== this.#rosterRequest || this._left) return;
        // A reconnect reads the roster again; report only what the server refused.
        if (error instanceof ChorusError && error.code < 200) this._error({ type: 'SubscriptionError', error: `reading the presence roster failed: ${error.message}`, status: error.code });
      },
    );
  }

  #change(type: 'join' | 'leave', member: Member): void {
    if (this.#queued) this.#queued.push({ type, member });
    else this.#apply(type, member, true);
  }

  /**
   * A join of a known connection or a leave of an unknown one is a change the roster read
   * already showed: ignored, so nothing is announced twice.
   */
  #apply(type: 'join' | 'leave', member: Member, announce: boolean): void {
    const count = this.#connectionsPerUser.get(member.user) ?? 0;
    if (type === 'join') {
      if (this.#members.has(member.uuid)) return;
      this.#members.set(member.uuid, member);
      this.#connectionsPerUser.set(member.user, count + 1);
      if (announce && count === 0) this._emit(MEMBER_ADDED, { id: member.user, info: userInfo(member) } satisfies PresenceMember);
      return;
    }
    const known = this.#members.get(member.uuid);
    if (!known) return;
    this.#members.delete(member.uuid);
    if (count > 1) this.#connectionsPerUser.set(member.user, count - 1);
    else this.#connectionsPerUser.delete(member.user);
    if (announce && count <= 1) this._emit(MEMBER_REMOVED, { id: member.user, info: userInfo(known) } satisfies PresenceMember);
  }
}

/** pusher-js parses string data that is JSON, so Echo callbacks get objects; the same here. */
function eventData(publication: Publication): unknown {
  const { data } = publication;
  if (typeof data !== 'string') return data;
  try {
    return JSON.parse(data) as unknown;
  } catch {
    return data;
  }
}

/** The user_info of the presence auth; `{}` for members without one (as the Pusher dialect shows them). */
function userInfo(member: Member): unknown {
  return member.info ?? {};
}

function errorStatus(error: ChorusError): SubscriptionErrorStatus {
  if (error.cause instanceof AuthEndpointError) return error.cause.toStatus();
  if (error.code === ErrorCodes.PERMISSION_DENIED.code) return { type: 'AuthError', error: error.message, status: 403 };
  return { type: 'SubscriptionError', error: error.message, status: error.code };
}

function positionKey(position: StreamPosition): string {
  return `${position.epoch}:${position.offset}`;
}

function splitKey(key: string): [string, string] {
  const colon = key.lastIndexOf(':');
  return [key.slice(0, colon), key.slice(colon + 1)];
}

function call(callback: CallableFunction, ...args: unknown[]): void {
  Reflect.apply(callback, undefined, args);
}

/** A callback that throws does not stop the others; its error surfaces asynchronously. */
function invoke(callback: CallableFunction, args: unknown[]): void {
  try {
    call(callback, ...args);
  } catch (error) {
    setTimeout(() => {
      throw error;
    }, 0);
  }
}
