/**
 * The fuzz harness: a real server on port 0 with a canary pair of raw clients that keeps
 * publishing and receiving while the fuzz runs, a logger that records every error-level line
 * (a handler that threw and was caught by a safety net: a bug, even if the client got a 500),
 * and the checks every fuzz test ends with: the canary received everything in order, no error
 * was logged, every fuzz connection is gone, and the heap after a GC stayed within a bound.
 *
 * Seeds are fixed (FUZZ_SEED overrides them, FUZZ_PATH picks a reported case) and FUZZ_RUNS multiplies every numRuns, so
 * `npm run fuzz` runs the same first cases as `npm test`, and many more after them. On failure
 * fast-check's error names the seed, the path to the shrunk case and the counterexample.
 */
import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';
import { pino } from 'pino';
import WebSocket from 'ws';
import { CloseCodes, ErrorCodes, HttpErrors, PusherCloseCodes } from '@chorus/protocol';
import { startServer, type ChorusConfigInput, type ChorusServer } from '../../src/index.ts';
import { OTHER_APP, TEST_APP, TestClient, rawUrl, withTimeout } from '../helpers.ts';

/** How many times more cases than in `npm test` (`npm run fuzz` sets it). */
export const FUZZ_FACTOR = Math.max(1, Number(process.env['FUZZ_RUNS'] ?? 1) || 1);

/** Every case is answered (a reply, a close, a response) within this, or the server hangs on it. */
export const CASE_TIMEOUT_MS = 5_000;

/** fast-check parameters: `base` cases (times FUZZ_FACTOR), this file's seed unless FUZZ_SEED is set. */
export function fuzzParameters<T>(seed: number, base: number): fc.Parameters<T> {
  const envSeed = process.env['FUZZ_SEED'];
  // FUZZ_PATH (with FUZZ_SEED) replays one reported case at once: the `path` of the failure report.
  const path = process.env['FUZZ_PATH'];
  return { seed: envSeed === undefined ? seed : Number(envSeed), ...(path ? { path } : {}), numRuns: base * FUZZ_FACTOR, includeErrorInReport: true };
}

/** Runs `check` on `arbitrary`'s values with a deadline per case; see fuzzParameters. */
export async function fuzz<T>(seed: number, base: number, arbitrary: fc.Arbitrary<T>, check: (value: T) => Promise<void>, examples: T[] = []): Promise<void> {
  const property = fc.asyncProperty(arbitrary, (value) => withTimeout(check(value), CASE_TIMEOUT_MS, 'the server did not answer this case in time'));
  await fc.assert(property, { ...fuzzParameters<[T]>(seed, base), examples: examples.map((e) => [e]) });
}

/** JSON nested `depth` levels deep: small on the wire, too deep for JSON.stringify past a few thousand. */
export const deeplyNested = (depth: number): string => `${'['.repeat(depth)}${']'.repeat(depth)}`;

// ---- what counts as a coded outcome -------------------------------------------------------------

export const CHORUS_CLOSE_CODES: ReadonlySet<number> = new Set(Object.values(CloseCodes).map((c) => c.code));
export const PUSHER_CLOSE_CODES: ReadonlySet<number> = new Set(Object.values(PusherCloseCodes).map((c) => c.code));
export const HTTP_ERROR_CODES: ReadonlyMap<string, number> = new Map(Object.values(HttpErrors).map((e) => [e.code, e.status]));
export const V1_ERROR_CODES: ReadonlySet<number> = new Set(Object.values(ErrorCodes).map((e) => e.code));

/** A Chorus HTTP error body: `{error, code}` with a documented code of this status. */
export function assertCodedHttpError(status: number, body: string): void {
  const parsed = JSON.parse(body) as { error?: unknown; code?: unknown };
  assert.equal(typeof parsed.error, 'string', `error text in ${body}`);
  assert.equal(HTTP_ERROR_CODES.get(String(parsed.code)), status, `documented code for ${status} in ${body}`);
}

// ---- the server under fuzz ----------------------------------------------------------------------

/** High rate limits: the fuzz should reach the parsers, not the rate limiter. */
export const FUZZ_LIMITS = { messagesPerSecond: 1_000_000, messageBurst: 1_000_000, maxConnectionsPerIp: 100_000 };

export const FUZZ_APP = { ...TEST_APP, clientEvents: true, limits: FUZZ_LIMITS };

const CANARY_CHANNEL = 'fuzz-canary';
const CANARY_INTERVAL_MS = 20;
/** Heap growth after a GC allowed over a whole run, in bytes: a leak per case would pass it. */
const HEAP_GROWTH_BOUND = 64 * 1024 * 1024;

const collectGarbage = ((): (() => void) => {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
})();

function heapAfterGc(): number {
  collectGarbage();
  collectGarbage();
  return process.memoryUsage().heapUsed;
}

export interface FuzzServer {
  readonly server: ChorusServer;
  /** Error-level log lines so far (each a JSON line). */
  readonly errors: string[];
  /** Fails the case if the server logged an error while handling it (and forgets those errors). */
  assertNoErrors(): void;
  /** Stops the canary, runs the end-of-run checks and stops the server. */
  finish(report: (line: string) => void): Promise<void>;
  /** Stops the canary and the server without checks (an `after` hook; safe to call again). */
  stop(): Promise<void>;
}

export async function startFuzzServer(overrides: ChorusConfigInput = {}): Promise<FuzzServer> {
  const errors: string[] = [];
  const logger = pino({ level: 'error' }, { write: (line: string) => void errors.push(line) });
  const server = await startServer({ port: 0, host: '127.0.0.1', apps: [{ ...FUZZ_APP }, { ...OTHER_APP }], ...overrides }, { logger });

  // The canary: every CANARY_INTERVAL_MS one numbered frame, which the receiver must get, in order.
  const receiver = await TestClient.open(rawUrl(server, CANARY_CHANNEL));
  const sender = await TestClient.open(rawUrl(server, CANARY_CHANNEL));
  let sent = 0;
  const timer = setInterval(() => sender.ws.send(`canary ${++sent}`), CANARY_INTERVAL_MS);
  const baseline = { connections: await connectionCount(server), heap: heapAfterGc(), rss: process.memoryUsage().rss };
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    clearInterval(timer);
    receiver.ws.terminate();
    sender.ws.terminate();
    stopped ??= server.close();
    return stopped;
  };

  return {
    server,
    errors,
    assertNoErrors() {
      // Taken out, so the cases fast-check tries while shrinking are judged on their own.
      assert.deepEqual(errors.splice(0), [], 'the server logged an error');
    },
    stop,
    async finish(report) {
      clearInterval(timer);
      try {
        await receiver.until(() => receiver.received.length >= sent, `all ${sent} canary frames`, CASE_TIMEOUT_MS);
        assert.deepEqual(receiver.received.map((r) => r.text), Array.from({ length: sent }, (_, i) => `canary ${i + 1}`), 'the canary received every frame, in order');
        assert.equal(sender.closeCode, undefined, 'the canary sender is still connected');
        assert.ok(sent > 0, 'the canary published during the fuzz');
        // Every fuzz connection is gone: the server counts only the two canaries.
        await eventually(async () => assert.equal(await connectionCount(server), baseline.connections), 'fuzz connections closed');
        const heap = heapAfterGc();
        const rss = process.memoryUsage().rss;
        report(`canary frames: ${sent}; heap after GC: ${mb(baseline.heap)} → ${mb(heap)} MB; RSS ${mb(baseline.rss)} → ${mb(rss)} MB`);
        assert.ok(heap - baseline.heap < HEAP_GROWTH_BOUND, `heap grew by ${mb(heap - baseline.heap)} MB over the run (bound ${mb(HEAP_GROWTH_BOUND)} MB)`);
        assert.deepEqual(errors, [], 'the server logged an error');
      } finally {
        await stop();
      }
    },
  };
}

function mb(bytes: number): string {
  return (bytes / 1024 / 1024).toFixed(1);
}

async function connectionCount(server: ChorusServer): Promise<number> {
  const response = await fetch(`http://127.0.0.1:${server.port}/health`);
  return ((await response.json()) as { connections: number }).connections;
}

async function eventually(check: () => Promise<void>, what: string, timeoutMs = CASE_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`${what}: ${(error as Error).message}`, { cause: error });
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

// ---- one WebSocket case -------------------------------------------------------------------------

export interface WsOutcome {
  /** The HTTP status when the upgrade was answered without a WebSocket. */
  readonly httpStatus: number | undefined;
  readonly opened: boolean;
  /** Text frames received (binary ones as `<n bytes>`). */
  readonly frames: string[];
  /** The close code the client saw (the server's, when the server closed first). */
  readonly closeCode: number | undefined;
  readonly closeReason: string;
}

/**
 * Opens `url`, lets `session` talk (it resolves when it has what it waits for), then closes with
 * 1000 and resolves once the socket is closed: a server that never answers the close fails the
 * case through the per-case deadline.
 */
export function wsCase(url: string, session: (ws: WebSocket, frames: string[]) => Promise<void> = () => Promise.resolve(), options: WebSocket.ClientOptions = {}): Promise<WsOutcome> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, ...options });
    const frames: string[] = [];
    let opened = false;
    let httpStatus: number | undefined;
    ws.on('message', (data: Buffer, binary: boolean) => frames.push(binary ? `<${data.length} bytes>` : data.toString('utf8')));
    ws.on('unexpected-response', (_req, res) => {
      httpStatus = res.statusCode;
      res.resume();
      ws.terminate();
    });
    ws.on('error', () => undefined);
    ws.on('open', () => {
      opened = true;
      session(ws, frames).then(
        () => ws.close(1000),
        (error: unknown) => {
          ws.terminate();
          reject(error instanceof Error ? error : new Error(String(error)));
        },
      );
    });
    ws.on('close', (code: number, reason: Buffer) => {
      resolve({ httpStatus, opened, frames, closeCode: httpStatus === undefined ? code : undefined, closeReason: reason.toString() });
    });
  });
}

// ---- one HTTP request ---------------------------------------------------------------------------

const keepAlive = new Agent({ keepAlive: true, maxSockets: 4 });

/** A request with the path sent exactly as given (fetch would normalize `.` segments and more). */
export function httpRequest(port: number, method: string, path: string, body = '', headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, agent: keepAlive, headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body === '' ? undefined : body);
  });
}
