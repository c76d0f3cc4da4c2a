/**
 * In-memory channel streams: offsets, epochs, bounded history and idempotency keys. One
 * process's memory is the whole truth, so an epoch is born with the process (or with the
 * stream, after an idle stream was dropped) and a restart can never be mistaken for continuity.
 */
import { randomBytes } from 'node:crypto';
import type { StreamPosition } from '@chorus/protocol';
import { ChannelMap } from '../channel-map.js';
import type { ChannelRoute } from '../channel-route.js';
import { PublicationRing } from './publication-ring.js';
import type { HistoryPage, HistoryPolicy, HistoryQuery, MessageInput, MessagePublication, PublishOutcome } from './types.js';

/** A stream with no publication for this long is dropped; it restarts later with a new epoch. */
export const STREAM_IDLE_TTL_MS = 24 * 60 * 60 * 1000;
/** Idempotency keys remembered per channel at most (the oldest are forgotten first). */
const MAX_REMEMBERED_MSG_IDS = 10_000;

export class ChannelStream {
  readonly appId: string;
  readonly channel: string;
  readonly epoch = randomBytes(6).toString('base64url');
  offset = 0;
  lastActivity = Date.now();
  /** Set when the stream is dropped for idleness: a ChannelRoute still holding it must look up its successor. */
  dropped = false;
  /** Oldest first; at most policy.size, none older than policy.ttlMs (see PublicationRing). */
  readonly entries = new PublicationRing();
  /** msgId → accepted offset and time; insertion order is acceptance order. Made at the first msgId. */
  msgIds: Map<string, { offset: number; ts: number }> | undefined;

  constructor(appId: string, channel: string) {
    this.appId = appId;
    this.channel = channel;
  }

  expire(now: number, policy: HistoryPolicy): void {
    const cutoff = now - policy.ttlMs;
    // Runs on every publish: the common case (nothing old enough) must cost a comparison.
    const entries = this.entries;
    entries.dropAcceptedBefore(cutoff);
    if (entries.length > policy.size) entries.shift(entries.length - policy.size);
    const msgIds = this.msgIds;
    if (msgIds === undefined || msgIds.size === 0) return;
    for (const [id, accepted] of msgIds) {
      if (accepted.ts >= cutoff && msgIds.size <= MAX_REMEMBERED_MSG_IDS) break;
      msgIds.delete(id);
    }
  }
}

export class MemoryStreams {
  readonly #streams = new ChannelMap<ChannelStream>();

  /**
   * Places a message in its stream; returns the publication to deliver, or the earlier outcome
   * for a repeated msgId. No wrapper object: this runs once per message, on every ingress.
   */
  append(message: MessageInput, policy: HistoryPolicy, route?: ChannelRoute): MessagePublication | PublishOutcome {
    let stream = route?.stream;
    if (stream === undefined || stream.dropped) {
      stream = this.#stream(message.appId, message.channel);
      if (route) route.stream = stream;
    }
    const now = Date.now();
    stream.expire(now, policy);
    stream.lastActivity = now;
    if (message.msgId !== undefined) {
      const earlier = stream.msgIds?.get(message.msgId);
      if (earlier) return { offset: earlier.offset, epoch: stream.epoch, duplicate: true };
    }
    // An explicit literal, not `{ ...message, … }`: on Node 20 the spread costs ~3.7 µs per
    // publish (a third of ingress time), the literal ~11 ns (bench: ingress 0.1 → 0.35 M msg/s).
    const publication: MessagePublication = {
      kind: 'message',
      appId: message.appId,
      channel: message.channel,
      originId: message.originId,
      event: message.event,
      payload: message.payload,
      binary: message.binary,
      msgId: message.msgId,
      userId: message.userId,
      excludeOrigin: message.excludeOrigin,
      offset: ++stream.offset,
      epoch: stream.epoch,
      ts: now,
    };
    if (policy.size > 0) stream.entries.push(publication, policy.size);
    if (message.msgId !== undefined) (stream.msgIds ??= new Map()).set(message.msgId, { offset: publication.offset, ts: now });
    return publication;
  }

  read(appId: string, channel: string, query: HistoryQuery, policy: HistoryPolicy): HistoryPage {
    const stream = this.#stream(appId, channel);
    stream.expire(Date.now(), policy);
    const position: StreamPosition = { offset: stream.offset, epoch: stream.epoch };
    const { since, limit } = query;
    const { entries } = stream;
    const newest = (): MessagePublication[] => entries.slice(stream, entries.length - limit, entries.length);
    if (!since) return { ...position, publications: newest(), recovered: undefined };

    const oldestRetained = entries.length > 0 ? entries.oldestOffset : stream.offset + 1;
    const recoverable = since.epoch === stream.epoch && since.offset <= stream.offset && since.offset + 1 >= oldestRetained;
    if (!recoverable) return { ...position, publications: newest(), recovered: false };
    const start = since.offset + 1 - oldestRetained;
    return { ...position, publications: entries.slice(stream, start, start + limit), recovered: true };
  }

  /** Drops streams idle for longer than STREAM_IDLE_TTL_MS. */
  sweep(now = Date.now()): void {
    for (const [appId, channel, stream] of this.#streams.entries()) {
      if (now - stream.lastActivity <= STREAM_IDLE_TTL_MS) continue;
      stream.dropped = true;
      this.#streams.delete(appId, channel);
    }
  }

  #stream(appId: string, channel: string): ChannelStream {
    let stream = this.#streams.get(appId, channel);
    if (!stream) this.#streams.set(appId, channel, (stream = new ChannelStream(appId, channel)));
    return stream;
  }
}
