/**
 * A WebSocket peer on a bare `net` socket, for attack tests: it writes whatever bytes a test
 * builds (malformed handshakes, hand-made frames) and parses what the server answers (the HTTP
 * response head, then unmasked server frames). Every wait has a deadline.
 */
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { withTimeout } from './helpers.ts';

export const Opcode = { CONTINUATION: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa } as const;

export interface FrameSpec {
  opcode: number;
  payload?: Buffer | string;
  /** Default true. */
  fin?: boolean;
  /** Default true: clients must mask. */
  mask?: boolean;
  /** RSV1..RSV3 as the 3-bit value 0–7 (RSV1 = 4). */
  rsv?: number;
  /** Announce this payload length in the header instead of the real one (only the header's claim changes). */
  announcedLength?: bigint;
}

/** Builds one client frame. The payload is masked with a random key unless `mask: false`. */
export function encodeFrame(spec: FrameSpec): Buffer {
  const payload = typeof spec.payload === 'string' ? Buffer.from(spec.payload, 'utf8') : (spec.payload ?? Buffer.alloc(0));
  const mask = spec.mask ?? true;
  const length = spec.announcedLength ?? BigInt(payload.length);
  const head: number[] = [((spec.fin ?? true) ? 0x80 : 0) | ((spec.rsv ?? 0) << 4) | (spec.opcode & 0x0f)];
  let extended = Buffer.alloc(0);
  if (length < 126n) {
    head.push(Number(length));
  } else if (length < 65536n) {
    head.push(126);
    extended = Buffer.alloc(2);
    extended.writeUInt16BE(Number(length));
  } else {
    head.push(127);
    extended = Buffer.alloc(8);
    extended.writeBigUInt64BE(length);
  }
  if (mask) head[1] = (head[1] ?? 0) | 0x80;
  const key = mask ? randomBytes(4) : Buffer.alloc(0);
  const body = Buffer.from(payload);
  if (mask) for (let i = 0; i < body.length; i++) body[i] = (body[i] ?? 0) ^ (key[i % 4] ?? 0);
  return Buffer.concat([Buffer.from(head), extended, key, body]);
}

/** A close frame's payload: the 2-byte code, then the reason bytes. */
export function closePayload(code: number, reason: Buffer | string = ''): Buffer {
  const codeBytes = Buffer.alloc(2);
  codeBytes.writeUInt16BE(code);
  return Buffer.concat([codeBytes, typeof reason === 'string' ? Buffer.from(reason, 'utf8') : reason]);
}

export interface ServerFrame {
  fin: boolean;
  rsv: number;
  opcode: number;
  payload: Buffer;
  /** performance.now() when the frame was parsed. */
  at: number;
}

export interface HttpHead {
  status: number;
  statusLine: string;
  /** Lower-cased names. */
  headers: Record<string, string>;
  body: string;
}

export interface ClosedInfo {
  /** The server sent FIN (an orderly TCP close) rather than only a reset. */
  sawEnd: boolean;
  /** ECONNRESET / EPIPE and the like, if the socket errored. */
  errorCode: string | undefined;
  /** Milliseconds from the start of `closed()` waiting. */
  afterMs: number;
}

export class RawSocket {
  readonly socket: Socket;
  /** Bytes received and not yet parsed. */
  #buffer: Buffer = Buffer.alloc(0);
  #head: HttpHead | undefined;
  readonly frames: ServerFrame[] = [];
  sawEnd = false;
  isClosed = false;
  /** performance.now() when the TCP connection closed. */
  closedAt: number | undefined;
  errorCode: string | undefined;
  readonly #waiters = new Set<() => void>();

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
      this.#parse();
      this.#notify();
    });
    socket.on('end', () => {
      this.sawEnd = true;
      this.#notify();
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      this.errorCode ??= error.code ?? error.message;
      this.#notify();
    });
    socket.on('close', () => {
      this.isClosed = true;
      this.closedAt = performance.now();
      this.#notify();
    });
  }

  /**
   * `allowHalfOpen: true` makes a peer that, like most non-Node clients, does not close its side
   * when the server sends FIN: only the server destroying the connection ends it.
   */
  static async connect(port: number, timeoutMs = 3000, options: { allowHalfOpen?: boolean } = {}): Promise<RawSocket> {
    const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: options.allowHalfOpen ?? false });
    socket.setNoDelay(true);
    const raw = new RawSocket(socket);
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('error', reject);
      }),
      timeoutMs,
      'TCP connect timed out',
    );
    return raw;
  }

  /** Connects and performs a valid upgrade on `path`, asserting 101; frames may follow at once. */
  static async upgrade(port: number, path: string, extraHeaders: Record<string, string> = {}): Promise<RawSocket> {
    const raw = await RawSocket.connect(port);
    raw.write(upgradeRequest(path, extraHeaders));
    const head = await raw.response();
    if (head.status !== 101) {
      raw.destroy();
      throw new Error(`expected 101, got ${head.statusLine} ${head.body}`);
    }
    return raw;
  }

  get head(): HttpHead | undefined {
    return this.#head;
  }

  write(data: Buffer | string): boolean {
    return this.socket.write(data);
  }

  /** Writes and waits until the data has been handed to the kernel (or the socket failed). */
  async writeAll(data: Buffer | string, timeoutMs = 5000): Promise<void> {
    await withTimeout(
      new Promise<void>((resolve) => {
        this.socket.write(data, () => resolve());
      }),
      timeoutMs,
      'write did not complete',
    );
  }

  /** The HTTP response head (and a Content-Length body) the server answered the handshake with. */
  async response(timeoutMs = 3000): Promise<HttpHead> {
    await this.until(() => this.#head !== undefined, 'HTTP response', timeoutMs);
    return this.#head as HttpHead;
  }

  /** Resolves at the first server frame with this opcode (default: close). */
  async frame(opcode: number = Opcode.CLOSE, timeoutMs = 3000): Promise<ServerFrame> {
    await this.until(() => this.frames.some((f) => f.opcode === opcode), `a frame with opcode ${opcode}`, timeoutMs);
    return this.frames.find((f) => f.opcode === opcode) as ServerFrame;
  }

  /** The server's close frame, decoded. */
  async closeFrame(timeoutMs = 3000): Promise<{ code: number | undefined; reason: Buffer; at: number }> {
    const frame = await this.frame(Opcode.CLOSE, timeoutMs);
    return { code: frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : undefined, reason: frame.payload.subarray(2), at: frame.at };
  }

  /** Resolves when the TCP connection is gone (FIN then close, or reset). */
  async closed(timeoutMs = 3000): Promise<ClosedInfo> {
    const start = performance.now();
    await this.until(() => this.isClosed, 'the TCP connection to close', timeoutMs);
    return { sawEnd: this.sawEnd, errorCode: this.errorCode, afterMs: performance.now() - start };
  }

  async until(predicate: () => boolean, what: string, timeoutMs: number): Promise<void> {
    if (predicate()) return;
    let check: (() => void) | undefined;
    try {
      await withTimeout(
        new Promise<void>((resolve) => {
          check = () => {
            if (predicate()) resolve();
          };
          this.#waiters.add(check);
        }),
        timeoutMs,
        `timed out after ${timeoutMs} ms waiting for ${what}; got ${this.#describe()}`,
      );
    } finally {
      if (check) this.#waiters.delete(check);
    }
  }

  destroy(): void {
    this.socket.destroy();
  }

  /**
   * Resolves once the server has destroyed the connection, not merely ended its side: after the
   * server's FIN, writes a byte every `everyMs` (a socket the server has closed answers with a
   * reset) until the socket fails or closes. For peers connected with `allowHalfOpen`.
   */
  async destroyedByServer(timeoutMs: number, everyMs = 50): Promise<void> {
    const probe = setInterval(() => {
      if (this.sawEnd && !this.socket.destroyed && this.socket.writable) this.socket.write('x');
    }, everyMs);
    try {
      await this.until(() => this.isClosed || this.errorCode !== undefined, 'the server to destroy the connection', timeoutMs);
    } finally {
      clearInterval(probe);
    }
  }

  #describe(): string {
    const frames = this.frames.map((f) => `op${f.opcode}${f.fin ? '' : '(FIN=0)'}:${f.payload.length}B`).join(',');
    return `head=${this.#head?.statusLine ?? 'none'} frames=[${frames}] end=${this.sawEnd} closed=${this.isClosed} error=${this.errorCode ?? 'none'} unparsed=${this.#buffer.length}B`;
  }

  #parse(): void {
    if (this.#head === undefined) {
      const end = this.#buffer.indexOf('\r\n\r\n');
      if (end === -1) return;
      const lines = this.#buffer.subarray(0, end).toString('latin1').split('\r\n');
      const statusLine = lines[0] ?? '';
      const headers: Record<string, string> = {};
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(':');
        if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? NaN);
      const bodyLength = status === 101 ? 0 : Number(headers['content-length'] ?? 0);
      if (this.#buffer.length < end + 4 + bodyLength) return;
      const body = this.#buffer.subarray(end + 4, end + 4 + bodyLength).toString('utf8');
      this.#buffer = this.#buffer.subarray(end + 4 + bodyLength);
      this.#head = { status, statusLine, headers, body };
      if (status !== 101) return;
    }
    if (this.#head.status !== 101) return;
    for (;;) {
      const frame = readFrame(this.#buffer);
      if (!frame) return;
      this.frames.push({ ...frame.frame, at: performance.now() });
      this.#buffer = this.#buffer.subarray(frame.size);
    }
  }

  #notify(): void {
    for (const waiter of [...this.#waiters]) waiter();
  }
}

function readFrame(buffer: Buffer): { frame: Omit<ServerFrame, 'at'>; size: number } | undefined {
  if (buffer.length < 2) return undefined;
  const b0 = buffer[0] ?? 0;
  const b1 = buffer[1] ?? 0;
  let offset = 2;
  let length = b1 & 0x7f;
  if (length === 126) {
    if (buffer.length < 4) return undefined;
    length = buffer.readUInt16BE(2);
    offset = 4;
  } else if (length === 127) {
    if (buffer.length < 10) return undefined;
    length = Number(buffer.readBigUInt64BE(2));
    offset = 10;
  }
  const masked = (b1 & 0x80) !== 0;
  const key = masked ? buffer.subarray(offset, offset + 4) : undefined;
  if (masked) offset += 4;
  if (buffer.length < offset + length) return undefined;
  const payload = Buffer.from(buffer.subarray(offset, offset + length));
  if (key) for (let i = 0; i < payload.length; i++) payload[i] = (payload[i] ?? 0) ^ (key[i % 4] ?? 0);
  return { frame: { fin: (b0 & 0x80) !== 0, rsv: (b0 >> 4) & 0x7, opcode: b0 & 0x0f, payload }, size: offset + length };
}

/**
 * A GET upgrade request. `headers` are added after the standard ones and override them by name
 * (case-insensitively); a value of `null` leaves that header out.
 */
export function upgradeRequest(path: string, headers: Record<string, string | null> = {}, method = 'GET'): string {
  const base: Record<string, string | null> = {
    Host: '127.0.0.1',
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': randomBytes(16).toString('base64'),
    'Sec-WebSocket-Version': '13',
  };
  const merged = new Map<string, [string, string | null]>();
  for (const [name, value] of [...Object.entries(base), ...Object.entries(headers)]) merged.set(name.toLowerCase(), [name, value]);
  const lines = [...merged.values()].filter(([, value]) => value !== null).map(([name, value]) => `${name}: ${value}`);
  return `${method} ${path} HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`;
}
