/**
 * A Pusher connection refused at admission (unknown key, disabled app, missing or wrong protocol
 * version) is told why in a `pusher:error` text frame before the coded close, so pusher-js shows
 * the server's explanation, not just the close code's reason.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import type { ChorusServer } from '../src/index.ts';
import { TEST_APP, startTestServer, withTimeout } from './helpers.ts';
import { Pusher } from './pusher-js.ts';

const DISABLED = { id: 'off', key: 'disabled-key-123', secret: 'disabled-secret-0123456789', enabled: false };

let server: ChorusServer;
before(async () => {
  server = await startTestServer({ apps: [{ ...TEST_APP }, DISABLED] });
});
after(() => server.close());

interface Refused {
  readonly messages: { readonly text: string; readonly binary: boolean }[];
  readonly code: number;
}

function refused(path: string): Promise<Refused> {
  const ws = new WebSocket(`ws://127.0.0.1:${server.port}${path}`);
  const messages: { text: string; binary: boolean }[] = [];
  ws.on('message', (data: Buffer, binary: boolean) => messages.push({ text: data.toString('utf8'), binary }));
  return withTimeout(new Promise((resolve) => ws.on('close', (code) => resolve({ messages, code }))), 5000, `close of ${path}`);
}

describe('Pusher admission refusals', () => {
  const cases = [
    { what: 'an unknown key', path: '/app/no-such-key?protocol=7', code: 4001, says: /PUSHER_APP_KEY/ },
    { what: 'a disabled app', path: `/app/${DISABLED.key}?protocol=7`, code: 4003, says: /"enabled": false/ },
    { what: 'no protocol version', path: `/app/${TEST_APP.key}`, code: 4008, says: /\?protocol=7/ },
    { what: 'protocol 6', path: `/app/${TEST_APP.key}?protocol=6`, code: 4007, says: /version 6/ },
  ];
  for (const c of cases) {
    it(`${c.what}: one pusher:error text frame with the code and why, then close ${c.code}`, async () => {
      const { messages, code } = await refused(c.path);
      assert.equal(code, c.code);
      assert.equal(messages.length, 1);
      const [message] = messages;
      assert.equal(message?.binary, false, 'the error must be a text frame');
      const frame = JSON.parse(message?.text ?? '') as { event: string; data: { code: number; message: string } };
      assert.equal(frame.event, 'pusher:error');
      assert.equal(frame.data.code, c.code);
      assert.match(frame.data.message, c.says);
    });
  }

  it('pusher-js hands the server\'s explanation to the application', async () => {
    const pusher = new Pusher('no-such-key', { cluster: 'local', wsHost: '127.0.0.1', wsPort: server.port, forceTLS: false, enabledTransports: ['ws'] });
    try {
      // pusher-js wraps the server's pusher:error in its WebSocketError.
      const error = await withTimeout(
        new Promise<{ error?: { data?: { code?: number; message?: string } } }>((resolve) => pusher.connection.bind('error', resolve)),
        5000,
        'pusher-js error event',
      );
      assert.equal(error.error?.data?.code, 4001);
      assert.match(error.error?.data?.message ?? '', /PUSHER_APP_KEY/);
    } finally {
      pusher.disconnect();
    }
  });
});
