/** `chorus token`: mint a channel token or a v1 connection token, signed like a backend would. */
import { createSecretKey } from 'node:crypto';
import { SignJWT, decodeJwt, decodeProtectedHeader } from 'jose';
import { CHANNEL_NAME_RULE, CONNECTION_TOKEN_AUDIENCE, isValidChannelName } from '@chorus/protocol';
import { APP_OPTIONS, UsageError, expectPositionals, parseFlags, resolveApp } from './args.js';

export const TOKEN_USAGE = `Usage: chorus token --channel NAME [--user ID] [options]
       chorus token --user ID [--info JSON] [options]

Mints a JWT signed with the app secret (HS256), as your backend would, and prints only the
token, so it can be captured:
  JWT=$(chorus token --channel private-room --user alice -c chorus.yaml)
  chorus connect private-room --jwt "$JWT" -c chorus.yaml

Kinds:
  --channel NAME        Channel token (sub = NAME) for private- channels: raw ?jwt= or jwt
                        header, v1 subscribe "token". --user ID adds the "user" claim (the
                        identity shown in presence).
  --user ID             Without --channel: a protocol v1 connection token for connect "token"
                        (aud chorus:connection, sub = ID).

Options:
      --info JSON       Connection tokens: presence info, any JSON ('{"name":"Alice"}')
      --ttl SPAN        Lifetime: 90 (seconds), 30s, 15m, 1h, 7d… (default 1h)
      --kid KID         Key id for the header. With a config file, the token is signed with that
                        entry of the app's tokenKeys (HS256/384/512); otherwise with --secret.
      --json            Print {"token", "header", "payload"} instead of the bare token
      --secret SECRET   App secret (env CHORUS_SECRET); never printed
  -c, --config FILE     Take the secret from this server config (env CHORUS_CONFIG)
      --app ID          With a config file: the app with this id (default: the first)
  -h, --help            Show this help

Exit codes:
  0  printed
  2  bad usage: neither --channel nor --user, a bad channel name, --ttl or --info, no secret`;

type HmacAlgorithm = 'HS256' | 'HS384' | 'HS512';

export async function tokenCommand(argv: readonly string[]): Promise<number> {
  const { values, positionals } = parseFlags('token', argv, {
    ...APP_OPTIONS,
    channel: { type: 'string' },
    user: { type: 'string' },
    info: { type: 'string' },
    ttl: { type: 'string' },
    kid: { type: 'string' },
    json: { type: 'boolean' },
  });
  expectPositionals('token', positionals, 0, 0, '');
  const { channel, user } = values;
  if (channel === undefined && user === undefined) throw new UsageError('token needs --channel NAME (channel token) or --user ID (connection token)\nRun "chorus help token" for usage.');
  if (channel !== undefined && !isValidChannelName(channel)) throw new UsageError(`--channel: "${channel}" is not a channel name (${CHANNEL_NAME_RULE})`);
  if (user === '') throw new UsageError('--user must not be empty');
  if (values.info !== undefined && channel !== undefined) throw new UsageError('--info is for connection tokens (--user without --channel)');
  let info: unknown;
  if (values.info !== undefined) {
    try {
      info = JSON.parse(values.info);
    } catch (error) {
      throw new UsageError(`--info must be JSON (${(error as Error).message})`);
    }
  }
  const ttl = parseTtl(values.ttl ?? '1h');

  const app = await resolveApp(values);
  let alg: HmacAlgorithm = 'HS256';
  let secret = app.secret;
  if (values.kid !== undefined && app.app) {
    const entry = app.app.tokenKeys?.find((key) => key.kid === values.kid);
    if (!entry) throw new UsageError(`--kid: app "${app.app.id}" has no tokenKeys entry with kid "${values.kid}"`);
    if (!/^HS(256|384|512)$/.test(entry.alg) || entry.secret === undefined) {
      throw new UsageError(`--kid: "${values.kid}" is an ${entry.alg} key; chorus token signs with shared secrets (HS256/384/512) only`);
    }
    alg = entry.alg as HmacAlgorithm;
    secret = entry.secret;
  }
  if (secret === undefined) throw new UsageError('token needs the app secret: --secret, CHORUS_SECRET or --config FILE');

  const claims: Record<string, unknown> = {};
  if (channel !== undefined && user !== undefined) claims['user'] = user;
  if (channel === undefined && info !== undefined) claims['info'] = info;
  // One reading of the clock for both: jose reads it again for each, and a second that ticks
  // between the two made a 15-minute token's lifetime 901 s.
  const issuedAt = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT(claims)
    .setProtectedHeader({ alg, typ: 'JWT', ...(values.kid !== undefined ? { kid: values.kid } : {}) })
    .setIssuedAt(issuedAt)
    .setSubject(channel ?? (user as string))
    .setExpirationTime(issuedAt + ttl);
  if (channel === undefined) jwt.setAudience(CONNECTION_TOKEN_AUDIENCE);
  const token = await jwt.sign(createSecretKey(Buffer.from(secret)));
  const output = values.json ? JSON.stringify({ token, header: decodeProtectedHeader(token), payload: decodeJwt(token) }, null, 2) : token;
  process.stdout.write(`${output}\n`);
  return 0;
}

/** "90" (seconds) or a time span ("30s", "15m", "1h", "7d", "2 weeks"), in seconds. */
function parseTtl(value: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(value);
  const units: Record<string, number> = { '': 1, s: 1, sec: 1, secs: 1, second: 1, seconds: 1, m: 60, min: 60, mins: 60, minute: 60, minutes: 60, h: 3600, hr: 3600, hrs: 3600, hour: 3600, hours: 3600, d: 86400, day: 86400, days: 86400, w: 604800, week: 604800, weeks: 604800 };
  const unit = match ? units[(match[2] as string).toLowerCase()] : undefined;
  const seconds = match && unit !== undefined ? Math.round(Number(match[1]) * unit) : NaN;
  if (!(seconds > 0)) throw new UsageError(`--ttl takes a positive time span like 90, 30s, 15m, 1h or 7d, got "${value}"`);
  return seconds;
}
