/**
 * What travels through Redis pub/sub and sits in the streams: a JSON header line, a newline,
 * then the payload bytes untouched (no base64, no escaping). The Lua publish script writes the
 * offset, epoch and time at the front of the header.
 */
import type { Member } from '@chorus/protocol';
import type { MessageInput, MessagePublication, PresencePublication, Publication } from '../types.js';

const NEWLINE = 0x0a;

interface MessageHeader {
  k: 'm';
  off: number;
  ep: string;
  t: number;
  a: string;
  c: string;
  o?: string;
  e?: string;
  b?: 1;
  u?: string;
  x?: 1;
}

interface PresenceHeader {
  k: 'p';
  a: string;
  c: string;
  o?: string;
  act: 'joined' | 'left';
  m: Member;
  ms: Member[];
}

/** The header fields a message contributes (after the ones the script adds), starting with a comma. */
export function messageHeaderFields(message: MessageInput): string {
  let fields = `,"k":"m","a":${JSON.stringify(message.appId)},"c":${JSON.stringify(message.channel)}`;
  if (message.originId !== undefined) fields += `,"o":${JSON.stringify(message.originId)}`;
  if (message.event !== undefined) fields += `,"e":${JSON.stringify(message.event)}`;
  if (message.binary) fields += ',"b":1';
  if (message.userId !== undefined) fields += `,"u":${JSON.stringify(message.userId)}`;
  if (message.excludeOrigin === true) fields += ',"x":1';
  return fields;
}

export function encodePresence(change: PresencePublication): Buffer {
  const header: PresenceHeader = { k: 'p', a: change.appId, c: change.channel, act: change.action, m: change.member, ms: [...change.members] };
  if (change.originId !== undefined) header.o = change.originId;
  return Buffer.from(`${JSON.stringify(header)}\n`);
}

/** Undefined for anything that is not a publication (a probe). */
export function decodePublication(raw: Buffer): Publication | undefined {
  const end = raw.indexOf(NEWLINE);
  if (end < 0) return undefined;
  const header = JSON.parse(raw.subarray(0, end).toString('utf8')) as MessageHeader | PresenceHeader;
  if (header.k === 'p') {
    return { kind: 'presence', appId: header.a, channel: header.c, originId: header.o, action: header.act, member: header.m, members: header.ms };
  }
  const publication: MessagePublication = {
    kind: 'message',
    appId: header.a,
    channel: header.c,
    originId: header.o,
    event: header.e,
    payload: raw.subarray(end + 1),
    binary: header.b === 1,
    ...(header.u === undefined ? {} : { userId: header.u }),
    ...(header.x === 1 ? { excludeOrigin: true } : {}),
    offset: header.off,
    epoch: header.ep,
    ts: header.t,
  };
  return publication;
}
