/**
 * The Chorus v1 dialect at `/v1/connect?key=APP_KEY`: one socket, many channels, acknowledged
 * commands, history and recovery. The wire format is docs/protocol.md. The app key is in the
 * URL so the Origin can be checked against the app before the upgrade.
 */
import { CloseCodes, HttpErrors } from '@chorus/protocol';
import { Connection } from '../../connection.js';
import type { ServerContext } from '../../context.js';
import { refuseHttp, type PendingUpgrade, type UpgradeHandler } from '../../upgrade.js';
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

export async function handleV1Upgrade(ctx: ServerContext, upgrades: UpgradeHandler, upgrade: PendingUpgrade): Promise<void> {
  const app = ctx.apps.byKey(upgrade.url.searchParams.get('key'));
  if (!app) {
    const ws = await upgrades.accept(upgrade, undefined);
    if (!ws) return;
    ws.on('error', () => undefined);
    ws.send(disconnectAdvice(CloseCodes.UNKNOWN_API_KEY));
    ws.close(CloseCodes.UNKNOWN_API_KEY.code, CloseCodes.UNKNOWN_API_KEY.reason);
    return;
  }
  if (!app.allowsOrigin(upgrade.req.headers.origin)) {
    ctx.log.info({ app: app.id, origin: upgrade.req.headers.origin }, 'origin not allowed');
    return refuseHttp(upgrade.socket, HttpErrors.ORIGIN_NOT_ALLOWED);
  }
  if (!upgrades.admit(upgrade, app)) return;
  const ws = await upgrades.accept(upgrade, app, v1FrameLimit(app.limits.maxMessageSize));
  if (!ws) return;
  const connection = new Connection(ctx.newConnectionId(), ws, upgrade.socket, ctx.scheduler, app.limits.maxPendingBytes);
  ctx.connections.add(connection, app, upgrade.ip);
  new V1Session(ctx, app, connection);
}
