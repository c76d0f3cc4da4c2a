/** The URL of a request, read from its request target without ever throwing. */
import type { IncomingMessage } from 'node:http';

/**
 * The request's URL, or undefined when its target is neither a path nor a URL. A path is read as
 * a path even when it starts with `//`, which `new URL(target, base)` would take for a host (and
 * throw on `//a:b/`): fuzzing found that one request line could end the process.
 */
export function requestUrl(req: IncomingMessage): URL | undefined {
  const target = req.url ?? '/';
  try {
    return new URL(target.startsWith('/') ? `http://localhost${target}` : target, 'http://localhost');
  } catch {
    return undefined;
  }
}
