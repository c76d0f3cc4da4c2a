/** `chorus publish CHANNEL MESSAGE`: REST publish (`POST /api/publish`) from the command line. */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { text as readStream } from 'node:stream/consumers';
import {
  APP_OPTIONS,
  DEFAULT_TIMEOUT_MS,
  EXIT_FAILURE,
  SERVER_OPTIONS,
  UsageError,
  expectPositionals,
  fail,
  parseFlags,
  parseMs,
  resolveApp,
  resolveServerUrl,
} from './args.js';

export const PUBLISH_USAGE = `Usage: chorus publish CHANNEL MESSAGE [options]

Publishes MESSAGE to CHANNEL through the server's REST API (POST /api/publish with the app's
key and secret). Every connection on the channel receives it: raw-channel sockets as one text
frame, protocol v1 subscribers as a "pub" (event "message", or the event of a JSON
{"event", "data"} message; see docs/protocol.md, Payloads).

Arguments:
  CHANNEL               Channel name: [A-Za-z0-9_-=@,.;], 1 to 200 characters
  MESSAGE               The text to send; "-" reads it from stdin (one final newline dropped)

Options:
      --json            MESSAGE is JSON: it is parsed and sent as a value, so an object
                        arrives as that object (raw sockets get its JSON text)
      --url URL         Server (env CHORUS_URL; default http://localhost:8080, or the port
                        and tls of --config)
      --host H          Replace the URL's host
  -p, --port N          Replace the URL's port
      --key KEY         App key (env CHORUS_KEY)
      --secret SECRET   App secret (env CHORUS_SECRET); never printed
  -c, --config FILE     Take key and secret from this server config (env CHORUS_CONFIG)
      --app ID          With a config file: the app with this id (default: the first)
      --insecure        Accept a self-signed certificate (https://)
      --timeout MS      Give up after MS (default 10000)
  -h, --help            Show this help

Prints "published to CHANNEL (offset N)": N is the message's position in the channel's stream.

Examples:
  chorus publish channel_123 'Hello from the CLI' --key KEY --secret SECRET
  chorus publish chat '{"event":"new_message","data":{"text":"hi"}}' --json -c chorus.yaml
  date | chorus publish clock -

Exit codes:
  0  published
  1  the server refused it (its HTTP status and coded error are printed, e.g.
     "HTTP 401 unauthorized: Unknown key or wrong secret."), or could not be reached
  2  bad usage: missing key or secret, MESSAGE not valid JSON with --json`;

export async function publishCommand(argv: readonly string[]): Promise<number> {
  const { values, positionals } = parseFlags('publish', argv, { ...SERVER_OPTIONS, ...APP_OPTIONS, json: { type: 'boolean' } });
  expectPositionals('publish', positionals, 2, 2, 'CHANNEL and MESSAGE ("-" reads MESSAGE from stdin)');
  const [channel, argument] = positionals as [string, string];
  const timeoutMs = parseMs('timeout', values.timeout, DEFAULT_TIMEOUT_MS);
  const app = await resolveApp(values);
  const missing = [app.key === undefined ? 'key' : undefined, app.secret === undefined ? 'secret' : undefined].filter(Boolean);
  if (missing.length > 0) {
    throw new UsageError(`publish needs the app ${missing.join(' and ')}: --key/--secret, CHORUS_KEY/CHORUS_SECRET, or --config FILE`);
  }
  const server = resolveServerUrl(values, app.config);

  let text = argument;
  if (argument === '-') text = (await readStream(process.stdin)).replace(/\r?\n$/, '');
  let message: unknown = text;
  if (values.json) {
    try {
      message = JSON.parse(text);
    } catch (error) {
      throw new UsageError(`--json: MESSAGE is not valid JSON (${(error as Error).message})`);
    }
  }

  const endpoint = new URL(`${server.pathname.replace(/\/$/, '')}/api/publish`, server);
  const body = JSON.stringify({ key: app.key, secret: app.secret, channelId: channel, message });
  let response: { status: number; body: string };
  try {
    response = await post(endpoint, body, { timeoutMs, insecure: values.insecure ?? false });
  } catch (error) {
    return fail(EXIT_FAILURE, `cannot reach ${server.origin}: ${describeNetworkError(error as NodeJS.ErrnoException)}`);
  }
  let answer: { success?: unknown; offset?: unknown; error?: unknown; code?: unknown } = {};
  try {
    answer = JSON.parse(response.body) as typeof answer;
  } catch {
    // not JSON: reported below with the raw text
  }
  if (response.status !== 200 || answer.success !== true) {
    const detail = typeof answer.error === 'string' ? `${typeof answer.code === 'string' ? `${answer.code}: ` : ''}${answer.error}` : response.body.trim().slice(0, 200);
    return fail(EXIT_FAILURE, `publish failed: HTTP ${response.status} ${detail}`.trim());
  }
  process.stdout.write(`published to ${channel}${typeof answer.offset === 'number' ? ` (offset ${answer.offset})` : ''}\n`);
  return 0;
}

function post(url: URL, body: string, options: { timeoutMs: number; insecure: boolean }): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = send(
      url,
      {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        timeout: options.timeoutMs,
        ...(url.protocol === 'https:' ? { rejectUnauthorized: !options.insecure } : {}),
      },
      (res: IncomingMessage) => {
        readStream(res).then((text) => resolve({ status: res.statusCode ?? 0, body: text }), reject);
      },
    );
    req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer within ${options.timeoutMs} ms (--timeout MS)`), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
    req.end(body);
  });
}

function describeNetworkError(error: NodeJS.ErrnoException): string {
  if (error.code === 'ECONNREFUSED') return 'connection refused (is the server running? chorus serve)';
  if (/self[- ]signed|certificate|unable to verify/i.test(error.message)) return `${error.message} (for a self-signed certificate add --insecure)`;
  return error.message;
}
