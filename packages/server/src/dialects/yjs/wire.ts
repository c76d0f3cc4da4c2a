/**
 * The y-protocols wire format that y-websocket's WebsocketProvider speaks, one message per binary
 * frame: `varUint type` then, for sync (0), `varUint step` and a `varUint8Array` payload (a state
 * vector for step 1, a Yjs update for step 2 and update); for awareness (1), a `varUint8Array`
 * awareness update; query-awareness (3) has no payload.
 *
 * Inbound frames are parsed here with a bounded reader rather than lib0's decoders: lib0 trusts
 * declared lengths and counts, and y-protocols' readers apply half a message before they throw
 * on its end. Every length is checked against the bytes left in the frame before it is used, a
 * frame must hold exactly one message, and a Yjs update must decode (Y.decodeUpdate) before it
 * may reach a document. Outbound messages are built with lib0's encoders.
 */
import * as encoding from 'lib0/encoding';
import * as Y from 'yjs';

const MESSAGE_SYNC = 0;
const MESSAGE_AWARENESS = 1;
const MESSAGE_AUTH = 2;
const MESSAGE_QUERY_AWARENESS = 3;
const SYNC_STEP1 = 0;
const SYNC_STEP2 = 1;
const SYNC_UPDATE = 2;
const AUTH_PERMISSION_DENIED = 0;

export type YjsMessage =
  | { readonly kind: 'sync-step1'; readonly stateVector: Uint8Array }
  /** Sync step 2 and update carry the same thing: a Yjs update (V1 encoding). */
  | { readonly kind: 'update'; readonly update: Uint8Array }
  | { readonly kind: 'awareness'; readonly update: Uint8Array; readonly clients: readonly AwarenessEntry[] }
  | { readonly kind: 'query-awareness' };

export interface AwarenessEntry {
  readonly clientId: number;
  readonly clock: number;
  /** null: the client left. */
  readonly state: unknown;
}

/** A parsed message, or why the frame is not one (for the logs; the client gets 4020). */
export type ParseResult = { readonly message: YjsMessage } | { readonly error: string };

/** Reads varints and length-prefixed byte strings, never past the end of its buffer. */
class BoundedReader {
  readonly #bytes: Uint8Array;
  #pos = 0;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
  }

  get remaining(): number {
    return this.#bytes.length - this.#pos;
  }

  /** A lib0 varUint (7 bits a byte, little end first); undefined when truncated or over 2^53. */
  varUint(): number | undefined {
    let value = 0;
    let multiplier = 1;
    // 8 bytes hold 56 bits: enough for any safe integer, and a bound on a run of continuation bytes.
    for (let i = 0; i < 8 && this.#pos < this.#bytes.length; i++) {
      const byte = this.#bytes[this.#pos++] as number;
      value += (byte & 0x7f) * multiplier;
      if (value > Number.MAX_SAFE_INTEGER) return undefined;
      if (byte < 0x80) return value;
      multiplier *= 128;
    }
    return undefined;
  }

  /** A varUint length then that many bytes (a view, not a copy); undefined if they are not all there. */
  bytes(): Uint8Array | undefined {
    const length = this.varUint();
    if (length === undefined || length > this.remaining) return undefined;
    const view = this.#bytes.subarray(this.#pos, this.#pos + length);
    this.#pos += length;
    return view;
  }
}

export function parseMessage(frame: Uint8Array): ParseResult {
  const reader = new BoundedReader(frame);
  const type = reader.varUint();
  let message: YjsMessage | string;
  switch (type) {
    case MESSAGE_SYNC:
      message = parseSync(reader);
      break;
    case MESSAGE_AWARENESS:
      message = parseAwareness(reader);
      break;
    case MESSAGE_QUERY_AWARENESS:
      message = { kind: 'query-awareness' };
      break;
    case undefined:
      return { error: 'truncated message type' };
    default:
      return { error: `unknown message type ${type}` };
  }
  if (typeof message === 'string') return { error: message };
  if (reader.remaining !== 0) return { error: `${reader.remaining} bytes after the message` };
  return { message };
}

function parseSync(reader: BoundedReader): YjsMessage | string {
  const step = reader.varUint();
  const payload = reader.bytes();
  if (step === undefined || payload === undefined) return 'truncated sync message';
  if (step === SYNC_STEP1) return isStateVector(payload) ? { kind: 'sync-step1', stateVector: payload } : 'malformed state vector';
  if (step !== SYNC_STEP2 && step !== SYNC_UPDATE) return `unknown sync step ${step}`;
  return isUpdate(payload) ? { kind: 'update', update: payload } : 'malformed Yjs update';
}

/** A state vector: a count, then that many (client, clock) varUint pairs. */
function isStateVector(bytes: Uint8Array): boolean {
  const reader = new BoundedReader(bytes);
  const count = reader.varUint();
  // Each pair takes at least two bytes: a larger count cannot be honest.
  if (count === undefined || count * 2 > reader.remaining) return false;
  for (let i = 0; i < count; i++) {
    if (reader.varUint() === undefined || reader.varUint() === undefined) return false;
  }
  return reader.remaining === 0;
}

/** Whether Yjs can decode the whole update (it is then safe to apply: nothing half-applied). */
function isUpdate(bytes: Uint8Array): boolean {
  try {
    Y.decodeUpdate(bytes);
    return true;
  } catch {
    return false;
  }
}

function parseAwareness(reader: BoundedReader): YjsMessage | string {
  const update = reader.bytes();
  if (update === undefined) return 'truncated awareness message';
  const inner = new BoundedReader(update);
  const count = inner.varUint();
  // An entry is at least three bytes (client id, clock, an empty state string).
  if (count === undefined || count * 3 > inner.remaining) return 'malformed awareness update';
  const clients: AwarenessEntry[] = [];
  for (let i = 0; i < count; i++) {
    const clientId = inner.varUint();
    const clock = inner.varUint();
    const stateText = inner.bytes();
    if (clientId === undefined || clock === undefined || stateText === undefined) return 'truncated awareness entry';
    let state: unknown;
    try {
      state = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(stateText));
    } catch {
      return 'awareness state is not JSON';
    }
    clients.push({ clientId, clock, state });
  }
  if (inner.remaining !== 0) return 'bytes after the awareness update';
  return { kind: 'awareness', update, clients };
}

function finish(encoder: encoding.Encoder): Buffer {
  const bytes = encoding.toUint8Array(encoder);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function syncMessage(step: number, payload: Uint8Array): Buffer {
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, MESSAGE_SYNC);
  encoding.writeVarUint(encoder, step);
  encoding.writeVarUint8Array(encoder, payload);
  return finish(encoder);
}

export const encodeSyncStep1 = (stateVector: Uint8Array): Buffer => syncMessage(SYNC_STEP1, stateVector);
export const encodeSyncStep2 = (update: Uint8Array): Buffer => syncMessage(SYNC_STEP2, update);
export const encodeUpdate = (update: Uint8Array): Buffer => syncMessage(SYNC_UPDATE, update);

export function encodeAwareness(update: Uint8Array): Buffer {
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, MESSAGE_AWARENESS);
  encoding.writeVarUint8Array(encoder, update);
  return finish(encoder);
}

/** y-protocols' auth message: y-websocket hands the reason to its permissionDeniedHandler (a console warning). */
export function encodePermissionDenied(reason: string): Buffer {
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, MESSAGE_AUTH);
  encoding.writeVarUint(encoder, AUTH_PERMISSION_DENIED);
  encoding.writeVarString(encoder, reason);
  return finish(encoder);
}

/** An update that changes nothing (what an empty document sends as its sync step 2). */
export function isEmptyUpdate(update: Uint8Array): boolean {
  return update.length === 2 && update[0] === 0 && update[1] === 0;
}
