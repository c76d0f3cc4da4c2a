/**
 * One Pusher protocol 7 connection (pusher-js, Laravel Echo, every Pusher client library): its
 * subscriptions, presence membership, client events and sign-in. Channel semantics are the
 * core's (Hub, Engine): a Pusher subscriber is one more subscriber of the same channel the raw
 * and v1 clients are on. Wire details: docs/pusher.md.
 */
import { CHANNEL_NAME_RULE, PusherCloseCodes, type CloseCodeInfo, type Member } from '@chorus/protocol';
import type { App } from '../../apps.js';
import type { Connection, ConnectionHandler } from '../../connection.js';
import type { ServerContext } from '../../context.js';
import { EngineUnavailableError } from '../../engine/errors.js';
import type { MessagePublication } from '../../engine/types.js';
import type { Subscriber } from '../../hub.js';
import { TOO_DEEP, encodeJson } from '../../json-encode.js';
import { TokenBucket } from '../../rate-limit.js';
import { MAX_WATCHLIST, takePendingCount, watchlistFrame, watchlistsOf } from './cluster-events.js';
import { pusherEncoder, userInfo } from './encoder.js';
import { channelTraits, isClientEventName, isValidChannelName, serverToUserId, type ChannelTraits } from './names.js';
import { verifyPresenceChannelAuth, verifyPrivateChannelAuth, verifyUserAuth } from './signatures.js';
import { corePayloadOfValue, errorFrame, eventFrame, objectFrame, subscriptionErrorFrame } from './wire.js';

/** How far back a cache channel looks for its last event that is not a client event. */
const CACHE_LOOKBACK = 10;

interface Subscription {
  readonly subscriber: Subscriber;
  readonly traits: ChannelTraits;
  /** Set on presence channels: this connection's member. */
  readonly member: Member | undefined;
  /** Resolves once the presence join is recorded, so a leave never overtakes it. */
  presenceDone: Promise<void>;
}

interface ClientFrame {
  readonly event: string;
  readonly channel: unknown;
  readonly data: unknown;
}

/** Core closes as Pusher clients understand them (pusher-js acts on the code's range). */
const CORE_TO_PUSHER: ReadonlyMap<number, CloseCodeInfo> = new Map([
  [1001, PusherCloseCodes.RECONNECT], // shutdown: reconnect at once, to another node
  [4500, PusherCloseCodes.OVER_CAPACITY], // slow consumer: back off, then reconnect
  [4505, PusherCloseCodes.ENGINE_UNAVAILABLE], // Redis away too long: reconnect after 1 s, elsewhere
  [4503, PusherCloseCodes.UNAUTHORIZED],
  [4007, PusherCloseCodes.UNAUTHORIZED], // terminated by the app: pusher-js must not reconnect
]);

export class PusherSession implements ConnectionHandler {
  /** Pusher's 4201: pusher-js reconnects at once when its pongs stopped reaching us. */
  readonly pongTimeoutClose = PusherCloseCodes.PONG_TIMEOUT;

  readonly #ctx: ServerContext;
  readonly #app: App;
  readonly #connection: Connection;
  readonly #subscriptions = new Map<string, Subscription>();
  /** Every frame counts against the app's message rate; client events also against their own. */
  readonly #frames: TokenBucket;
  readonly #clientEvents: TokenBucket;
  /** The signed-in user's id (pusher:signin), if any. */
  #userId: string | undefined;
  /** The users whose online/offline this connection is told (pusher:signin's watchlist). */
  #watchlist: readonly string[] = [];

  constructor(ctx: ServerContext, app: App, connection: Connection) {
    this.#ctx = ctx;
    this.#app = app;
    this.#connection = connection;
    this.#frames = new TokenBucket(app.limits.messagesPerSecond, app.limits.messageBurst);
    this.#clientEvents = new TokenBucket(app.pusher.clientEventsPerSecond, app.pusher.clientEventsPerSecond);
    connection.handler = this;
    const established = JSON.stringify({ socket_id: connection.id, activity_timeout: ctx.config.pusher.activityTimeoutSeconds });
    connection.send(eventFrame('pusher:connection_established', undefined, established));
  }

  get socketId(): string {
    return this.#connection.id;
  }

  closeCodeFor(info: CloseCodeInfo): CloseCodeInfo {
    return CORE_TO_PUSHER.get(info.code) ?? info;
  }

  /** Protocol 6+: the close code carries the error; pusher:error first for every client library. */
  closing(info: CloseCodeInfo, reason: string): void {
    if (info.code >= 4000) this.#connection.send(errorFrame(info.code, reason));
  }

  message(data: Buffer, isBinary: boolean): void {
    this.#connection.traffic.messagesIn++;
    // ws still emits what arrives after our close frame: a closing connection does nothing more.
    if (!this.#connection.isOpen) return;
    if (!this.#frames.take()) {
      this.#connection.traffic.rateLimited++;
      return this.#connection.close(PusherCloseCodes.CLIENT_EVENT_RATE_LIMITED, `Rate limit exceeded: this app allows ${this.#app.limits.messagesPerSecond} messages per second (limits.messagesPerSecond)`);
    }
    if (isBinary) return this.#error(null, 'Binary frames are not part of the Pusher protocol; send JSON text');
    const frame = parseClientFrame(data.toString('utf8'));
    if (!frame) return this.#error(null, 'Frames must be JSON objects with a string "event"');
    switch (frame.event) {
      case 'pusher:ping':
        return this.#connection.send(objectFrame('pusher:pong', undefined, {}));
      case 'pusher:pong':
        return;
      case 'pusher:subscribe':
        return void this.#subscribe(asObject(frame.data)).catch((error: unknown) => this.#failed(error, 'subscribe'));
      case 'pusher:unsubscribe':
        return this.#unsubscribe(asObject(frame.data)['channel']);
      case 'pusher:signin':
        return this.#signin(asObject(frame.data));
      default:
        if (isClientEventName(frame.event)) return void this.#clientEvent(frame).catch((error: unknown) => this.#failed(error, 'client event'));
        return this.#error(null, `Unknown event ${JSON.stringify(frame.event)}: clients send pusher:* events or client-* events`);
    }
  }

  #error(code: number | null, message: string): void {
    this.#connection.send(errorFrame(code, message));
  }

  #failed(error: unknown, what: string): void {
    if (error instanceof EngineUnavailableError) return this.#error(null, `${what} failed: the server cannot reach its engine (Redis); try again`);
    this.#ctx.log.error({ err: error, connection: this.#connection.id }, `pusher ${what} failed`);
    this.#error(null, `${what} failed on the server; try again`);
  }

  // ---- subscriptions ------------------------------------------------------------------------------

  async #subscribe(data: Record<string, unknown>): Promise<void> {
    const channel = data['channel'];
    if (typeof channel !== 'string' || !isValidChannelName(channel)) {
      return this.#error(null, `Invalid channel name: ${CHANNEL_NAME_RULE}`);
    }
    const existing = this.#subscriptions.get(channel);
    if (existing) return this.#sendSucceeded(channel, existing);
    if (this.#subscriptions.size >= this.#app.limits.maxChannelsPerConnection) {
      return this.#refuse(channel, 'LimitReached', `at most ${this.#app.limits.maxChannelsPerConnection} channels per connection (limits.maxChannelsPerConnection)`, 4100);
    }
    const traits = channelTraits(channel);
    const member = this.#authorize(channel, traits, data);
    if (member === false) return;

    const subscriber: Subscriber = { connection: this.#connection, held: [], encoder: pusherEncoder, notifySelf: false, presenceEvents: traits.auth === 'presence', recoverable: false };
    const subscription: Subscription = { subscriber, traits, member, presenceDone: Promise.resolve() };
    this.#subscriptions.set(channel, subscription);
    const { hub, engine } = this.#ctx;
    try {
      await hub.subscribe(this.#app.id, channel, subscriber);
      let roster: Member[] | undefined;
      if (member) {
        roster = await engine.presence.join(this.#app.id, channel, this.#connection.id, member, this.#app.pusher.maxPresenceMembers);
        if (!roster) {
          this.#drop(channel, subscription);
          return this.#refuse(channel, 'LimitReached', `Presence channel is full (${this.#app.pusher.maxPresenceMembers} members; pusher.maxPresenceMembers in the app's config)`, 4100);
        }
      }
      if (this.#subscriptions.get(channel) !== subscription || !this.#connection.isOpen) {
        // Unsubscribed or closed while the engine answered: undo what is ours.
        if (member && roster) await engine.presence.leave(this.#app.id, channel, this.#connection.id);
        return;
      }
      const cached = traits.cache ? await this.#lastCachedEvent(channel) : undefined;
      this.#sendSucceeded(channel, subscription, roster);
      if (traits.cache) this.#connection.send(cached ? pusherEncoder.encode(cached) : objectFrame('pusher:cache_miss', channel, {}));
      if (traits.cache && !cached) this.#ctx.webhooks.cacheMiss(this.#app, channel);
      this.#release(subscriber, cached?.offset);
      if (member && roster) {
        // Caught here: nothing else may await it (a connection that never leaves), and an
        // unhandled rejection would end the process.
        subscription.presenceDone = engine.broker
          .publishPresence({ kind: 'presence', action: 'joined', appId: this.#app.id, channel, originId: this.#connection.id, member, members: roster })
          .catch((error: unknown) => this.#ctx.log.warn({ err: error, channel }, 'pusher presence join announcement failed'));
      }
    } catch (error) {
      if (this.#subscriptions.get(channel) === subscription) this.#drop(channel, subscription);
      this.#refuse(channel, 'ServerError', 'the server could not complete the subscription; try again', 503);
      if (!(error instanceof EngineUnavailableError)) throw error;
    }
  }

  /**
   * The member on presence channels, undefined on others that may be joined, or false when the
   * subscription was refused (the refusal is sent).
   */
  #authorize(channel: string, traits: ChannelTraits, data: Record<string, unknown>): Member | undefined | false {
    const { auth } = data;
    switch (traits.auth) {
      case 'none':
        return undefined;
      case 'user': {
        if (this.#userId === undefined || serverToUserId(channel) !== this.#userId) {
          this.#refuse(channel, 'AuthError', 'only the signed-in user may subscribe to its #server-to-user- channel (pusher:signin first)', 403);
          return false;
        }
        return undefined;
      }
      case 'channel': {
        const verdict = verifyPrivateChannelAuth(this.#app.credentials, this.#connection.id, channel, auth);
        if (verdict.ok) return undefined;
        this.#refuse(channel, 'AuthError', verdict.message, 401);
        return false;
      }
      case 'presence': {
        const channelData = data['channel_data'];
        const verdict = verifyPresenceChannelAuth(this.#app.credentials, this.#connection.id, channel, channelData, auth);
        if (!verdict.ok) {
          this.#refuse(channel, 'AuthError', verdict.message, 401);
          return false;
        }
        const member = this.#presenceMember(channelData as string);
        if (typeof member === 'string') {
          this.#refuse(channel, 'LimitReached', member, 400);
          return false;
        }
        return member;
      }
    }
  }

  /** The member from presence channel_data, or why it is refused. */
  #presenceMember(channelData: string): Member | string {
    let parsed: unknown;
    try {
      parsed = JSON.parse(channelData);
    } catch {
      return 'channel_data is not JSON';
    }
    const { user_id: rawId, user_info: info } = asObject(parsed);
    if ((typeof rawId !== 'string' && typeof rawId !== 'number') || String(rawId) === '') return 'channel_data needs a user_id (string or number)';
    const userId = String(rawId);
    const { maxUserIdLength, maxUserInfoBytes } = this.#app.pusher;
    if (userId.length > maxUserIdLength) return `user_id is longer than ${maxUserIdLength} characters (pusher.maxUserIdLength)`;
    const infoText = info === undefined ? '' : encodeJson(info);
    if (infoText === undefined) return `user_info ${TOO_DEEP}`;
    const infoBytes = Buffer.byteLength(infoText);
    if (infoBytes > maxUserInfoBytes) return `user_info is ${infoBytes} bytes; at most ${maxUserInfoBytes} (pusher.maxUserInfoBytes)`;
    return info === undefined ? { user: userId, uuid: this.#connection.id } : { user: userId, uuid: this.#connection.id, info };
  }

  #refuse(channel: string, type: string, error: string, status: number): void {
    this.#ctx.log.debug({ app: this.#app.id, channel, connection: this.#connection.id, error }, 'pusher subscription refused');
    this.#connection.send(subscriptionErrorFrame(channel, type, error, status));
  }

  #sendSucceeded(channel: string, subscription: Subscription, roster?: readonly Member[]): void {
    if (subscription.member === undefined) return this.#connection.send(eventFrame('pusher_internal:subscription_succeeded', channel, '{}'));
    // No prototype: a user id is any string, `__proto__` or `constructor` too (fuzzing found them missing).
    const hash = Object.create(null) as Record<string, unknown>;
    for (const m of roster ?? [subscription.member]) hash[m.user] ??= userInfo(m);
    const ids = Object.keys(hash);
    const presence = { ids, hash, count: ids.length };
    this.#connection.send(eventFrame('pusher_internal:subscription_succeeded', channel, JSON.stringify({ presence })));
  }

  /** The cache channel's last event (client events are not cached, as at Pusher). */
  async #lastCachedEvent(channel: string): Promise<MessagePublication | undefined> {
    const page = await this.#ctx.engine.broker.history(this.#app.id, channel, { limit: CACHE_LOOKBACK });
    for (let i = page.publications.length - 1; i >= 0; i--) {
      const publication = page.publications[i] as MessagePublication;
      if (!publication.event?.startsWith('client-')) return publication;
    }
    return undefined;
  }

  /** Sends what arrived while the subscription was being set up, after what was already sent. */
  #release(subscriber: Subscriber, sentOffset: number | undefined): void {
    const held = subscriber.held ?? [];
    subscriber.held = undefined;
    for (const { publication, frame } of held) {
      if (sentOffset !== undefined && publication.kind === 'message' && publication.offset <= sentOffset) continue;
      this.#connection.send(frame);
    }
    const count = takePendingCount(subscriber);
    if (count) this.#connection.send(count);
  }

  #unsubscribe(channel: unknown): void {
    if (typeof channel !== 'string') return;
    const subscription = this.#subscriptions.get(channel);
    if (subscription) this.#drop(channel, subscription);
  }

  /** Leaves the channel: the hub at once, the presence roster after the join was recorded. */
  #drop(channel: string, subscription: Subscription): void {
    this.#subscriptions.delete(channel);
    this.#ctx.hub.unsubscribe(this.#app.id, channel, subscription.subscriber);
    const { member } = subscription;
    if (!member) return;
    const { broker, presence } = this.#ctx.engine;
    subscription.presenceDone
      .then(async () => {
        const members = await presence.leave(this.#app.id, channel, this.#connection.id);
        if (!members) return; // announced as left already, by a sweep (its node was cut off from Redis)
        await broker.publishPresence({ kind: 'presence', action: 'left', appId: this.#app.id, channel, originId: this.#connection.id, member, members });
      })
      .catch((error: unknown) => this.#ctx.log.warn({ err: error, channel }, 'pusher presence leave failed'));
  }

  // ---- client events --------------------------------------------------------------------------------

  async #clientEvent(frame: ClientFrame): Promise<void> {
    const { event, channel } = frame;
    const refuse = (message: string): void => this.#error(PusherCloseCodes.CLIENT_EVENT_RATE_LIMITED.code, message);
    if (!this.#app.clientEvents) return refuse('Client events are not enabled for this app ("clientEvents": true in its config)');
    if (typeof channel !== 'string') return refuse('Client events need a channel');
    const subscription = this.#subscriptions.get(channel);
    if (!subscription || subscription.subscriber.held !== undefined) return refuse(`Client event rejected: not subscribed to ${channel}`);
    if (!subscription.traits.clientEvents) return refuse('Client events are only allowed on private- and presence- channels (not encrypted ones)');
    if (!this.#clientEvents.take()) {
      this.#connection.traffic.rateLimited++;
      return refuse(`Client event rejected due to rate limit: at most ${this.#app.pusher.clientEventsPerSecond} per second (pusher.clientEventsPerSecond)`);
    }
    const payload = corePayloadOfValue(frame.data);
    if (payload === undefined) return refuse(`Client event data ${TOO_DEEP}`);
    if (payload.length > this.#app.limits.maxMessageSize) return refuse(`Client event data is ${payload.length} bytes; at most ${this.#app.limits.maxMessageSize} (limits.maxMessageSize)`);
    const invalid = this.#app.messageCheck(channel)?.({ event, payload, binary: false });
    if (invalid !== undefined) {
      this.#connection.traffic.schemaRefused++;
      return this.#error(null, `Invalid message: ${invalid}`);
    }
    this.#connection.traffic.published++;
    await this.#ctx.engine.broker.publish({
      appId: this.#app.id,
      channel,
      originId: this.#connection.id,
      event,
      payload,
      binary: false,
      userId: subscription.member?.user,
    });
    const data = typeof frame.data === 'string' ? frame.data : JSON.stringify(frame.data ?? null);
    this.#ctx.webhooks.clientEvent(this.#app, { channel, event, data, socketId: this.#connection.id, userId: subscription.member?.user });
  }

  // ---- user authentication ------------------------------------------------------------------------

  #signin(data: Record<string, unknown>): void {
    const userData = data['user_data'];
    const verdict = verifyUserAuth(this.#app.credentials, this.#connection.id, userData, data['auth']);
    if (!verdict.ok) return this.#connection.close(PusherCloseCodes.UNAUTHORIZED, verdict.message.slice(0, 120));
    let user: Record<string, unknown> = {};
    try {
      user = asObject(JSON.parse(userData as string));
    } catch {
      // handled below
    }
    const { id, watchlist } = user;
    if (typeof id !== 'string' || id === '') return this.#connection.close(PusherCloseCodes.UNAUTHORIZED, 'user_data must be JSON with a string "id"');
    if (this.#userId !== undefined && this.#userId !== id) this.#ctx.users.remove(this.#app.id, this.#userId, this.#connection);
    this.#userId = id;
    this.#ctx.users.add(this.#app.id, id, this.#connection);
    this.#connection.send(objectFrame('pusher:signin_success', undefined, { user_data: userData }));
    this.#setWatchlist(watchlist);
  }

  /**
   * Registers the users to be told about and sends which of them are online now; their later
   * online/offline arrive through cluster-events.ts. A signed user_data is trusted as is, but a
   * watchlist must be a list of at most MAX_WATCHLIST user ids (else pusher:error 4302, no watchlist).
   */
  #setWatchlist(value: unknown): void {
    const lists = watchlistsOf(this.#ctx);
    lists.unwatch(this.#app.id, this.#watchlist, this.#connection);
    this.#watchlist = [];
    if (value === undefined) return;
    if (!Array.isArray(value) || !value.every((id) => typeof id === 'string' && id !== '')) {
      return this.#error(PusherCloseCodes.WATCHLIST_LIMIT.code, 'watchlist must be an array of user id strings');
    }
    const userIds = [...new Set(value as string[])];
    if (userIds.length > MAX_WATCHLIST) {
      return this.#error(PusherCloseCodes.WATCHLIST_LIMIT.code, `watchlist has ${userIds.length} user ids; at most ${MAX_WATCHLIST} (Pusher's limit)`);
    }
    this.#watchlist = userIds;
    lists.watch(this.#app.id, userIds, this.#connection);
    const { counts } = this.#ctx.engine;
    void Promise.all(userIds.map(async (userId) => ((await counts.total(this.#app.id, 'users', userId)) > 0 ? userId : undefined)))
      .then((online) => {
        const now = online.filter((userId): userId is string => userId !== undefined);
        if (now.length > 0 && this.#watchlist === userIds && this.#connection.isOpen) this.#connection.send(watchlistFrame('online', now));
      })
      .catch((error: unknown) => this.#failed(error, 'watchlist'));
  }

  /** The socket closed: this connection leaves its channels, its user and its watchlist. */
  closed(): void {
    for (const [channel, subscription] of [...this.#subscriptions]) this.#drop(channel, subscription);
    if (this.#userId !== undefined) this.#ctx.users.remove(this.#app.id, this.#userId, this.#connection);
    watchlistsOf(this.#ctx).unwatch(this.#app.id, this.#watchlist, this.#connection);
  }
}

function parseClientFrame(text: string): ClientFrame | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  const frame = asObject(value);
  return typeof frame['event'] === 'string' ? { event: frame['event'], channel: frame['channel'], data: frame['data'] } : undefined;
}

/** pusher-js sends `data` as an object; some libraries send it JSON-encoded as a string. */
function asObject(value: unknown): Record<string, unknown> {
  if (typeof value === 'string') {
    try {
      value = JSON.parse(value);
    } catch {
      return {};
    }
  }
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}
