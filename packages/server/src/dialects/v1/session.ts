/**
 * One v1 connection: its state (connected? which app, user, subscriptions) and a handler per
 * command. Replies go through the connection's outbound queue like every other frame, so their
 * order relative to publications is the order in which they were produced.
 */
import {
  CloseCodes,
  ErrorCodes,
  MAX_IDENTITY_LENGTH,
  PRESENCE_CHANNEL_PREFIX,
  PRIVATE_CHANNEL_PREFIX,
  isValidChannelName,
  type CloseCodeInfo,
  type Command,
  type ConnectCommand,
  type HistoryCommand,
  type Member,
  type PresenceCommand,
  type PublishCommand,
  type RefreshCommand,
  type ReplyErrorInfo,
  type SubscribeCommand,
  type UnsubscribeCommand,
} from '@chorus/protocol';
import { noteRefusal } from '../../admission.js';
import type { App } from '../../apps.js';
import type { Connection, ConnectionHandler } from '../../connection.js';
import type { ServerContext } from '../../context.js';
import { EngineUnavailableError } from '../../engine/errors.js';
import type { HistoryPage, MessagePublication } from '../../engine/types.js';
import { textFrame } from '../../frame.js';
import type { Subscriber } from '../../hub.js';
import { TokenExpiry } from '../../expiry.js';
import { TOO_DEEP, encodeJson } from '../../json-encode.js';
import { TokenBucket } from '../../rate-limit.js';
import { verifyPresenceChannelAuth, verifyPrivateChannelAuth, type AuthVerdict } from '../pusher/signatures.js';
import { parseFrame, type ParsedFrame } from './commands.js';
import { disconnectAdvice, errorReply, okReply, okReplyRaw, publicationFields, pubPush, v1Encoder } from './encode.js';

/** Channels where `client-*` events are whispers (Echo's private and presence channels). */
function isWhisperChannel(channel: string): boolean {
  return channel.startsWith(PRIVATE_CHANNEL_PREFIX) || channel.startsWith(PRESENCE_CHANNEL_PREFIX);
}

/** Whispers (Echo's `client-*` events) go to the channel's other members, never back to their sender. */
function isNotWhisper(publication: MessagePublication): boolean {
  return publication.event?.startsWith('client-') !== true;
}

/** A refusal the handler turns into an error reply. */
class CommandError extends Error {
  constructor(
    readonly info: ReplyErrorInfo,
    message: string = info.description,
  ) {
    super(message);
  }
}

interface Subscription {
  readonly subscriber: Subscriber;
  /** Set when the connection is in the channel's presence roster. */
  readonly member: Member | undefined;
  /** Resolves when the presence join is recorded, so a leave never overtakes it. */
  presenceDone: Promise<void>;
}

export class V1Session implements ConnectionHandler {
  readonly #ctx: ServerContext;
  readonly #app: App;
  readonly #connection: Connection;
  readonly #subscriptions = new Map<string, Subscription>();
  #connectTimer: NodeJS.Timeout | undefined;
  readonly #bucket: TokenBucket;
  readonly #expiry: TokenExpiry;
  #connected = false;
  /** The tail of the command chain (see message). */
  #pending: Promise<void> = Promise.resolve();
  #trusted = false;
  #user = '';
  #info: unknown;
  /** What Pusher-style channel auth signs for this connection (Laravel's backend SDK takes only `\d+.\d+`). */
  /** The connection id, a Pusher-style socket id (see v1Dialect): what channel auths sign. */
  readonly #socketId: string;

  constructor(ctx: ServerContext, app: App, connection: Connection) {
    this.#ctx = ctx;
    this.#app = app;
    this.#connection = connection;
    this.#socketId = connection.id;
    this.#bucket = new TokenBucket(app.limits.messagesPerSecond, app.limits.messageBurst);
    this.#expiry = new TokenExpiry(connection, ctx.config.tokenGraceMs, (graceMs) => connection.send(textFrame(JSON.stringify({ type: 'token_expired', graceMs }))));
    this.#connectTimer = setTimeout(() => this.#disconnect(CloseCodes.CONNECT_TIMEOUT), ctx.config.connectTimeoutMs);
    connection.handler = this;
  }

  /**
   * Commands run one at a time in arrival order, so replies come back in command order and a
   * client's publishes get offsets in the order it sent them, whatever the engine's latency.
   */
  message(data: Buffer, isBinary: boolean): void {
    this.#connection.traffic.messagesIn++;
    if (isBinary) return this.#disconnect(CloseCodes.BAD_REQUEST, 'Binary frames are not v1');
    const parsed = parseFrame(data.toString('utf8'));
    if (parsed.kind === 'fatal') return this.#disconnect(CloseCodes.BAD_REQUEST, `Bad frame: ${parsed.message}`);
    if (!this.#bucket.take()) {
      this.#connection.traffic.rateLimited++;
      const id = parsed.kind === 'command' ? parsed.command.id : parsed.id;
      return this.#reply(errorReply(id, ErrorCodes.RATE_LIMITED));
    }
    this.#pending = this.#pending.then(() => this.#handle(parsed));
  }

  async #handle(parsed: Exclude<ParsedFrame, { kind: 'fatal' }>): Promise<void> {
    if (!this.#connection.isOpen) return;
    if (parsed.kind === 'invalid') return this.#reply(errorReply(parsed.id, ErrorCodes.BAD_REQUEST, parsed.message));
    const { command } = parsed;
    if (!this.#connected && command.type !== 'connect') return this.#disconnect(CloseCodes.BAD_REQUEST, 'First command must be connect');
    try {
      this.#reply(await this.#dispatch(command));
    } catch (error) {
      if (error instanceof CommandError) return this.#reply(errorReply(command.id, error.info, error.message));
      if (error instanceof EngineUnavailableError) {
        this.#ctx.log.warn({ err: error, command: command.type, connection: this.#connection.id }, 'command refused: engine unavailable');
        return this.#reply(errorReply(command.id, ErrorCodes.ENGINE_UNAVAILABLE, error.message));
      }
      this.#ctx.log.error({ err: error, command: command.type, connection: this.#connection.id }, 'command failed');
      this.#reply(errorReply(command.id, ErrorCodes.INTERNAL));
    }
  }

  #dispatch(command: Command): Promise<Buffer | undefined> {
    switch (command.type) {
      case 'connect':
        return this.#connect(command);
      case 'subscribe':
        return this.#subscribe(command);
      case 'unsubscribe':
        return this.#unsubscribe(command);
      case 'publish':
        return this.#publish(command);
      case 'history':
        return this.#history(command);
      case 'presence':
        return this.#presence(command);
      case 'refresh':
        return this.#refresh(command);
      case 'ping':
        return Promise.resolve(okReply(command.id, {}));
    }
  }

  #reply(frame: Buffer | undefined): void {
    if (frame) this.#connection.send(frame);
  }

  async #connect(command: ConnectCommand): Promise<Buffer | undefined> {
    if (this.#connected) throw new CommandError(ErrorCodes.ALREADY_CONNECTED);
    const refuse = (reason: string): Buffer | undefined => {
      // A refusal of the connection, as admission.ts logs and counts those before the upgrade.
      noteRefusal(this.#ctx, 'v1', CloseCodes.AUTHENTICATION_FAILED.code, `connect refused: ${reason}`, { app: this.#app.id, connection: this.#connection.id });
      this.#reply(errorReply(command.id, ErrorCodes.UNAUTHORIZED));
      this.#disconnect(CloseCodes.AUTHENTICATION_FAILED);
      return undefined;
    };
    if (command.key !== undefined && command.key !== this.#app.key) return refuse('key differs from the URL key');
    let expiresAt: number | undefined;
    if (command.secret !== undefined) {
      if (!this.#app.isSecret(command.secret)) return refuse('wrong secret');
      this.#trusted = true;
    } else if (command.token !== undefined) {
      const auth = await this.#app.tokens.verifyConnection(command.token);
      if (!auth.ok) return refuse(auth.reason);
      this.#user = auth.payload.sub ?? '';
      this.#info = auth.payload['info'];
      expiresAt = (auth.payload.exp ?? 0) * 1000;
    } else if (!this.#app.allowAnonymous) {
      return refuse('anonymous connections are not allowed');
    }
    if (!this.#connection.isOpen) return undefined;
    clearTimeout(this.#connectTimer);
    this.#connected = true;
    if (expiresAt !== undefined) this.#expiry.arm(expiresAt);
    return okReply(command.id, {
      client: this.#connection.id,
      socketId: this.#socketId,
      user: this.#user,
      pingIntervalMs: this.#ctx.config.heartbeatIntervalMs,
      expiresAt,
    });
  }

  /** A fresh token for the same user replaces the expiring one (no reconnect needed). */
  async #refresh(command: RefreshCommand): Promise<Buffer | undefined> {
    const auth = await this.#app.tokens.verifyConnection(command.token);
    if (!auth.ok) throw new CommandError(ErrorCodes.UNAUTHORIZED, `refresh token refused (${auth.reason})`);
    if ((auth.payload.sub ?? '') !== this.#user) throw new CommandError(ErrorCodes.UNAUTHORIZED, 'a refresh token must be for the same user (sub)');
    const expiresAt = (auth.payload.exp ?? 0) * 1000;
    this.#expiry.arm(expiresAt);
    return okReply(command.id, { expiresAt });
  }

  /** Checks the channel name and, for private- channels, the right to use it. */
  async #authorize(channel: string, token: string | undefined): Promise<void> {
    if (!isValidChannelName(channel)) throw new CommandError(ErrorCodes.BAD_CHANNEL);
    if (!channel.startsWith(PRIVATE_CHANNEL_PREFIX) || this.#trusted || (token === undefined && this.#subscriptions.has(channel))) return;
    const auth = await this.#app.tokens.verifyChannel(channel, token);
    if (!auth.ok) throw new CommandError(ErrorCodes.PERMISSION_DENIED, `private- channels need a valid channel token (${auth.reason})`);
  }

  /**
   * Pusher-style channel auth, so a Laravel app's `/broadcasting/auth` works unchanged: the
   * signature must be over this connection's socketId. Returns the presence member channelData
   * names (undefined on private- channels).
   */
  #pusherAuthorize(command: SubscribeCommand): Member | undefined {
    const { channel, auth, channelData } = command;
    if (!isValidChannelName(channel)) throw new CommandError(ErrorCodes.BAD_CHANNEL);
    if (auth === undefined) throw new CommandError(ErrorCodes.BAD_REQUEST, 'channelData comes with auth (the auth endpoint returns both)');
    if (command.token !== undefined) throw new CommandError(ErrorCodes.BAD_REQUEST, 'give token or auth, not both');
    const isPresence = channel.startsWith(PRESENCE_CHANNEL_PREFIX);
    if (!isPresence && !channel.startsWith(PRIVATE_CHANNEL_PREFIX)) throw new CommandError(ErrorCodes.BAD_REQUEST, 'auth is for private- and presence- channels only');
    if (!isPresence && channelData !== undefined) throw new CommandError(ErrorCodes.BAD_REQUEST, 'channelData is for presence- channels only');
    const { credentials } = this.#app;
    const verdict: AuthVerdict = isPresence
      ? verifyPresenceChannelAuth(credentials, this.#socketId, channel, channelData, auth)
      : verifyPrivateChannelAuth(credentials, this.#socketId, channel, auth);
    if (!verdict.ok) throw new CommandError(ErrorCodes.PERMISSION_DENIED, verdict.message);
    return isPresence ? this.#presenceMember(channelData ?? '') : undefined;
  }

  /** `{"user_id": …, "user_info": …}` (signed, so trusted) → the member `{user, uuid, info}`. */
  #presenceMember(channelData: string): Member {
    let parsed: unknown;
    try {
      parsed = JSON.parse(channelData);
    } catch {
      throw new CommandError(ErrorCodes.BAD_REQUEST, 'channelData is not JSON');
    }
    const fields = typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : {};
    const userId = fields['user_id'];
    if ((typeof userId !== 'string' && typeof userId !== 'number') || String(userId) === '' || String(userId).length > MAX_IDENTITY_LENGTH) {
      throw new CommandError(ErrorCodes.BAD_REQUEST, `channelData needs a user_id: a string or number of 1 to ${MAX_IDENTITY_LENGTH} characters`);
    }
    const member = { user: String(userId), uuid: this.#connection.id };
    return fields['user_info'] === undefined ? member : { ...member, info: fields['user_info'] };
  }

  async #subscribe(command: SubscribeCommand): Promise<Buffer | undefined> {
    const { channel, since } = command;
    if (this.#subscriptions.has(channel)) throw new CommandError(ErrorCodes.ALREADY_SUBSCRIBED);
    if (this.#subscriptions.size >= this.#app.limits.maxChannelsPerConnection) {
      throw new CommandError(ErrorCodes.LIMIT_EXCEEDED, `at most ${this.#app.limits.maxChannelsPerConnection} channels per connection`);
    }
    let pusherMember: Member | undefined;
    if (command.auth === undefined && command.channelData === undefined) await this.#authorize(channel, command.token);
    else pusherMember = this.#pusherAuthorize(command);
    if (this.#subscriptions.has(channel)) throw new CommandError(ErrorCodes.ALREADY_SUBSCRIBED);

    const presence = command.presence === true || channel.startsWith(PRESENCE_CHANNEL_PREFIX);
    const member: Member | undefined = presence ? (pusherMember ?? this.#member()) : undefined;
    let roster: Member[] | undefined;
    if (member) {
      roster = await this.#ctx.engine.presence.join(this.#app.id, channel, this.#connection.id, member, this.#app.limits.maxPresenceMembers);
      if (!roster) throw new CommandError(ErrorCodes.LIMIT_EXCEEDED, `the presence roster of ${channel} is full (${this.#app.limits.maxPresenceMembers} members)`);
      if (!this.#connection.isOpen) {
        // Closed while joining: closed() did not see this subscription, so leave here.
        await this.#ctx.engine.presence.leave(this.#app.id, channel, this.#connection.id);
        return undefined;
      }
    }
    const whispers = isWhisperChannel(channel);
    const subscriber: Subscriber = {
      connection: this.#connection,
      held: [],
      encoder: v1Encoder,
      notifySelf: true,
      ...(whispers ? { echoes: isNotWhisper } : {}),
      presenceEvents: presence,
      recoverable: true,
    };
    const subscription: Subscription = { subscriber, member, presenceDone: Promise.resolve() };
    // Subscribe to live publications first and hold them, then read the position: nothing
    // published in between can fall through the gap.
    this.#subscriptions.set(channel, subscription);
    try {
      await this.#ctx.hub.subscribe(this.#app.id, channel, subscriber);
    } catch (error) {
      this.#subscriptions.delete(channel);
      this.#leave(channel, subscription);
      throw error;
    }
    if (this.#subscriptions.get(channel) !== subscription) return undefined; // closed meanwhile

    let page: HistoryPage;
    try {
      page = await this.#ctx.engine.broker.history(this.#app.id, channel, { since, limit: this.#app.historyPolicy(channel).size });
    } catch (error) {
      // Not subscribed after all (Redis went away between the two steps, say): undone, so the
      // client's retry is not refused as already subscribed and nothing is held for it forever.
      if (this.#subscriptions.get(channel) === subscription) {
        this.#subscriptions.delete(channel);
        this.#leave(channel, subscription);
      }
      throw error;
    }
    if (this.#subscriptions.get(channel) !== subscription) return undefined; // unsubscribed meanwhile
    const held = subscriber.held ?? [];
    subscriber.held = undefined;
    // The position reported is where live delivery starts: right before the first publication
    // held during the read, unless the replay covers those (recovered: it runs to page.offset).
    const replay = page.recovered ? page.publications : [];
    const firstHeld = held.find((h) => h.publication.kind === 'message' && h.publication.epoch === page.epoch)?.publication as MessagePublication | undefined;
    const offset = page.recovered || !firstHeld ? page.offset : firstHeld.offset - 1;
    this.#reply(okReply(command.id, { channel, epoch: page.epoch, offset, ...(since ? { recovered: page.recovered, replayed: replay.length } : {}) }));
    for (const publication of replay) this.#connection.send(pubPush(publication));
    for (const { publication, frame } of held) {
      const covered = publication.kind === 'message' && publication.epoch === page.epoch && publication.offset <= offset;
      if (!covered) this.#connection.send(frame);
    }

    if (member && roster) subscription.presenceDone = this.#announceJoin(channel, member, roster);
    return undefined;
  }

  async #announceJoin(channel: string, member: Member, members: Member[]): Promise<void> {
    try {
      await this.#ctx.engine.broker.publishPresence({ kind: 'presence', action: 'joined', appId: this.#app.id, channel, originId: this.#connection.id, member, members });
    } catch (error) {
      this.#ctx.log.error({ err: error, channel }, 'presence join failed');
    }
  }

  #leave(channel: string, subscription: Subscription): void {
    this.#ctx.hub.unsubscribe(this.#app.id, channel, subscription.subscriber);
    const { member } = subscription;
    if (!member) return;
    const { presence, broker } = this.#ctx.engine;
    const appId = this.#app.id;
    const connectionId = this.#connection.id;
    subscription.presenceDone
      .then(() => presence.leave(appId, channel, connectionId))
      // No roster: it had left already (a sweep announced it while this node was cut off).
      .then((members) => members && broker.publishPresence({ kind: 'presence', action: 'left', appId, channel, originId: connectionId, member, members }))
      .catch((error: unknown) => this.#ctx.log.error({ err: error, channel }, 'presence leave failed'));
  }

  #unsubscribe(command: UnsubscribeCommand): Promise<Buffer | undefined> {
    const subscription = this.#subscriptions.get(command.channel);
    if (!subscription) throw new CommandError(ErrorCodes.NOT_SUBSCRIBED);
    this.#subscriptions.delete(command.channel);
    this.#leave(command.channel, subscription);
    return Promise.resolve(okReply(command.id, {}));
  }

  async #publish(command: PublishCommand): Promise<Buffer | undefined> {
    const { channel } = command;
    if (!isValidChannelName(channel)) throw new CommandError(ErrorCodes.BAD_CHANNEL);
    if (channel.startsWith(PRIVATE_CHANNEL_PREFIX) && !this.#trusted && !this.#subscriptions.has(channel)) {
      throw new CommandError(ErrorCodes.PERMISSION_DENIED, 'subscribe to a private- channel (with its token) before publishing to it');
    }
    const binary = command.b64 !== undefined;
    const text = binary ? undefined : encodeJson(command.data);
    if (!binary && text === undefined) throw new CommandError(ErrorCodes.BAD_REQUEST, `data ${TOO_DEEP}`);
    const payload = binary ? Buffer.from(command.b64 ?? '', 'base64') : Buffer.from(text ?? '');
    if (payload.length > this.#app.limits.maxMessageSize) {
      throw new CommandError(ErrorCodes.MESSAGE_TOO_LARGE, `payload is ${payload.length} bytes; this app allows ${this.#app.limits.maxMessageSize}`);
    }
    const event = command.event ?? 'message';
    const invalid = this.#app.messageCheck(channel)?.({ event, payload, binary });
    if (invalid !== undefined) {
      this.#connection.traffic.schemaRefused++;
      throw new CommandError(ErrorCodes.INVALID_MESSAGE, invalid);
    }
    this.#connection.traffic.published++;
    const { offset, epoch } = await this.#ctx.engine.broker.publish({
      appId: this.#app.id,
      channel,
      originId: this.#connection.id,
      event,
      payload,
      binary,
      msgId: command.msgId,
    });
    if (event.startsWith('client-') && !binary && isWhisperChannel(channel)) {
      // A whisper is Echo's client event: receivers get it as Pusher's client_event webhook.
      const member = this.#subscriptions.get(channel)?.member;
      this.#ctx.webhooks.clientEvent(this.#app, { channel, event, data: JSON.stringify(command.data ?? null), socketId: this.#connection.id, userId: member?.user });
    }
    return okReply(command.id, { offset, epoch });
  }

  async #history(command: HistoryCommand): Promise<Buffer | undefined> {
    await this.#authorize(command.channel, undefined);
    const maxLimit = this.#app.limits.maxHistoryLimit;
    if ((command.limit ?? 0) > maxLimit) throw new CommandError(ErrorCodes.BAD_REQUEST, `limit must be at most ${maxLimit}`);
    const page = await this.#ctx.engine.broker.history(this.#app.id, command.channel, { since: command.since, limit: command.limit ?? maxLimit });
    const items = page.publications.map((publication: MessagePublication) => `{${publicationFields(publication)}}`).join(',');
    const recovered = page.recovered === undefined ? '' : `,"recovered":${page.recovered}`;
    return okReplyRaw(command.id, `{"epoch":${JSON.stringify(page.epoch)},"offset":${page.offset}${recovered},"publications":[${items}]}`);
  }

  async #presence(command: PresenceCommand): Promise<Buffer | undefined> {
    await this.#authorize(command.channel, undefined);
    const members = await this.#ctx.engine.presence.members(this.#app.id, command.channel);
    return okReply(command.id, { members });
  }

  #member(): Member {
    const member = { user: this.#user, uuid: this.#connection.id };
    return this.#info === undefined ? member : { ...member, info: this.#info };
  }

  /** Tells the client why and whether to come back, then closes. */
  #disconnect(info: CloseCodeInfo, reason: string = info.reason): void {
    this.#connection.close(info, reason);
  }

  /** Before any close frame: a `disconnect` push saying why, and whether and when to reconnect. */
  closing(info: CloseCodeInfo, reason: string): void {
    this.#connection.send(textFrame(disconnectAdvice(info, reason, this.#ctx.drain?.reconnectSpreadMs)));
  }

  /** The socket closed: this connection leaves its channels (and their presence rosters). */
  closed(): void {
    clearTimeout(this.#connectTimer);
    for (const [channel, subscription] of this.#subscriptions) this.#leave(channel, subscription);
    this.#subscriptions.clear();
  }
}
