/**
 * Parsing and validating v1 commands. Each command type has a JSON Schema, compiled once with
 * ajv, so a bad command gets an error naming the failing field.
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { MAX_EVENT_NAME_LENGTH, MAX_MSG_ID_LENGTH, type Command, type CommandType } from '@chorus/protocol';

export type ParsedFrame =
  /** Not a JSON object with a usable id: the client cannot match replies, close it. */
  | { readonly kind: 'fatal'; readonly message: string }
  /** The id is readable but the command is not valid: reply with bad_request. */
  | { readonly kind: 'invalid'; readonly id: number; readonly message: string }
  | { readonly kind: 'command'; readonly command: Command };

const id = { type: 'integer', minimum: 1 } as const;
const channel = { type: 'string' } as const; // its syntax is checked separately: code 102, not 104
const position = {
  type: 'object',
  additionalProperties: false,
  required: ['offset', 'epoch'],
  properties: { offset: { type: 'integer', minimum: 0 }, epoch: { type: 'string', maxLength: 64 } },
} as const;
const token = { type: 'string', minLength: 1, maxLength: 8192 } as const;
/** `key:signature`: an app key and 64 hex digits. */
const pusherAuth = { type: 'string', minLength: 1, maxLength: 1024 } as const;
const channelData = { type: 'string', minLength: 1, maxLength: 8192 } as const;

function command(type: CommandType, required: string[], properties: Record<string, unknown>): object {
  return {
    type: 'object',
    additionalProperties: false,
    required: ['id', 'type', ...required],
    properties: { id, type: { const: type }, ...properties },
  };
}

const schemas: Record<CommandType, object> = {
  connect: command('connect', [], { key: { type: 'string' }, token, secret: { type: 'string' }, client: { type: 'string', maxLength: 128 } }),
  subscribe: command('subscribe', ['channel'], { channel, presence: { type: 'boolean' }, since: position, token, auth: pusherAuth, channelData }),
  unsubscribe: command('unsubscribe', ['channel'], { channel }),
  publish: {
    ...command('publish', ['channel'], {
      channel,
      event: { type: 'string', minLength: 1, maxLength: MAX_EVENT_NAME_LENGTH },
      data: {},
      b64: { type: 'string', pattern: '^[A-Za-z0-9+/]*={0,2}$' },
      msgId: { type: 'string', minLength: 1, maxLength: MAX_MSG_ID_LENGTH },
    }),
    oneOf: [{ required: ['data'] }, { required: ['b64'] }],
  },
  history: command('history', ['channel'], { channel, limit: { type: 'integer', minimum: 1 }, since: position }),
  presence: command('presence', ['channel'], { channel }),
  refresh: command('refresh', ['token'], { token }),
  ping: command('ping', [], {}),
};

const ajv = new Ajv({ allErrors: false, strict: false });
const validators = new Map<string, ValidateFunction>(Object.entries(schemas).map(([type, schema]) => [type, ajv.compile(schema)]));

const COMMAND_TYPES = Object.keys(schemas).join(', ');

export function parseFrame(text: string): ParsedFrame {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { kind: 'fatal', message: 'frame is not JSON' };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { kind: 'fatal', message: 'frame is not a JSON object' };
  const frame = value as Record<string, unknown>;
  const frameId = frame['id'];
  if (typeof frameId !== 'number' || !Number.isSafeInteger(frameId) || frameId < 1) return { kind: 'fatal', message: 'id must be a positive integer' };
  const type = frame['type'];
  if (type === undefined) return { kind: 'invalid', id: frameId, message: `the command has no "type" (one of ${COMMAND_TYPES})` };
  const validate = typeof type === 'string' ? validators.get(type) : undefined;
  if (!validate) return { kind: 'invalid', id: frameId, message: `unknown type ${JSON.stringify(type)} (one of ${COMMAND_TYPES})` };
  if (!validate(frame)) return { kind: 'invalid', id: frameId, message: describe(validate.errors?.[0]) };
  return { kind: 'command', command: frame as unknown as Command };
}

function describe(error: ErrorObject | undefined): string {
  if (!error) return 'invalid command';
  if (error.keyword === 'additionalProperties') return `unknown field "${String(error.params['additionalProperty'])}"`;
  if (error.keyword === 'required') return `missing field "${String(error.params['missingProperty'])}"`;
  if (error.keyword === 'oneOf') return 'give exactly one of "data" and "b64"';
  const field = error.instancePath.slice(1).replaceAll('/', '.') || 'command';
  return `${field} ${error.message ?? 'is invalid'}`;
}
