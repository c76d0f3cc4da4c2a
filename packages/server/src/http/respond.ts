/** Small helpers shared by the HTTP handlers: JSON answers and coded errors. */
import type { ServerResponse } from 'node:http';
import type { HttpErrorInfo } from '@chorus/protocol';

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** Every HTTP error has the same shape: `{"error": "<human text>", "code": "<stable code>"}`. */
export function sendError(res: ServerResponse, error: HttpErrorInfo, message: string = error.message, headers: Record<string, string> = {}): void {
  sendJson(res, error.status, { error: message, code: error.code }, headers);
}
