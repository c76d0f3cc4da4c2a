/**
 * The Chorus v1 dialect at `/v1/connect?key=APP_KEY`: one socket, many channels, acknowledged
 * commands, history and recovery. The wire format is docs/protocol.md. The app key is in the
 * URL so the Origin can be checked against the app before the upgrade.
 */
import { CloseCodes, V1_PATH } from '@chorus/protocol';
import { refusal, type Dialect } from '../../admission.js';
import { generateSocketId } from '../pusher/signatures.js';
import { disconnectAdvice } from './encode.js';
import { V1Session } from './session.js';

/**
 * A v1 frame wraps its payload in a JSON envelope, and binary payloads are base64 (4/3 larger),
 * so the frame limit leaves room for both; maxMessageSize itself is checked on the decoded
 * payload (error 109), the same limit the raw dialect applies to its frames.
 */
function v1FrameLimit(maxMessageSize: number): number {
  return Math.ceil((maxMessageSize * 4) / 3) + 4096;
}

export const v1Dialect: Dialect<true, undefined> = {
  name: 'v1',
  match: (url) => (url.pathname === V1_PATH ? true : undefined),
  appKey: (_route, upgrade) => upgrade.url.searchParams.get('key'),
  unknownApp: refusal(CloseCodes.UNKNOWN_API_KEY),
  frameLimit: (app) => v1FrameLimit(app.limits.maxMessageSize),
  // Credentials come in the connect command, once the socket is open.
  authorize: () => ({ grant: undefined }),
  refuse(ws, refused) {
    ws.send(disconnectAdvice(refused.close));
    ws.close(refused.close.code, refused.close.reason);
  },
  // A Pusher-style socket id (\d+.\d+, random): what Laravel signs for Echo, and what the Pusher
  // HTTP API's socket_id names, so toOthers() excludes v1 connections too.
  newConnectionId: generateSocketId,
  open(ctx, app, connection) {
    new V1Session(ctx, app, connection);
  },
};
