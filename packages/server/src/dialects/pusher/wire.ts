/**
 * Pusher protocol 7 frames. Every server frame is `{event, channel?, data}` JSON text; for
 * `pusher_internal:*` and channel events `data` is itself a JSON *string* (pusher-js parses it
 * again), while `pusher:error` and `pusher:subscription_error` carry an object. Reference:
 * docs/pusher.md and /work/shared/reference/pusher-compat.md §1.
 */
import { textFrame } from '../../frame.js';
import { encodeJson } from '../../json-encode.js';

/** A frame for `{event, channel?, data: "<dataText>", user_id?}`, `dataText` sent as a JSON string. */
export function eventFrame(event: string, channel: string | undefined, dataText: string, userId?: string): Buffer {
  let text = `{"event":${JSON.stringify(event)}`;
  if (channel !== undefined) text += `,"channel":${JSON.stringify(channel)}`;
  text += `,"data":${JSON.stringify(dataText)}`;
  if (userId !== undefined) text += `,"user_id":${JSON.stringify(userId)}`;
  return textFrame(`${text}}`);
}

/** A frame whose `data` is an object (pusher:error, pusher:pong, pusher:subscription_error…). */
export function objectFrame(event: string, channel: string | undefined, data: unknown): Buffer {
  return textFrame(JSON.stringify(channel === undefined ? { event, data } : { event, channel, data }));
}

export function errorFrame(code: number | null, message: string): Buffer {
  return textFrame(errorText(code, message));
}

/**
 * `pusher:error` as text, for refused sockets (ws.send frames what it is given: a pre-built frame
 * would reach the client as a binary message holding the frame's bytes, which no client parses).
 */
export function errorText(code: number | null, message: string): string {
  return JSON.stringify({ event: 'pusher:error', data: { code, message } });
}

/**
 * A refused subscription, with the channel set: pusher-js hands a bare `pusher:error` to the
 * connection only, never to the channel's handlers (where Echo's `.error()` listens).
 */
export function subscriptionErrorFrame(channel: string, type: string, error: string, status: number): Buffer {
  return objectFrame('pusher:subscription_error', channel, { type, error, status });
}

/**
 * What a core message's payload is as Pusher `data` text. The core keeps event data as JSON text
 * (a v1 publish, a Pusher trigger whose data parsed as JSON) or as the JSON string of a text that
 * was not JSON; a JSON string goes out as its content, anything else as the JSON text itself.
 */
export function pusherDataText(jsonText: string): string {
  if (jsonText.charCodeAt(0) !== 0x22 /* " */) return jsonText;
  try {
    const value: unknown = JSON.parse(jsonText);
    return typeof value === 'string' ? value : jsonText;
  } catch {
    return jsonText;
  }
}

/**
 * Pusher event data (a string, from the HTTP API) as the core payload: the JSON it holds, so an
 * object stays an object for raw and v1 subscribers, or else the string as a JSON string.
 */
export function corePayloadOfData(data: string): Buffer {
  try {
    JSON.parse(data);
    return Buffer.from(data);
  } catch {
    return Buffer.from(JSON.stringify(data));
  }
}

/** A client event's `data` (any JSON value pusher-js sent) as the core payload; undefined when too deep to encode. */
export function corePayloadOfValue(data: unknown): Buffer | undefined {
  if (typeof data === 'string') return corePayloadOfData(data);
  const text = encodeJson(data ?? null);
  return text === undefined ? undefined : Buffer.from(text);
}
