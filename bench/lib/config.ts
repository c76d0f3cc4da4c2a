/**
 * What the servers under test and the load generator agree on: where to listen, which app
 * credentials to use, which core each side runs on.
 */

export const BENCH_HOST = '127.0.0.1';

/** The one app every server under test accepts. */
export const BENCH_APP = {
  id: 'bench',
  key: 'bench-key-123',
  secret: 'bench-secret-0123456789',
} as const;

/** Server processes are pinned here (with taskset, when available)… */
export const SERVER_CPU = 0;
/** …and the load generator (this process) here, so the two never share a core. */
export const GENERATOR_CPU = 1;

/** Path + query of a raw channel, e.g. `/v4/bench?api_key=…`. Same shape for every peer. */
export function rawChannelPath(channel: string, query = ''): string {
  return `/v4/${encodeURIComponent(channel)}?api_key=${BENCH_APP.key}${query ? `&${query}` : ''}`;
}

/** Path + query of Chorus's Pusher dialect for the bench app (`/app/{key}?protocol=7`); channels are subscribed to on the socket. */
export function pusherAppPath(): string {
  return `/app/${BENCH_APP.key}?protocol=7`;
}
