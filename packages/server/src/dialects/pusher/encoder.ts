/**
 * How core publications reach Pusher clients, whichever dialect or API published them:
 * - an event (v1 publish, Pusher trigger or client event) → that event, its data as Pusher data;
 * - a raw text frame `{"event": e, "data": d}` → event e; any other raw text → event `message`
 *   with the text as data; binary publications → nothing (the protocol has no binary frames);
 * - presence changes → `pusher_internal:member_added/removed`, once per user: a user's second tab
 *   joining or its first tab leaving changes nothing a Pusher client shows.
 */
import type { Member } from '@chorus/protocol';
import type { MessagePublication, PresencePublication, Publication } from '../../engine/types.js';
import { NO_FRAME, type PublicationEncoder } from '../../hub.js';
import { encodeJson } from '../../json-encode.js';
import { eventFrame, pusherDataText } from './wire.js';

export const pusherEncoder: PublicationEncoder = {
  encode(publication: Publication): Buffer {
    return publication.kind === 'message' ? encodeMessage(publication) : encodePresence(publication);
  },
};

function encodeMessage(publication: MessagePublication): Buffer {
  const event = pusherEventOf(publication);
  return event ? eventFrame(event.event, publication.channel, event.data, publication.userId) : NO_FRAME;
}

/** The Pusher event a message is (its name and data text), or undefined for binary ones. */
export function pusherEventOf(publication: MessagePublication): { event: string; data: string } | undefined {
  if (publication.binary) return undefined;
  const text = publication.payload.toString('utf8');
  if (publication.event !== undefined) return { event: publication.event, data: pusherDataText(text) };
  return rawEnvelope(text) ?? { event: 'message', data: text };
}

/** A raw frame in the PieSocket SDK's envelope `{"event": "…", "data": …}`, or undefined. */
function rawEnvelope(text: string): { event: string; data: string } | undefined {
  if (text.charCodeAt(0) !== 0x7b /* { */) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const { event, data } = value as { event?: unknown; data?: unknown };
  if (typeof event !== 'string' || event.length === 0 || !('data' in value)) return undefined;
  // Too deep to re-encode: relayed as the plain text it is, like any other non-envelope.
  const dataText = typeof data === 'string' ? data : encodeJson(data);
  return dataText === undefined ? undefined : { event, data: dataText };
}

function encodePresence(change: PresencePublication): Buffer {
  const { member, members } = change;
  // The roster is the one right after the change: another connection of the same user in it
  // means this user was (joined) or still is (left) present.
  const others = members.some((m) => m.user === member.user && m.uuid !== member.uuid);
  if (others) return NO_FRAME;
  if (change.action === 'joined') {
    return eventFrame('pusher_internal:member_added', change.channel, JSON.stringify({ user_id: member.user, user_info: userInfo(member) }));
  }
  return eventFrame('pusher_internal:member_removed', change.channel, JSON.stringify({ user_id: member.user }));
}

/** Pusher user_info: what the presence auth gave (raw and v1 members have none). */
export function userInfo(member: Member): unknown {
  return member.info ?? {};
}
