/**
 * Origin allow-list matching, done before any upgrade (cross-site WebSocket hijacking defence).
 * Patterns: `*`, exact `scheme://host[:port]`, or `scheme://*.example.com` (any subdomain depth,
 * not the bare domain). Comparison is on the normalised origin, so default ports and letter
 * case do not matter.
 */

export function isOriginAllowed(origin: string | undefined, patterns: readonly string[]): boolean {
  if (patterns.includes('*')) return true;
  // Browsers always send Origin; a client without one is not a browser page and cannot be
  // hijacked cross-site, so the allow-list does not apply to it (keys and tokens still do).
  if (origin === undefined) return true;
  const actual = normalise(origin);
  if (actual === undefined) return false;
  return patterns.some((pattern) => matches(actual, pattern));
}

function normalise(origin: string): URL | undefined {
  try {
    const url = new URL(origin);
    return url.origin === 'null' ? undefined : url;
  } catch {
    return undefined;
  }
}

function matches(actual: URL, pattern: string): boolean {
  const wildcard = /^([a-z][a-z0-9+.-]*:)\/\/\*\.(.+)$/i.exec(pattern);
  if (!wildcard) return normalise(pattern)?.origin === actual.origin;
  const [, scheme = '', rest = ''] = wildcard;
  const base = normalise(`${scheme}//${rest}`);
  if (!base || base.protocol !== actual.protocol || base.port !== actual.port) return false;
  return actual.hostname.endsWith(`.${base.hostname}`);
}
