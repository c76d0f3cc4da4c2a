/** Plain HTTP requests: health, readiness, metrics, REST publish, the example pages. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpErrors, RAW_PATH, V1_PATH } from '@chorus/protocol';
import { ADMIN_API_PREFIX, handleAdminApi, isAdmin, refuseAdmin } from '../admin/api.js';
import type { ServerContext } from '../context.js';
import { handlePusherApi, isPusherApiPath } from '../dialects/pusher/http-api.js';
import { pusherDialect } from '../dialects/pusher/index.js';
import { handleMetrics, handleReady } from './metrics.js';
import { yjsDialect, yjsStats } from '../dialects/yjs/index.js';
import { EngineUnavailableError } from '../engine/errors.js';
import { ENGINE_RETRY_AFTER_SECONDS, handlePublish } from './publish.js';
import { requestUrl } from './request-url.js';
import { sendError, sendJson } from './respond.js';
import { serveStatic } from './static.js';

/** The channel the example pages and the start banner use. */
export const EXAMPLE_CHANNEL = 'channel_123';

/** Where the static assets live: the example pages and the browser build of @chorus/client. */
export interface StaticRoots {
  readonly examplesDir: string;
  /** Folder holding chorus-client.js (+ .map), served as /client.js. */
  readonly clientDir: string;
  /** The admin dashboard's files, served under /admin/. */
  readonly adminDir: string;
}

export function createRequestHandler(ctx: ServerContext, roots: StaticRoots) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const url = requestUrl(req);
    countCall(ctx, url, req, res);
    if (!url) return sendError(res, HttpErrors.BAD_REQUEST, 'The request target is not a path.');
    route(ctx, roots, url, req, res).catch((error: unknown) => {
      if (error instanceof EngineUnavailableError && !res.headersSent) {
        ctx.log.warn({ err: error, url: req.url }, 'request refused: engine unavailable');
        return sendError(res, HttpErrors.ENGINE_UNAVAILABLE, undefined, { 'retry-after': String(ENGINE_RETRY_AFTER_SECONDS) });
      }
      ctx.log.error({ err: error, url: req.url }, 'request failed');
      if (!res.headersSent) sendError(res, HttpErrors.INTERNAL);
      else res.destroy();
    });
  };
}

async function route(ctx: ServerContext, roots: StaticRoots, url: URL, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const { pathname } = url;
  const method = req.method ?? 'GET';

  if (pathname === '/health') {
    if (method !== 'GET' && method !== 'HEAD') return sendError(res, HttpErrors.METHOD_NOT_ALLOWED);
    const local = { connections: ctx.connections.size, channels: ctx.hub.channelCount };
    const cluster = await ctx.engine.stats().catch(() => undefined);
    return sendJson(res, ctx.shuttingDown ? 503 : 200, {
      status: ctx.drain ? 'draining' : ctx.shuttingDown ? 'shutting_down' : 'ok',
      engine: ctx.config.engine.type,
      uptimeSeconds: Math.round((Date.now() - ctx.startedAt) / 1000),
      ...local,
      ...(ctx.config.engine.type !== 'memory' ? { cluster: cluster ?? 'unavailable' } : {}),
      yjs: yjsStats(ctx),
    });
  }
  if (pathname === '/ready' || pathname === '/metrics') {
    if (method !== 'GET' && method !== 'HEAD') return sendError(res, HttpErrors.METHOD_NOT_ALLOWED);
    return pathname === '/ready' ? handleReady(ctx, res) : handleMetrics(ctx, req, res);
  }
  if (pathname === '/api/publish') {
    if (method !== 'POST') return sendError(res, HttpErrors.METHOD_NOT_ALLOWED, 'Use POST with a JSON body.');
    return handlePublish(ctx, req, res);
  }
  if (pathname === '/admin' || pathname.startsWith('/admin/')) {
    const { admin } = ctx.config;
    if (!admin) return sendError(res, HttpErrors.NOT_FOUND, 'The admin API and dashboard are off: set admin.password in the config (docs/admin.md).');
    if (!isAdmin(admin, req)) return refuseAdmin(res);
    if (pathname.startsWith(ADMIN_API_PREFIX)) return handleAdminApi(ctx, req, res, url);
    if (method !== 'GET') return sendError(res, HttpErrors.METHOD_NOT_ALLOWED);
    if (pathname === '/admin') return redirect(res, '/admin/');
    return serveStatic(roots.adminDir, pathname === '/admin/' ? 'index.html' : pathname.slice('/admin/'.length), res);
  }
  if (isPusherApiPath(ctx, pathname)) return handlePusherApi(ctx, req, res, url);
  if (RAW_PATH.test(pathname) || pathname === V1_PATH || pusherDialect.match(url, ctx.config) || yjsDialect.match(url, ctx.config)) {
    return sendError(res, HttpErrors.UPGRADE_REQUIRED, 'This is a WebSocket endpoint: connect with a WebSocket client (ws:// or wss://).');
  }
  if (method === 'GET' && (pathname === '/client.js' || pathname === '/client.js.map')) {
    return serveStatic(roots.clientDir, pathname.replace('/client.js', 'chorus-client.js'), res);
  }
  if (ctx.config.examples && method === 'GET') {
    if (pathname === '/' || pathname === '/examples') return redirect(res, '/examples/');
    if (pathname === '/examples/config.json') {
      // Only the public API key: the secret never reaches a browser.
      const app = ctx.apps.all[0];
      return sendJson(res, 200, { apiKey: app?.key ?? null, channel: EXAMPLE_CHANNEL });
    }
    if (pathname.startsWith('/examples/')) return serveStatic(roots.examplesDir, pathname.slice('/examples/'.length), res);
  }
  sendError(res, HttpErrors.NOT_FOUND);
}

/**
 * http_calls_received_total by route, with the request's body bytes (its Content-Length) and the
 * bytes written for the response (what the socket wrote meanwhile: one response at a time).
 */
function countCall(ctx: ServerContext, url: URL | undefined, req: IncomingMessage, res: ServerResponse): void {
  const pathname = url?.pathname ?? '';
  const route = ROUTES.get(pathname) ?? (isPusherApiPath(ctx, pathname) ? 'pusher_api' : 'other');
  const writtenBefore = req.socket.bytesWritten;
  res.once('finish', () => ctx.stats.httpCall(route, Number(req.headers['content-length']) || 0, req.socket.bytesWritten - writtenBefore));
}

const ROUTES: ReadonlyMap<string, string> = new Map([
  ['/health', 'health'],
  ['/ready', 'ready'],
  ['/metrics', 'metrics'],
  ['/api/publish', 'publish'],
]);

function redirect(res: ServerResponse, location: string): void {
  res.writeHead(302, { location, 'content-length': 0 });
  res.end();
}
