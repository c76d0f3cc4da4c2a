/**
 * REST publish, PieSocket-compatible: `POST /api/publish` with
 * `{"key", "secret", "channelId" (or "roomId"), "message"}`. A string message is delivered as
 * is, anything else as its JSON text, always as a text frame.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CHANNEL_NAME_RULE, HttpErrors, isValidChannelName } from '@chorus/protocol';
import type { ServerContext } from '../context.js';
import { EngineUnavailableError } from '../engine/errors.js';
import { TOO_DEEP, encodeJson } from '../json-encode.js';
import { readBody } from './body.js';
import { sendError, sendJson } from './respond.js';

/** What a 503 tells a backend to wait: Redis reconnects with backoff capped at 5 s. */
export const ENGINE_RETRY_AFTER_SECONDS = 2;

/** Room for the JSON envelope around a message of the largest allowed size. */
const ENVELOPE_ALLOWANCE = 4096;

export async function handlePublish(ctx: ServerContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const maxMessageSize = Math.max(...ctx.apps.all.map((app) => app.limits.maxMessageSize));
  const body = await readBody(req, maxMessageSize * 2 + ENVELOPE_ALLOWANCE);
  if (body === undefined) return sendError(res, HttpErrors.PAYLOAD_TOO_LARGE);

  let request: unknown;
  try {
    request = JSON.parse(body.toString('utf8'));
  } catch {
    return sendError(res, HttpErrors.BAD_REQUEST, 'Body is not valid JSON.');
  }
  if (typeof request !== 'object' || request === null || Array.isArray(request)) {
    return sendError(res, HttpErrors.BAD_REQUEST, 'Body must be a JSON object with key, secret, channelId and message.');
  }
  const fields = request as Record<string, unknown>;
  const { key, secret, message } = fields;
  const channel = fields['channelId'] ?? fields['roomId'];
  if (typeof key !== 'string' || typeof secret !== 'string') {
    return sendError(res, HttpErrors.BAD_REQUEST, 'key and secret must be strings.');
  }
  const channelName = typeof channel === 'number' ? String(channel) : channel;
  if (typeof channelName !== 'string' || !isValidChannelName(channelName)) {
    return sendError(res, HttpErrors.BAD_REQUEST, `channelId must be a channel name: ${CHANNEL_NAME_RULE}.`);
  }
  if (message === undefined) return sendError(res, HttpErrors.BAD_REQUEST, 'message is required.');

  const app = ctx.apps.byKey(key);
  if (!app || !app.isSecret(secret)) return sendError(res, HttpErrors.UNAUTHORIZED);

  const text = typeof message === 'string' ? message : encodeJson(message);
  if (text === undefined) return sendError(res, HttpErrors.BAD_REQUEST, `message ${TOO_DEEP}.`);
  const payload = Buffer.from(text);
  if (payload.length > app.limits.maxMessageSize) {
    return sendError(res, HttpErrors.PAYLOAD_TOO_LARGE, `message is ${payload.length} bytes; this app allows ${app.limits.maxMessageSize}.`);
  }
  const invalid = app.messageCheck(channelName)?.({ event: undefined, payload, binary: false });
  const counts = ctx.stats.httpPublications(app.id, 'rest');
  if (invalid !== undefined) {
    counts.schemaRefused++;
    return sendError(res, HttpErrors.BAD_REQUEST, `Invalid message: ${invalid}`);
  }
  counts.published++;
  let outcome;
  try {
    outcome = await ctx.engine.broker.publish({ appId: app.id, channel: channelName, originId: undefined, event: undefined, payload, binary: false });
  } catch (error) {
    if (!(error instanceof EngineUnavailableError)) throw error;
    ctx.log.warn({ app: app.id, channel: channelName, err: error }, 'REST publish refused: engine unavailable');
    return sendError(res, HttpErrors.ENGINE_UNAVAILABLE, undefined, { 'retry-after': String(ENGINE_RETRY_AFTER_SECONDS) });
  }
  sendJson(res, 200, { success: true, offset: outcome.offset, epoch: outcome.epoch });
}
