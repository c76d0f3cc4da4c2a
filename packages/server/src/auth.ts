/** Channel JWT verification (PieSocket-compatible: HS256 with the app secret, `sub` = channel). */
import { jwtVerify, errors } from 'jose';
import type { App } from './apps.js';

/** Small allowance for clock drift between the token issuer and this server. */
const CLOCK_TOLERANCE_SECONDS = 5;

export interface ChannelGrant {
  /** The `user` claim, which takes precedence over the `user` query parameter. */
  readonly user: string | undefined;
}

export type ChannelAuthResult = { ok: true; grant: ChannelGrant } | { ok: false; reason: string };

export async function verifyChannelToken(app: App, channel: string, token: string | undefined): Promise<ChannelAuthResult> {
  if (!token) return { ok: false, reason: 'missing token' };
  try {
    const { payload } = await jwtVerify(token, app.secretKey, {
      algorithms: ['HS256'],
      subject: channel,
      requiredClaims: ['exp'],
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
    });
    const user = payload['user'];
    return { ok: true, grant: { user: typeof user === 'string' ? user : user === undefined ? undefined : JSON.stringify(user) } };
  } catch (error) {
    // The reason goes to debug logs only; the client gets PieSocket's fixed text.
    return { ok: false, reason: error instanceof errors.JOSEError ? error.code : 'malformed token' };
  }
}
