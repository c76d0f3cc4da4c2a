/**
 * One y-websocket connection in a room. What the sample y-websocket server does, plus the
 * limits: on open the server sends its sync step 1 and the room's awareness states; a client's
 * step 1 is answered with step 2 (what the client lacks); a client's step 2 or update is stored,
 * then relayed (room.ts); awareness is applied and relayed. A read-only client's updates are
 * refused with y-protocols' permission-denied message; it still syncs and shows awareness.
 */
import { CloseCodes } from '@chorus/protocol';
import * as Y from 'yjs';
import type { App } from '../../apps.js';
import type { Connection, ConnectionHandler } from '../../connection.js';
import type { ServerContext } from '../../context.js';
import { frame } from '../../frame.js';
import { TokenBucket } from '../../rate-limit.js';
import type { Room } from './room.js';
import type { YjsRooms } from './rooms.js';
import { encodePermissionDenied, encodeSyncStep1, encodeSyncStep2, isEmptyUpdate, parseMessage, type YjsMessage } from './wire.js';

export interface YjsGrant {
  readonly room: string;
  /** The token's `access` claim was "read-only". */
  readonly readOnly: boolean;
}

/** Frames that arrived while the room was loading, at most this many bytes. */
const MAX_EARLY_BYTES_FACTOR = 2;

export class YjsSession implements ConnectionHandler {
  readonly #ctx: ServerContext;
  readonly #app: App;
  readonly #connection: Connection;
  readonly #grant: YjsGrant;
  readonly #bucket: TokenBucket;
  #room: Room | undefined;
  /** Messages received before the room was ready, handled in order once it is. */
  #early: YjsMessage[] | undefined = [];
  #earlyBytes = 0;
  /** The room once loaded: where this connection leaves from when it closes. */
  readonly #joined: Promise<Room>;
  readonly #rooms: YjsRooms;

  constructor(ctx: ServerContext, app: App, connection: Connection, grant: YjsGrant, rooms: YjsRooms) {
    this.#ctx = ctx;
    this.#app = app;
    this.#connection = connection;
    this.#grant = grant;
    this.#bucket = new TokenBucket(app.limits.messagesPerSecond, app.limits.messageBurst);
    this.#rooms = rooms;
    connection.handler = this;
    const joined = (this.#joined = rooms.join(app.id, grant.room, connection));
    joined.then(this.#ready, (error: unknown) => {
      ctx.log.error({ err: error, app: app.id, room: grant.room }, 'yjs: room could not be loaded');
      // Transient (Redis away): y-websocket reconnects and syncs again.
      connection.close(CloseCodes.INSUFFICIENT_STATE, 'Room could not be loaded');
    });
  }

  readonly #ready = (room: Room): void => {
    this.#room = room;
    const connection = this.#connection;
    connection.send(frame(encodeSyncStep1(Y.encodeStateVector(room.doc)), true));
    const awareness = room.awarenessSnapshot();
    if (awareness) connection.send(frame(awareness, true));
    const early = this.#early ?? [];
    this.#early = undefined;
    for (const message of early) if (connection.isOpen) this.#handle(room, message);
  };

  message(data: Buffer, isBinary: boolean): void {
    const connection = this.#connection;
    // What arrives after our close frame still comes here: a closing connection changes nothing.
    if (!connection.isOpen) return;
    const { traffic } = connection;
    traffic.messagesIn++;
    if (!this.#bucket.take()) {
      traffic.rateLimited++;
      return connection.close(CloseCodes.RATE_LIMITED);
    }
    if (!isBinary) return this.#invalid('text frame');
    const parsed = parseMessage(data);
    if ('error' in parsed) return this.#invalid(parsed.error);
    const room = this.#room;
    if (room) return this.#handle(room, parsed.message);
    // Still loading: keep it, within a bound (the frame limit bounds each, this bounds them all).
    this.#earlyBytes += data.length;
    if (this.#earlyBytes > this.#ctx.config.yjs.maxMessageSize * MAX_EARLY_BYTES_FACTOR) return connection.close(CloseCodes.SLOW_CONSUMER, 'Too much sent before the room was loaded');
    this.#early?.push(parsed.message);
  }

  /** The socket closed: out of the room, once it has loaded (one that never did has nothing to leave). */
  closed(): void {
    const connection = this.#connection;
    this.#joined.then((room) => this.#rooms.leave(room, connection)).catch(() => undefined);
  }

  #handle(room: Room, message: YjsMessage): void {
    const connection = this.#connection;
    switch (message.kind) {
      case 'sync-step1':
        connection.send(frame(encodeSyncStep2(Y.encodeStateAsUpdate(room.doc, message.stateVector)), true));
        return;
      case 'update':
        return this.#update(room, message.update);
      case 'awareness':
        return this.#awareness(room, message.update, message.clients.map((entry) => entry.clientId));
      case 'query-awareness': {
        const awareness = room.awarenessSnapshot();
        if (awareness) connection.send(frame(awareness, true));
        return;
      }
    }
  }

  #update(room: Room, update: Uint8Array): void {
    const connection = this.#connection;
    if (isEmptyUpdate(update)) return;
    if (this.#grant.readOnly) {
      connection.send(frame(encodePermissionDenied('read-only: this token\'s access claim is "read-only"; updates are not stored'), true));
      return;
    }
    const limit = this.#ctx.config.yjs.maxDocumentBytes;
    if (room.wouldExceed(update.length, limit)) {
      this.#ctx.log.info({ app: this.#app.id, room: this.#grant.room, limit }, 'yjs: document too large');
      return connection.close(CloseCodes.DOCUMENT_TOO_LARGE, `Document too large (yjs.maxDocumentBytes ${limit})`);
    }
    connection.traffic.published++;
    room.append(update, connection.id).catch((error: unknown) => {
      this.#ctx.log.error({ err: error, app: this.#app.id, room: this.#grant.room }, 'yjs: update not stored');
      // Not stored, so not relayed: on reconnect the provider syncs again and sends it anew.
      connection.close(CloseCodes.INSUFFICIENT_STATE, 'Update not stored');
    });
  }

  /**
   * Awareness is relayed to everyone and kept while renewed, so it is held to the channels'
   * limits: a frame of at most limits.maxMessageSize, a room of at most limits.maxPresenceMembers.
   */
  #awareness(room: Room, update: Uint8Array, clientIds: readonly number[]): void {
    const { maxMessageSize, maxPresenceMembers } = this.#app.limits;
    if (update.length > maxMessageSize) {
      return this.#connection.close(CloseCodes.MESSAGE_TOO_BIG, `Awareness update over limits.maxMessageSize (${maxMessageSize})`);
    }
    if (room.awarenessCount + room.newAwarenessClients(clientIds) > maxPresenceMembers) {
      return this.#connection.close(CloseCodes.LIMIT_EXCEEDED, `Room awareness full (limits.maxPresenceMembers ${maxPresenceMembers})`);
    }
    room.applyAwareness(update, this.#connection);
  }

  #invalid(why: string): void {
    this.#ctx.log.info({ app: this.#app.id, room: this.#grant.room, connection: this.#connection.id, why }, 'yjs: invalid message');
    this.#connection.close(CloseCodes.INVALID_YJS_MESSAGE);
  }
}
