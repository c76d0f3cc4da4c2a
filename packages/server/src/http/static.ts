/**
 * Serves the example pages under /examples/. Only files inside the examples folder are served;
 * `..` and encoded tricks resolve outside it and get 404.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { extname, join, resolve, sep } from 'node:path';
import { HttpErrors } from '@chorus/protocol';
import { sendError } from './respond.js';

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

/** `relativePath` is the URL path below the mount point, e.g. `basic/` for `/examples/basic/`. */
export async function serveStatic(root: string, relativePath: string, res: ServerResponse): Promise<void> {
  let decoded: string;
  try {
    decoded = decodeURIComponent(relativePath);
  } catch {
    return sendError(res, HttpErrors.NOT_FOUND);
  }
  const base = resolve(root);
  let path = resolve(join(base, decoded));
  if (path !== base && !path.startsWith(base + sep)) return sendError(res, HttpErrors.NOT_FOUND);
  try {
    let info = await stat(path);
    if (info.isDirectory()) {
      // Relative links in index.html only resolve right below a trailing slash.
      if (!relativePath.endsWith('/') && relativePath !== '') return redirect(res, `${relativePath.split('/').pop() ?? ''}/`);
      path = join(path, 'index.html');
      info = await stat(path);
    }
    if (!info.isFile()) return sendError(res, HttpErrors.NOT_FOUND);
    res.writeHead(200, {
      'content-type': CONTENT_TYPES[extname(path)] ?? 'application/octet-stream',
      'content-length': info.size,
      'cache-control': 'no-cache',
      'x-content-type-options': 'nosniff',
    });
    createReadStream(path).pipe(res);
  } catch {
    sendError(res, HttpErrors.NOT_FOUND);
  }
}

function redirect(res: ServerResponse, location: string): void {
  res.writeHead(301, { location, 'content-length': 0 });
  res.end();
}
