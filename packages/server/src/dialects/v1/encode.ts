/**
 * v1 wire encoding. Publications are turned into JSON text once per publication (the Hub caches
 * the frame for every v1 subscriber), spliced from pre-serialized parts so a v1 `data` payload is
 * never parsed and re-serialized.
 */
import { CloseCodes, DEFAULT_EVENT, type CloseCodeInfo, type ReplyErrorInfo } from '@chorus/protocol';
import type { MessagePublication, Publication } from '../../engine/types.js';
import { textFrame } from '../../frame.js';
import type { PublicationEncoder } from '../../hub.js';

/** `"offset":…,"event":…,"data"|"b64":…,"ts":…` — the fields a pub push and a history item share. */
export function publicationFields(publication: MessagePublication): string {
  const { event, payload } = publication;
  const head = `"offset":${publication.offset}`;
  const tail = `,"ts":${publication.ts}`;
  if (publication.binary) {
    return `${head},"event":${JSON.stringify(event ?? DEFAULT_EVENT)},"b64":"${payload.toString('base64')}"${tail}`;
  }
  const text = payload.toString('utf8');
  if (event !== undefined) return `${head},"event":${JSON.stringify(event)},"data":${text}${tail}`;
  return `${head},${rawTextFields(text)}${tail}`;
}

/**
 * Raw-dialect text as v1 sees it: the PieSocket SDK envelope `{event, data, meta}` is unpacked,
 * anything else is the event "message" with the text as a string.
 */
function rawTextFields(text: string): string {
  if (text.startsWith('{')) {
    try {
      const envelope = JSON.parse(text) as Record<string, unknown>;
      if (typeof envelope['event'] === 'string') {
        let fields = `"event":${JSON.stringify(envelope['event'])}`;
        if (envelope['data'] !== undefined) fields += `,"data":${JSON.stringify(envelope['data'])}`;
        if (envelope['meta'] !== undefined) fields += `,"meta":${JSON.stringify(envelope['meta'])}`;
        return fields;
      }
    } catch {
      // Not JSON after all: plain text below.
    }
  }
  return `"event":"${DEFAULT_EVENT}","data":${JSON.stringify(text)}`;
}

export function pubPush(publication: MessagePublication): Buffer {
  return textFrame(`{"type":"pub","channel":${JSON.stringify(publication.channel)},"epoch":${JSON.stringify(publication.epoch)},${publicationFields(publication)}}`);
}

export const v1Encoder: PublicationEncoder = {
  encode(publication: Publication): Buffer {
    if (publication.kind === 'message') return pubPush(publication);
    const type = publication.action === 'joined' ? 'join' : 'leave';
    return textFrame(JSON.stringify({ type, channel: publication.channel, member: publication.member }));
  },
};

export function okReply(id: number, result: unknown): Buffer {
  return textFrame(`{"id":${id},"ok":true,"result":${JSON.stringify(result)}}`);
}

/** For results that embed pre-serialized JSON (history). */
export function okReplyRaw(id: number, resultJson: string): Buffer {
  return textFrame(`{"id":${id},"ok":true,"result":${resultJson}}`);
}

export function errorReply(id: number, error: ReplyErrorInfo, message: string = error.description): Buffer {
  return textFrame(JSON.stringify({ id, ok: false, error: { code: error.code, name: error.name, message } }));
}

/**
 * Clients told to reconnect come back at a random moment within a window, not all at once: a
 * wide one when the whole node goes away at once (its clients all land on the other nodes), a
 * short one otherwise. A draining server (drain.ts) already spreads its closes over time and
 * passes the spread of one batch instead.
 */
const RECONNECT_SPREAD_MS = { shutdown: 5_000, other: 1_000 };

/** The advice sent right before a close: why, whether to come back, and when (JSON text). */
export function disconnectAdvice(info: CloseCodeInfo, reason: string = info.reason, shutdownSpreadMs: number = RECONNECT_SPREAD_MS.shutdown): string {
  const spread = info.code === CloseCodes.GOING_AWAY.code ? shutdownSpreadMs : RECONNECT_SPREAD_MS.other;
  const retryAfterMs = info.reconnect ? Math.floor(Math.random() * spread) : undefined;
  return JSON.stringify({ type: 'disconnect', code: info.code, reason, reconnect: info.reconnect, retryAfterMs });
}
