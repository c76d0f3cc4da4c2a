/**
 * The Pusher dialect: `[pathPrefix]/app/{key}?protocol=7`, so pusher-js, Laravel Echo and every
 * Pusher client library connect unchanged. An adapter on the admission pipeline (admission.ts);
 * the connection's life is PusherSession; the HTTP API is http-api.ts. docs/pusher.md.
 */
import { PusherCloseCodes } from '@chorus/protocol';
import { refusal, type Dialect } from '../../admission.js';
import type { ChorusConfig } from '../../config.js';
import { onControl, onCountChange } from './cluster-events.js';
import { PusherSession } from './session.js';
import { generateSocketId } from './signatures.js';
import { errorText } from './wire.js';

/** The one protocol version spoken (pusher-js 4 and later send 7). */
const PROTOCOL_VERSION = '7';

/** A Pusher frame wraps its data in JSON, escaped once more: room for that around maxMessageSize. */
function pusherFrameLimit(maxMessageSize: number): number {
  return maxMessageSize * 2 + 4096;
}

const pathPatterns = new WeakMap<ChorusConfig, RegExp>();

/** `/app/{key}` under the configured prefix; the regex is built once per config. */
function appPath(config: ChorusConfig): RegExp {
  let pattern = pathPatterns.get(config);
  if (!pattern) {
    pattern = new RegExp(`^${config.pusher.pathPrefix.replace(/[.]/g, '\\.')}/app/([^/?#]+)$`);
    pathPatterns.set(config, pattern);
  }
  return pattern;
}

export const pusherDialect: Dialect<{ key: string }, undefined> = {
  name: 'pusher',
  match(url, config) {
    const match = appPath(config).exec(url.pathname);
    if (!match?.[1]) return undefined;
    try {
      return { key: decodeURIComponent(match[1]) };
    } catch {
      return { key: '' };
    }
  },
  appKey: (route) => route.key,
  unknownApp: refusal(PusherCloseCodes.UNKNOWN_APP, 'App key not in use: check PUSHER_APP_KEY against the server\'s apps[].key'),
  appDisabled: refusal(PusherCloseCodes.APP_DISABLED, 'App is disabled ("enabled": false in the server\'s config)'),
  overLimit(reason) {
    // Per-IP caps are capacity (back off and retry); the app's own quota is final until it changes.
    const close = reason.includes('per IP') ? PusherCloseCodes.OVER_CAPACITY : PusherCloseCodes.OVER_QUOTA;
    return refusal(close, `${close.reason}: ${reason} (limits.maxConnections / limits.maxConnectionsPerIp)`);
  },
  frameLimit: (app) => pusherFrameLimit(app.limits.maxMessageSize),
  authorize(_ctx, _app, _route, upgrade) {
    const protocol = upgrade.url.searchParams.get('protocol');
    if (protocol === null) return { refusal: refusal(PusherCloseCodes.NO_PROTOCOL, 'No protocol version supplied: connect with ?protocol=7') };
    if (protocol !== PROTOCOL_VERSION) return { refusal: refusal(PusherCloseCodes.UNSUPPORTED_PROTOCOL, `Unsupported protocol version ${protocol}: Chorus speaks protocol 7`) };
    return { grant: undefined };
  },
  refuse(ws, refused) {
    ws.send(errorText(refused.close.code, refused.message));
    ws.close(refused.close.code, refused.close.reason);
  },
  newConnectionId: generateSocketId,
  open(ctx, app, connection) {
    new PusherSession(ctx, app, connection);
  },
  onCountChange,
  onControl,
};
