/**
 * A subscriber cut for reading too slowly learns why, in its dialect's words, before the close:
 * raw `{"error"}` then 4500, Pusher `pusher:error` then 4100. The queued backlog is dropped (that
 * is what bounds memory), but the few bytes of the farewell go to the socket past the cap.
 *
 * The subscriber is a bare TCP client that stops reading while a raw publisher floods its
 * channel, and starts reading again once the server has cut it, well within closeTimeoutMs (after
 * which the server would reset it): what it then reads ends with the farewell and the close frame.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import WebSocket from 'ws';
import type { ChorusServer } from '../src/index.ts';
import { TEST_APP, closeAfterwards, rawUrl, settle, withTimeout } from './helpers.ts';
import { Opcode, RawSocket, encodeFrame } from './raw-socket.ts';

const { serverWith } = closeAfterwards();

/** Text: Pusher clients are not sent binary publications. */
const FRAME = 'a'.repeat(8 * 1024);
const FRAMES = 4096;

/**
 * Floods the channel from a raw publisher with 32 MB: far more than the kernel's loopback buffers
 * (a few MB each way) plus the 1 MiB cap, so the stopped subscriber is cut by the end. (Its
 * connection count only drops at the reset, closeTimeoutMs later, so it cannot be watched.)
 */
async function flood(server: ChorusServer, channel: string): Promise<void> {
  const publisher = new WebSocket(rawUrl(server, channel), { perMessageDeflate: false });
  await withTimeout(new Promise((resolve) => publisher.once('open', resolve)), 3000, 'the publisher did not open');
  let sent = 0;
  try {
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        publisher.once('close', (code) => reject(new Error(`the publisher was closed (${code})`)));
        const pump = (): void => {
          if (sent >= FRAMES && publisher.bufferedAmount === 0) return resolve();
          while (sent < FRAMES && publisher.bufferedAmount < 256 * 1024) {
            publisher.send(FRAME);
            sent++;
          }
          setTimeout(pump, 1);
        };
        pump();
      }),
      20_000,
      `the publisher did not get ${FRAMES} frames out within 20 s`,
    );
    await settle(300);
  } finally {
    publisher.terminate();
  }
}

/** Reads what the cut subscriber still gets: the last data frame before the close, and the close code. */
async function farewellOf(slow: RawSocket): Promise<{ lastText: string; code: number | undefined }> {
  slow.socket.resume();
  const close = await slow.closeFrame(10_000);
  const texts = slow.frames.filter((f) => f.opcode === Opcode.TEXT);
  return { lastText: texts.at(-1)?.payload.toString('utf8') ?? '(no text frame)', code: close.code };
}

describe('a slow consumer is told why it is cut, in every dialect', () => {
  it('raw: {"error"} naming limits.maxPendingBytes, then 4500', async () => {
    const server = await serverWith({ closeTimeoutMs: 10_000, limits: { messagesPerSecond: 0 } });
    const slow = await RawSocket.upgrade(server.port, `/v4/slow?api_key=${TEST_APP.key}`);
    try {
      slow.socket.pause();
      await flood(server, 'slow');
      const { lastText, code } = await farewellOf(slow);
      assert.equal(code, 4500);
      const { error } = JSON.parse(lastText) as { error?: string };
      assert.match(error ?? lastText, /^Slow consumer: this connection fell more than 1048576 bytes behind .*limits\.maxPendingBytes/);
    } finally {
      slow.destroy();
    }
  });

  it('Pusher: pusher:error with code 4100, then 4100', async () => {
    const server = await serverWith({ closeTimeoutMs: 10_000, limits: { messagesPerSecond: 0 } });
    const slow = await RawSocket.upgrade(server.port, `/app/${TEST_APP.key}?protocol=7`);
    try {
      slow.write(encodeFrame({ opcode: Opcode.TEXT, payload: JSON.stringify({ event: 'pusher:subscribe', data: { channel: 'slow' } }) }));
      await slow.until(() => slow.frames.some((f) => f.payload.toString().includes('subscription_succeeded')), 'subscription_succeeded', 3000);
      slow.socket.pause();
      await flood(server, 'slow');
      const { lastText, code } = await farewellOf(slow);
      assert.equal(code, 4100);
      const frame = JSON.parse(lastText) as { event?: string; data?: { code?: number; message?: string } };
      assert.equal(frame.event, 'pusher:error');
      assert.equal(frame.data?.code, 4100);
    } finally {
      slow.destroy();
    }
  });
});
