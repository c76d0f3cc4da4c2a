/**
 * A subscriber that stops reading on a channel a raw publisher floods (issue 11, item 10).
 *
 * The publisher is a real `ws` client on the raw dialect sending 1 KB frames as fast as its
 * socket takes them (message rate limit off); the readers keep reading; the stopped subscriber is
 * a bare TCP socket that completed the handshake and then never reads. maxPendingBytes is the
 * default 1 MiB. Two findings are asserted:
 *
 * - One event-loop turn can read megabytes from such a publisher. Queued until the turn ended,
 *   that exceeded the cap for subscribers that were keeping up, and cut them with 4500 too.
 * - The stopped subscriber was cut, but closing its socket normally left the kernel holding its
 *   unsent backlog (~4 MB on loopback) in FIN-WAIT-1 for minutes, its end of the connection
 *   still open: it has to be reset.
 *
 * Both with a few subscribers (served frame by frame) and with 8+ (served from a shared run).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import WebSocket from 'ws';
import type { ChorusServer } from '../src/index.ts';
import { TEST_APP, TestClient, closeAfterwards, rawUrl, withTimeout } from './helpers.ts';
import { RawSocket } from './raw-socket.ts';

const { serverWith, track } = closeAfterwards();

const FRAME_SIZE = 1024;
/** The default maxPendingBytes. */
const CAP = 1024 * 1024;
/** Short, so the reset that follows the cut comes quickly. */
const CLOSE_TIMEOUT_MS = 300;
/** How far the publisher may run ahead of the slowest reader: twice the cap, in frames. */
const MAX_LEAD = (2 * CAP) / FRAME_SIZE;

async function connectionCount(server: ChorusServer): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${server.port}/health`);
  return ((await res.json()) as { connections: number }).connections;
}

async function until(predicate: () => boolean, what: string, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!predicate()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A reading subscriber that keeps only how many frames it got and whether they were in order. */
class CountingReader {
  readonly client: TestClient;
  count = 0;
  outOfOrder = 0;

  constructor(client: TestClient) {
    this.client = client;
    client.ws.removeAllListeners('message');
    client.ws.on('message', (data: Buffer) => {
      if (data.readUInt32BE(0) !== this.count) this.outOfOrder++;
      this.count++;
    });
  }
}

/**
 * Floods `url` with numbered 1 KB frames, writing whenever the socket has drained, never more
 * than MAX_LEAD frames ahead of `slowest()`, until `done()` holds. Resolves with the frames sent.
 */
async function flood(url: string, slowest: () => number, done: () => boolean, timeoutMs: number): Promise<number> {
  const publisher = new WebSocket(url, { perMessageDeflate: false });
  await withTimeout(new Promise((resolve) => publisher.once('open', resolve)), 3000, 'the publisher did not open');
  let sent = 0;
  try {
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        publisher.once('close', (code) => reject(new Error(`the publisher was closed (${code})`)));
        const pump = (): void => {
          if (done()) return resolve();
          while (publisher.bufferedAmount < 64 * 1024 && sent - slowest() < MAX_LEAD) {
            const frame = Buffer.alloc(FRAME_SIZE, 0x61);
            frame.writeUInt32BE(sent++, 0);
            publisher.send(frame);
          }
          setImmediate(pump);
        };
        pump();
      }),
      timeoutMs,
      `the flood did not end in ${timeoutMs} ms`,
    );
  } finally {
    publisher.terminate();
  }
  return sent;
}

describe('a subscriber that stops reading on a flooded channel', () => {
  for (const readerCount of [1, 9]) {
    it(`with ${readerCount} reading subscriber(s): the readers get every frame, the stopped one is cut at the cap and its TCP connection reset`, async () => {
      const server = await serverWith({ closeTimeoutMs: CLOSE_TIMEOUT_MS, limits: { messagesPerSecond: 0 } });
      const url = rawUrl(server, 'flood');
      const readers: CountingReader[] = [];
      for (let i = 0; i < readerCount; i++) readers.push(new CountingReader(track(await TestClient.open(url))));
      const stopped = await RawSocket.upgrade(server.port, `/v4/flood?api_key=${TEST_APP.key}`);
      stopped.socket.pause();
      const expected = readerCount + 2;

      // Until the server has let the stopped subscriber go, then as much again.
      let cutAt: number | undefined;
      let everyoneSeen = false;
      let count = 0;
      const poll = setInterval(() => void connectionCount(server).then((n) => {
        count = n;
        everyoneSeen ||= n === expected;
      }, () => undefined), 50);
      const sent = await flood(
        url,
        () => Math.min(...readers.map((r) => r.count)),
        () => {
          if (readers.some((r) => r.client.closeCode !== undefined)) return true;
          if (everyoneSeen && count === expected - 1 && cutAt === undefined) cutAt = Math.min(...readers.map((r) => r.count));
          return cutAt !== undefined && Math.min(...readers.map((r) => r.count)) >= 2 * cutAt;
        },
        20_000,
      ).finally(() => clearInterval(poll));

      for (const [i, reader] of readers.entries()) {
        const { closeCode } = reader.client;
        assert.equal(closeCode, undefined, `reader ${i} was closed (${closeCode}) after ${reader.count} of ${sent} frames`);
        await until(() => reader.count >= sent, `reader ${i} to get all ${sent} frames`, 10_000);
        assert.equal(reader.outOfOrder, 0, `reader ${i} got the frames in order`);
      }

      // Closed normally, the server's kernel would still hold megabytes for it (FIN-WAIT-1) and
      // hand them over now, then the 4500 close frame, then FIN. Reset, it gets only what its
      // own receive buffer held, and no close frame.
      stopped.socket.resume();
      await stopped.closed(5000);
      const bytes = stopped.frames.reduce((sum, f) => sum + f.payload.length, 0);
      assert.equal(stopped.frames.some((f) => f.opcode === 0x8), false, `no close frame reached the stopped subscriber (it got ${stopped.frames.length} frames)`);
      assert.ok(bytes < CAP, `the stopped subscriber got ${bytes} bytes after resuming: less than the cap, not the server's backlog`);
      stopped.destroy();
    });
  }
});
