/**
 * `chorus connect`: a WebSocket client for the terminal, in the spirit of wscat. Prints every
 * frame the server sends (text as it is, JSON pretty with --json, binary as a hex preview) and
 * sends every line typed at the `> ` prompt (or piped in). Status lines go to stderr, frames to
 * stdout, so `chorus connect … > frames.txt` keeps only the frames.
 */
import { createInterface, clearLine, cursorTo, type Interface } from 'node:readline';
import WebSocket from 'ws';
import { CHANNEL_NAME_RULE, CloseCodes, isValidChannelName } from '@chorus/protocol';
import {
  APP_OPTIONS,
  DEFAULT_TIMEOUT_MS,
  EXIT_FAILURE,
  EXIT_OK,
  SERVER_OPTIONS,
  UsageError,
  displayUrl,
  expectPositionals,
  parseFlags,
  parseMs,
  resolveApp,
  resolveServerUrl,
} from './args.js';

export const CONNECT_USAGE = `Usage: chorus connect URL [options]
       chorus connect CHANNEL [options]

Opens a WebSocket, prints every frame the server sends and sends every line you type.
URL is a full ws:// or wss:// URL, either dialect:
  ws://localhost:8080/v4/CHANNEL?api_key=KEY[&notify_self][&presence]   a raw channel
  ws://localhost:8080/v1/connect?key=KEY         protocol v1: type JSON commands
A bare CHANNEL stands for the raw channel ws://<server>/v4/CHANNEL?api_key=<key>, with the
server from --url/--host/--port (default localhost:8080) and the key from --key or --config.

Options:
      --json            Pretty-print frames that are JSON objects or arrays
  -H, --header K:V      Extra header for the upgrade request (repeatable)
      --origin ORIGIN   Origin header (checked against the app's allowedOrigins)
      --jwt TOKEN       Channel token for a private- channel, sent as the jwt header
                        (mint one with "chorus token --channel NAME")
      --send TEXT       Send TEXT as a text frame once connected (repeatable, in order)
      --wait MS         After everything is sent, print frames for MS more, then close
                        (also spelled --close-after MS)
      --close           Close as soon as everything is sent (same as --wait 0)
      --insecure        Accept a self-signed or otherwise untrusted certificate (wss://)
      --timeout MS      Give up connecting after MS (default 10000)
      --url URL, --host H, -p/--port N, --key KEY, -c/--config FILE, --app ID
                        For a bare CHANNEL (see "chorus --help"; env CHORUS_URL, CHORUS_KEY)
  -h, --help            Show this help

Input:
  At a terminal: a "> " prompt; Enter sends the line. Ctrl-D or Ctrl-C closes (code 1000).
  Piped: every line of stdin is sent as a text frame. The connection stays open afterwards
  until --wait/--close, the server closing, or Ctrl-C/SIGTERM:
    echo hi | chorus connect ws://localhost:8080/v4/room?api_key=KEY --wait 1000
  With --wait or --close, piped stdin is sent to its end first, a terminal is not read.

Output (stdout): text frames as they are ("< " in front at the prompt); binary frames as
  <binary 5 bytes> 00 01 02 fe ff      (the first 32 bytes, then …)
Status (stderr): "connected to URL", then "closed CODE REASON (meaning)", e.g.
  closed 4001 Unknown api key (the api_key query parameter matches no app)

Exit codes:
  0  you closed: Ctrl-D, Ctrl-C, SIGTERM, end of --wait or --close; or the server closed
     with 1000 (normal closure)
  1  could not connect (refused, DNS, TLS, timeout, an HTTP error such as 403 or 429); or the
     connection dropped without a close frame (1006); or the server closed with any other
     code (1001 shutting down, 1009 message too big, 4000-4999 Chorus errors: docs/codes.md)
  2  bad usage`;

/** Bytes of a binary frame shown in hex. */
const HEX_PREVIEW_BYTES = 32;
/** How long our close handshake may take before the socket is cut. */
const CLOSE_TIMEOUT_MS = 2000;

/** Meanings for codes CloseCodes does not list (ws reports 1005 and 1006 itself), and a shorter 1000. */
const LOCAL_CLOSE_MEANINGS: Record<number, string> = {
  1000: 'normal closure',
  1005: 'no status code in the close frame',
  1006: 'abnormal closure: the connection dropped without a close frame',
  1011: 'the server hit an unexpected error',
  1015: 'TLS handshake failure',
};

export async function connectCommand(argv: readonly string[]): Promise<number> {
  const { values, positionals } = parseFlags('connect', argv, {
    ...SERVER_OPTIONS,
    ...APP_OPTIONS,
    json: { type: 'boolean' },
    header: { type: 'string', short: 'H', multiple: true },
    origin: { type: 'string' },
    jwt: { type: 'string' },
    send: { type: 'string', multiple: true },
    wait: { type: 'string' },
    'close-after': { type: 'string' },
    close: { type: 'boolean' },
  });
  expectPositionals('connect', positionals, 1, 1, 'a ws:// or wss:// URL, or a channel name');
  if (values.wait !== undefined && values['close-after'] !== undefined) throw new UsageError('--wait and --close-after are the same option; give one');
  const waitFlag = values.wait ?? values['close-after'];
  if (waitFlag !== undefined && values.close) throw new UsageError('--close means --wait 0; give one of them');
  const waitMs = values.close ? 0 : waitFlag === undefined ? undefined : parseMs(values.wait !== undefined ? 'wait' : 'close-after', waitFlag, 0);
  const timeoutMs = parseMs('timeout', values.timeout, DEFAULT_TIMEOUT_MS);

  const target = positionals[0] as string;
  let url: string;
  if (/^(wss?|https?):\/\//i.test(target)) {
    for (const flag of ['url', 'host', 'port', 'key', 'config', 'app'] as const) {
      if (values[flag] !== undefined) throw new UsageError(`--${flag} is for a bare CHANNEL; ${target} is already a full URL`);
    }
    url = target.replace(/^http/i, 'ws');
    try {
      new URL(url);
    } catch {
      throw new UsageError(`not a valid URL: ${target}`);
    }
  } else if (isValidChannelName(target)) {
    const app = await resolveApp(values);
    if (app.key === undefined) throw new UsageError(`a bare channel needs the app key: --key KEY, CHORUS_KEY or --config FILE (or give a full ws:// URL)`);
    const server = resolveServerUrl(values, app.config);
    server.protocol = server.protocol === 'https:' ? 'wss:' : 'ws:';
    url = `${server.href.replace(/\/$/, '')}/v4/${target}?api_key=${encodeURIComponent(app.key)}`;
  } else {
    throw new UsageError(`"${target}" is neither a ws:// or wss:// URL nor a channel name (${CHANNEL_NAME_RULE})`);
  }

  const headers: Record<string, string> = {};
  for (const header of values.header ?? []) {
    const colon = header.indexOf(':');
    const name = header.slice(0, colon).trim();
    if (colon <= 0 || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) throw new UsageError(`--header takes "Name: value", got "${header}"`);
    headers[name] = header.slice(colon + 1).trim();
  }
  if (values.jwt !== undefined) headers['jwt'] = values.jwt;

  return new Session({
    url,
    headers,
    origin: values.origin,
    insecure: values.insecure ?? false,
    timeoutMs,
    json: values.json ?? false,
    send: values.send ?? [],
    waitMs,
  }).run();
}

interface SessionOptions {
  url: string;
  headers: Record<string, string>;
  origin: string | undefined;
  insecure: boolean;
  timeoutMs: number;
  json: boolean;
  send: string[];
  /** Close this long after everything is sent; undefined: stay until closed otherwise. */
  waitMs: number | undefined;
}

/** One connection from open to close; `run()` resolves with the exit code. */
class Session {
  readonly #options: SessionOptions;
  readonly #interactive: boolean;
  #ws: WebSocket | undefined;
  #prompt: Interface | undefined;
  #input: Interface | undefined;
  #opened = false;
  /** We started the close (user, EOF, --wait): the exit code is 0 whatever the server answers. */
  #closingByUs = false;
  #failure: string | undefined;
  #timers: NodeJS.Timeout[] = [];
  #signals: Array<[NodeJS.Signals, () => void]> = [];

  constructor(options: SessionOptions) {
    this.#options = options;
    // The prompt needs a terminal on both sides; --wait/--close mean "not interactive".
    this.#interactive = Boolean(process.stdin.isTTY && process.stdout.isTTY) && options.waitMs === undefined;
  }

  run(): Promise<number> {
    const { url, headers, origin, insecure, timeoutMs } = this.#options;
    return new Promise<number>((resolve) => {
      const ws = new WebSocket(url, {
        headers,
        ...(origin !== undefined ? { origin } : {}),
        rejectUnauthorized: !insecure,
        handshakeTimeout: timeoutMs,
        perMessageDeflate: false,
      });
      this.#ws = ws;
      for (const signal of ['SIGINT', 'SIGTERM'] as const) {
        const handler = (): void => this.#closeByUs();
        process.on(signal, handler);
        this.#signals.push([signal, handler]);
      }
      ws.on('unexpected-response', (_req, res) => {
        // An HTTP answer instead of the upgrade (403 origin, 429 limits…): show its coded error.
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          if ((size += chunk.length) <= 4096) chunks.push(chunk);
        });
        const done = (): void => {
          this.#failure = `HTTP ${res.statusCode ?? '?'} ${describeHttpError(Buffer.concat(chunks).toString('utf8'))}`.trim();
          ws.terminate();
        };
        res.on('end', done);
        res.on('error', done);
        this.#later(done, 2000);
      });
      ws.on('open', () => this.#onOpen());
      ws.on('message', (data: Buffer, isBinary: boolean) => this.#printFrame(formatFrame(data, isBinary, this.#options.json)));
      ws.on('error', (error: NodeJS.ErrnoException) => {
        this.#failure ??= describeError(error);
      });
      ws.on('close', (code: number, reason: Buffer) => resolve(this.#onClose(code, reason.toString('utf8'))));
    });
  }

  #onOpen(): void {
    this.#opened = true;
    const ws = this.#ws as WebSocket;
    this.#status(`connected to ${displayUrl(this.#options.url)}${this.#interactive ? ' (Ctrl-D or Ctrl-C to close)' : ''}`);
    for (const text of this.#options.send) ws.send(text);
    if (this.#interactive) {
      const prompt = createInterface({ input: process.stdin, output: process.stdout, terminal: true, prompt: '> ' });
      this.#prompt = prompt;
      prompt.on('line', (line) => {
        if (line !== '' && ws.readyState === WebSocket.OPEN) ws.send(line);
        if (!this.#closingByUs) prompt.prompt();
      });
      prompt.on('SIGINT', () => this.#closeByUs()); // Ctrl-C: the terminal is in raw mode
      prompt.on('close', () => this.#closeByUs()); // Ctrl-D
      prompt.prompt();
    } else if (!process.stdin.isTTY || this.#options.waitMs === undefined) {
      const input = createInterface({ input: process.stdin, terminal: false });
      this.#input = input;
      input.on('line', (line) => {
        if (ws.readyState === WebSocket.OPEN) ws.send(line);
      });
      input.on('close', () => this.#inputDone());
    } else {
      this.#inputDone();
    }
  }

  /** Everything is sent: --wait starts now; without it the connection stays open. */
  #inputDone(): void {
    const { waitMs } = this.#options;
    if (waitMs === undefined) {
      if (process.stdin.isTTY) this.#closeByUs(); // Ctrl-D at a terminal (output redirected)
      return;
    }
    // ws.send() queues; the close frame goes after every queued frame.
    if (waitMs === 0) this.#closeByUs();
    else this.#later(() => this.#closeByUs(), waitMs);
  }

  #closeByUs(): void {
    const ws = this.#ws;
    if (!ws) return;
    if (this.#closingByUs || ws.readyState === WebSocket.CLOSING) {
      ws.terminate(); // asked twice: stop waiting for the server's close frame
      return;
    }
    this.#closingByUs = true;
    if (ws.readyState === WebSocket.CONNECTING) {
      this.#failure ??= 'cancelled';
      ws.terminate();
      return;
    }
    ws.close(1000);
    this.#later(() => ws.terminate(), CLOSE_TIMEOUT_MS);
  }

  #onClose(code: number, reason: string): number {
    this.#cleanup();
    if (!this.#opened) {
      this.#status(`cannot connect to ${displayUrl(this.#options.url)}: ${this.#failure ?? `closed ${code}`}`, true);
      return EXIT_FAILURE;
    }
    this.#status(`closed ${describeClose(code, reason)}`);
    return this.#closingByUs || code === 1000 ? EXIT_OK : EXIT_FAILURE;
  }

  #cleanup(): void {
    for (const timer of this.#timers) clearTimeout(timer);
    for (const [signal, handler] of this.#signals) process.off(signal, handler);
    const prompt = this.#prompt;
    this.#prompt = undefined;
    if (prompt) {
      prompt.removeAllListeners('close');
      clearLine(process.stdout, 0);
      cursorTo(process.stdout, 0);
      prompt.close();
    }
    this.#input?.removeAllListeners('close');
    this.#input?.close();
    // A pipe that never ends (or a terminal) must not keep the process alive.
    process.stdin.pause();
    process.stdin.unref?.();
  }

  #printFrame(text: string): void {
    this.#write(process.stdout, this.#prompt ? `< ${text.replaceAll('\n', '\n  ')}` : text);
  }

  #status(text: string, error = false): void {
    this.#write(process.stderr, error ? `chorus: ${text}` : text);
  }

  /** Writes a line; at the prompt, above it, then redraws the prompt and what was typed. */
  #write(stream: NodeJS.WriteStream, line: string): void {
    if (this.#prompt) {
      clearLine(process.stdout, 0);
      cursorTo(process.stdout, 0);
      stream.write(`${line}\n`);
      this.#prompt.prompt(true);
    } else {
      stream.write(`${line}\n`);
    }
  }

  #later(fn: () => void, ms: number): void {
    const timer = setTimeout(fn, ms);
    timer.unref();
    this.#timers.push(timer);
  }
}

/** How a frame is printed: text as it is (JSON pretty with --json), binary as a hex preview. */
export function formatFrame(data: Buffer, isBinary: boolean, json: boolean): string {
  if (isBinary) {
    const hex = [...data.subarray(0, HEX_PREVIEW_BYTES)].map((byte) => byte.toString(16).padStart(2, '0')).join(' ');
    return `<binary ${data.length} byte${data.length === 1 ? '' : 's'}>${hex ? ` ${hex}` : ''}${data.length > HEX_PREVIEW_BYTES ? ' …' : ''}`;
  }
  const text = data.toString('utf8');
  if (json && /^\s*[[{]/.test(text)) {
    try {
      return JSON.stringify(JSON.parse(text), null, 2);
    } catch {
      // not JSON after all: print it as it is
    }
  }
  return text;
}

/** "4001 Unknown api key (the api_key query parameter matches no app)". */
export function describeClose(code: number, reason: string): string {
  const known = Object.values(CloseCodes).find((info) => info.code === code);
  const meaning = LOCAL_CLOSE_MEANINGS[code] ?? known?.description;
  const text = meaning ? meaning.replace(/\.$/, '').replace(/^[A-Z](?=[a-z\s])/, (letter) => letter.toLowerCase()) : undefined;
  return `${code}${reason ? ` ${reason}` : ''}${text ? ` (${text})` : ''}`;
}

function describeHttpError(body: string): string {
  try {
    const parsed = JSON.parse(body) as { error?: unknown; code?: unknown };
    if (typeof parsed.error === 'string') return `${typeof parsed.code === 'string' ? `${parsed.code}: ` : ''}${parsed.error}`;
  } catch {
    // not a Chorus JSON error
  }
  return body.trim().slice(0, 200);
}

function describeError(error: NodeJS.ErrnoException): string {
  if (error.code === 'ECONNREFUSED') return 'connection refused (is the server running? chorus serve)';
  if (error.code === 'ENOTFOUND') return `host not found (${error.message})`;
  if (/self[- ]signed|certificate|unable to verify/i.test(error.message)) return `${error.message} (for a self-signed certificate add --insecure)`;
  if (/timed out/i.test(error.message)) return 'timed out (--timeout MS)';
  return error.message;
}
