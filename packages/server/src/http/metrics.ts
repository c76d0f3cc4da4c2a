/**
 * GET /metrics (Prometheus text format, metrics/prometheus.ts) and GET /ready, the probe a load
 * balancer or Kubernetes asks before sending traffic: 200 while the engine is reachable and the
 * server is not shutting down, 503 otherwise. /ready reads the engine's state, which the engine
 * keeps current, so it answers at once even while Redis is away.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpErrors } from '@chorus/protocol';
import type { ServerContext } from '../context.js';
import { sendError, sendJson } from './respond.js';

export async function handleMetrics(ctx: ServerContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const { metrics } = ctx;
  if (!metrics) return sendError(res, HttpErrors.NOT_FOUND, 'Metrics are off on this server (metrics.enabled in its config).');
  const { token } = ctx.config.metrics;
  if (token !== undefined && !hasBearer(req.headers.authorization, token)) {
    return sendError(res, HttpErrors.UNAUTHORIZED, 'GET /metrics needs the header Authorization: Bearer <metrics.token from the server\'s config>.', { 'www-authenticate': 'Bearer' });
  }
  const text = await metrics.scrape();
  res.writeHead(200, { 'content-type': metrics.contentType, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function handleReady(ctx: ServerContext, res: ServerResponse): void {
  const status = ctx.shuttingDown ? 'shutting_down' : ctx.engineState.up ? 'ready' : 'engine_unavailable';
  sendJson(res, status === 'ready' ? 200 : 503, { status, engine: ctx.config.engine.type });
}

/** Compared over SHA-256 digests, in constant time: neither the token nor its length leaks. */
function hasBearer(header: string | undefined, token: string): boolean {
  const match = /^Bearer +(\S+)\s*$/i.exec(header ?? '');
  if (!match?.[1]) return false;
  return timingSafeEqual(sha256(match[1]), sha256(token));
}

function sha256(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}
