/**
 * The raw channel dialect, PieSocket-compatible: `/v3/{channel}` and `/v4/{channel}`, one
 * channel per socket, every frame relayed verbatim to the channel's other connections (and to
 * the sender with notify_self), presence as `system:member_*` JSON frames, and errors as a
 * `{"error": "…"}` text frame followed by a coded close, which is what stops the PieSocket SDKs'
 * reconnect loop. Exact semantics: docs/raw-channels.md.
 */
import { randomUUID } from 'node:crypto';
import {
  CloseCodes,
  MAX_IDENTITY_LENGTH,
  PRESENCE_CHANNEL_PREFIX,
  PRIVATE_CHANNEL_PREFIX,
  PresenceEvents,
  RAW_PATH,
  RawErrorText,
  isValidChannelName,
  parseFlag,
  parseQuery,
  type CloseCodeInfo,
  type Member,
} from '@chorus/protocol';
import type { App } from '../apps.js';
import { userClaim } from '../auth.js';
import { ChannelRoute } from '../channel-route.js';
import type { Connection, ConnectionHandler } from '../connection.js';
import type { ServerContext } from '../context.js';
import { EngineUnavailableError } from '../engine/errors.js';
import type { Publication } from '../engine/types.js';
import { frame, textFrame } from '../frame.js';
import type { HeldPublication, PublicationEncoder, Subscriber } from '../hub.js';
import { TokenExpiry } from '../expiry.js';
import { TokenBucket } from '../rate-limit.js';
import { refusal, type Dialect } from '../admission.js';
import type { MessageCheck } from '../validation.js';

const DEFAULT_USER = 'anonymous';

export const rawEncoder: PublicationEncoder = {
  encode(publication: Publication): Buffer {
    if (publication.kind === 'message') {
      // A v1 publication (it has an event) reaches raw clients as the PieSocket SDK envelope.
      if (publication.event === undefined || publication.binary) return frame(publication.payload, publication.binary);
      return textFrame(`{"event":${JSON.stringify(publication.event)},"data":${publication.payload.toString('utf8')}}`);
    }
    const event = publication.action === 'joined' ? PresenceEvents.MEMBER_JOINED : PresenceEvents.MEMBER_LEFT;
    return textFrame(JSON.stringify({ event, data: { member: publication.member, members: publication.members } }));
  },
  verbatim: (publication) => (publication.event === undefined || publication.binary ? publication.payload : undefined),
};

/** What the raw handshake establishes for the session. */
interface RawGrant {
  readonly channel: string;
  readonly query: ReadonlyMap<string, string>;
  /** The token's user (`sub` of a channel token, or its `user` claim) and expiry. */
  readonly tokenUser: string | undefined;
  readonly tokenExpiresAt: number | undefined;
}

interface RawRoute {
  readonly channelSegment: string;
  readonly query: ReadonlyMap<string, string>;
}

export const rawDialect: Dialect<RawRoute, RawGrant> = {
  name: 'raw',
  match(url) {
    const match = RAW_PATH.exec(url.pathname);
    // PieSocket's lenient query parsing (keeps `+`), read once for the whole handshake.
    return match ? { channelSegment: match[1] ?? '', query: parseQuery(url.search) } : undefined;
  },
  appKey: (route) => route.query.get('api_key'),
  unknownApp: refusal(CloseCodes.UNKNOWN_API_KEY, RawErrorText.UNKNOWN_API_KEY),
  frameLimit: (app) => app.limits.maxMessageSize,
  async authorize(ctx, app, { channelSegment, query }, upgrade) {
    const channel = decodeChannel(channelSegment);
    if (channel === undefined) return { refusal: refusal(CloseCodes.INVALID_CHANNEL, RawErrorText.INVALID_CHANNEL) };
    const userParam = query.get('user');
    const uuidParam = query.get('uuid');
    if ((userParam?.length ?? 0) > MAX_IDENTITY_LENGTH || (uuidParam?.length ?? 0) > MAX_IDENTITY_LENGTH) {
      return { refusal: refusal(CloseCodes.INVALID_PARAMETER, RawErrorText.INVALID_PARAMETER) };
    }
    // A token is required on private- channels and, when given anyway, must be valid: a client
    // that sends a bad token should learn so rather than silently lose its identity.
    const headerToken = upgrade.req.headers['jwt'];
    const token = query.get('jwt') || (typeof headerToken === 'string' ? headerToken : undefined);
    if (!token && !channel.startsWith(PRIVATE_CHANNEL_PREFIX)) return { grant: { channel, query, tokenUser: undefined, tokenExpiresAt: undefined } };
    const auth = await app.tokens.verifyChannel(channel, token);
    if (!auth.ok) {
      ctx.log.debug({ app: app.id, channel, reason: auth.reason }, 'channel token refused');
      return { refusal: refusal(CloseCodes.AUTHENTICATION_FAILED, RawErrorText.AUTHENTICATION_FAILED) };
    }
    return { grant: { channel, query, tokenUser: userClaim(auth.payload), tokenExpiresAt: (auth.payload.exp ?? 0) * 1000 } };
  },
  refuse(ws, refused) {
    // PieSocket's `{"error": …}` frame, then the coded close: what stops its SDKs' reconnect loop.
    ws.send(JSON.stringify({ error: refused.message }));
    ws.close(refused.close.code, refused.close.reason);
  },
  open(ctx, app, connection, { channel, query, tokenUser, tokenExpiresAt }) {
    // The raw dialect cannot refresh a token in-band: the connection ends when its token does.
    if (tokenExpiresAt !== undefined) new TokenExpiry(connection, ctx.config.tokenGraceMs).arm(tokenExpiresAt);
    const presence = parseFlag(query.get('presence')) || channel.startsWith(PRESENCE_CHANNEL_PREFIX);
    const member: Member | undefined = presence ? { user: tokenUser ?? query.get('user') ?? DEFAULT_USER, uuid: query.get('uuid') || randomUUID() } : undefined;
    new RawSession(ctx, app, channel, connection, parseFlag(query.get('notify_self')), member).open(parseFlag(query.get('be')));
  },
};

/**
 * One raw connection. It is in one channel all its life, so the session is also its
 * subscription (the hub's Subscriber): one object per connection, with what the first message
 * needs (the rate bucket, the route to the channel's records) made only when it comes.
 */
class RawSession implements ConnectionHandler, Subscriber {
  readonly connection: Connection;
  held: HeldPublication[] | undefined = undefined;
  readonly encoder = rawEncoder;
  readonly notifySelf: boolean;
  readonly presenceEvents: boolean;
  readonly recoverable = false;
  readonly #ctx: ServerContext;
  readonly #app: App;
  readonly #channel: string;
  /** Set on presence channels: who this connection is in the roster. */
  readonly #member: Member | undefined;
  readonly #check: MessageCheck | undefined;
  /** Created at the first message: an idle connection holds none of these (a full bucket then is what it would have refilled to). */
  #bucket: TokenBucket | undefined = undefined;
  #route: ChannelRoute | undefined = undefined;
  #publishFailed: ((error: unknown) => void) | undefined = undefined;
  /** Presence changes run in order per connection: the leave waits for the join to be recorded. */
  #presenceDone: Promise<boolean> | undefined = undefined;

  constructor(ctx: ServerContext, app: App, channel: string, connection: Connection, notifySelf: boolean, member: Member | undefined) {
    this.connection = connection;
    this.notifySelf = notifySelf;
    this.presenceEvents = member !== undefined;
    this.#ctx = ctx;
    this.#app = app;
    this.#channel = channel;
    this.#member = member;
    this.#check = app.messageCheck(channel);
    connection.handler = this;
  }

  open(bootEvent: boolean): void {
    const { connection } = this;
    const ctx = this.#ctx;
    const appId = this.#app.id;
    const channel = this.#channel;
    ctx.hub.subscribe(appId, channel, this).catch((error: unknown) => ctx.log.warn({ err: error, app: appId, channel }, 'engine attach failed'));
    ctx.log.debug({ app: appId, channel, connection: connection.id }, 'raw connection opened');
    if (bootEvent) connection.send(textFrame(JSON.stringify({ event: 'system:boot' })));
    if (this.#member) this.#presenceDone = joinPresence(ctx, this.#app, channel, connection, this.#member);
  }

  message(data: Buffer, isBinary: boolean): void {
    const { connection } = this;
    const { traffic } = connection;
    traffic.messagesIn++;
    // What the client sent after our close frame still arrives: a refused or closing connection
    // publishes nothing more, or a refilled bucket would relay frames from after the refusal.
    if (!connection.isOpen) return;
    const app = this.#app;
    if (!(this.#bucket ??= new TokenBucket(app.limits.messagesPerSecond, app.limits.messageBurst)).take()) {
      traffic.rateLimited++;
      return connection.close(CloseCodes.RATE_LIMITED);
    }
    const invalid = this.#check?.({ event: undefined, payload: data, binary: isBinary });
    if (invalid !== undefined) {
      traffic.schemaRefused++;
      return sendRawError(connection, `${RawErrorText.INVALID_MESSAGE}: ${invalid}`);
    }
    traffic.published++;
    const channel = this.#channel;
    this.#ctx.engine.broker.send(
      { appId: app.id, channel, originId: connection.id, event: undefined, payload: data, binary: isBinary },
      (this.#publishFailed ??= publishFailure(connection, logPublishError(this.#ctx, app.id, channel))),
      (this.#route ??= new ChannelRoute()),
    );
  }

  /**
   * PieSocket's clients learn why they were closed from an {"error"} frame right before the close
   * (it is what stops their reconnect loop on terminal codes), whichever path closes the socket.
   */
  closing(info: CloseCodeInfo): void {
    if (info.code >= 4000) sendRawError(this.connection, rawCloseText(info, this.#app));
  }

  /** The socket closed: out of the channel, and out of its presence roster once the join is recorded. */
  closed(): void {
    const { connection } = this;
    const ctx = this.#ctx;
    const appId = this.#app.id;
    const channel = this.#channel;
    ctx.hub.unsubscribe(appId, channel, this);
    ctx.log.debug({ app: appId, channel, connection: connection.id }, 'raw connection closed');
    const member = this.#member;
    const presenceDone = this.#presenceDone;
    if (!member || !presenceDone) return;
    const { broker, presence } = ctx.engine;
    presenceDone
      .then(async (joined) => {
        if (!joined) return;
        const members = await presence.leave(appId, channel, connection.id);
        if (!members) return; // announced as left already, by a sweep (its node was cut off from Redis)
        await broker.publishPresence({ kind: 'presence', action: 'left', appId, channel, originId: connection.id, member, members });
      })
      .catch(logPublishError(ctx, appId, channel));
  }
}

/**
 * Joins the channel's presence and announces it. True once the member is recorded (then its
 * leave must be announced too), false when it was not (a full channel closes the connection).
 */
async function joinPresence(ctx: ServerContext, app: App, channel: string, connection: Connection, joiner: Member): Promise<boolean> {
  const { broker, presence } = ctx.engine;
  const failed = logPublishError(ctx, app.id, channel);
  let members: Member[] | undefined;
  try {
    members = await presence.join(app.id, channel, connection.id, joiner, app.limits.maxPresenceMembers);
  } catch (error) {
    failed(error);
    return false;
  }
  if (!members) {
    connection.close(CloseCodes.LIMIT_EXCEEDED);
    return false;
  }
  connection.send(textFrame(JSON.stringify({ event: PresenceEvents.MEMBER_LIST, data: { members } })));
  await broker.publishPresence({ kind: 'presence', action: 'joined', appId: app.id, channel, originId: connection.id, member: joiner, members }).catch(failed);
  return true;
}

function logPublishError(ctx: ServerContext, appId: string, channel: string): (error: unknown) => void {
  return (error) => ctx.log.error({ err: error, app: appId, channel }, 'publish failed');
}

/** The sender must learn that its frame went nowhere (Redis away, say), not guess from silence. */
function publishFailure(connection: Connection, log: (error: unknown) => void): (error: unknown) => void {
  return (error) => {
    if (connection.isOpen) sendRawError(connection, error instanceof EngineUnavailableError ? RawErrorText.NOT_DELIVERED_ENGINE : RawErrorText.NOT_DELIVERED);
    log(error);
  };
}

function sendRawError(connection: Connection, text: string): void {
  connection.send(textFrame(JSON.stringify({ error: text })));
}

/** The `{"error"}` text for a close after the upgrade: what happened and what to do about it. */
function rawCloseText(info: CloseCodeInfo, app: App): string {
  const { messagesPerSecond, messageBurst } = app.limits;
  switch (info.code) {
    case CloseCodes.RATE_LIMITED.code:
      return `${RawErrorText.RATE_LIMITED}: this app allows ${messagesPerSecond} messages per second per connection (bursts of ${messageBurst}); send slower, or raise limits.messagesPerSecond and limits.messageBurst in the server's config`;
    case CloseCodes.LIMIT_EXCEEDED.code:
      return RawErrorText.PRESENCE_FULL;
    case CloseCodes.TOKEN_EXPIRED.code:
      return RawErrorText.TOKEN_EXPIRED;
    case CloseCodes.SLOW_CONSUMER.code:
      return `${info.reason}: this connection fell more than ${app.limits.maxPendingBytes} bytes behind its channel's traffic and what was queued for it is dropped; reconnect and read faster, or raise limits.maxPendingBytes in the server's config`;
    default:
      return info.reason;
  }
}

function decodeChannel(segment: string): string | undefined {
  let name: string;
  try {
    name = decodeURIComponent(segment);
  } catch {
    return undefined;
  }
  return isValidChannelName(name) ? name : undefined;
}
