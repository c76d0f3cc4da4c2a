/** Answering an upgrade request with a plain HTTP error instead of a WebSocket. */
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { HttpErrorInfo } from '@chorus/protocol';

/** Writes the error response on the raw socket (there is no ServerResponse for an upgrade) and closes it. */
export function refuseHttp(socket: Duplex, error: HttpErrorInfo, message: string = error.message, headers: Readonly<Record<string, string>> = {}): void {
  if (!socket.writable) return void socket.destroy();
  const body = JSON.stringify({ error: message, code: error.code });
  const extra = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join('');
  socket.end(
    `HTTP/1.1 ${error.status} ${STATUS_CODES[error.status] ?? 'Error'}\r\n` +
      `Connection: close\r\nContent-Type: application/json\r\n${extra}` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}
