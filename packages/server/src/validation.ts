/**
 * Optional JSON Schema per channel-name pattern (`channels[].schema` in the config), compiled
 * once at startup. The schema validates a publication's data as protocol v1 sees it, whatever
 * dialect sent it: a v1 `data`; the `data` of a PieSocket envelope `{event, data}`; otherwise
 * the raw text as a JSON string. Binary payloads cannot match a schema and are refused.
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type { MessageInput } from './engine/types.js';

export type MessageCheck = (message: Pick<MessageInput, 'event' | 'payload' | 'binary'>) => string | undefined;

/** Compiles a schema; throws with ajv's message when the schema itself is invalid. */
export function compileMessageSchema(schema: object): MessageCheck {
  const validate: ValidateFunction = new Ajv({ allErrors: false, strict: true }).compile(schema);
  return (message) => {
    if (message.binary) return 'binary payloads are not allowed on this channel (it has a schema)';
    const data = dataOf(message.event, message.payload.toString('utf8'));
    return validate(data) ? undefined : describe(validate.errors?.[0]);
  };
}

function dataOf(event: string | undefined, text: string): unknown {
  if (event !== undefined) return JSON.parse(text);
  try {
    const parsed = JSON.parse(text) as unknown;
    if (typeof parsed === 'object' && parsed !== null && typeof (parsed as Record<string, unknown>)['event'] === 'string') {
      return (parsed as Record<string, unknown>)['data'];
    }
  } catch {
    // Plain text: validated as a string below.
  }
  return text;
}

/** `data/text must be string`: the failing path and what is wrong with it. */
function describe(error: ErrorObject | undefined): string {
  if (!error) return 'data does not match the channel schema';
  const path = `data${error.instancePath}`;
  if (error.keyword === 'required') return `${path}/${String(error.params['missingProperty'])} is required`;
  if (error.keyword === 'additionalProperties') return `${path}/${String(error.params['additionalProperty'])} is not allowed`;
  return `${path} ${error.message ?? 'is invalid'}`;
}
