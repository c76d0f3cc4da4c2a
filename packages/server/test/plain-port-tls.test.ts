/**
 * wss:// on the plain port (issue 11, item 3): a PieSocket URL keeps `wss://`; pointed at a
 * Chorus started without a certificate, the browser only reports ERR_SSL_PROTOCOL_ERROR and close
 * 1006. The server recognises the TLS ClientHello, closes the connection and logs one line that
 * names the fix, at most once a minute per client address.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { connect } from 'node:tls';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import { startServer } from '../src/index.ts';
import { TEST_APP, TestClient, rawUrl, withTimeout } from './helpers.ts';

/** Opens a TLS connection to the port and resolves with how it ended. */
function tlsAttempt(port: number): Promise<string> {
  return withTimeout(
    new Promise<string>((resolve) => {
      const socket = connect({ port, host: '127.0.0.1', servername: 'localhost', rejectUnauthorized: false });
      socket.on('secureConnect', () => resolve('handshake completed'));
      socket.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
      socket.on('close', () => resolve('closed'));
    }),
    3000,
    'the TLS attempt was not ended',
  );
}

describe('a TLS client on the plain port', () => {
  it('is closed and logged once, naming ws:// and --tls-cert/--tls-key; the port keeps serving ws://', async () => {
    const lines: Array<{ level: number; msg: string; ip?: string }> = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as { level: number; msg: string });
        done();
      },
    });
    const server = await startServer({ port: 0, host: '127.0.0.1', apps: [{ ...TEST_APP }] }, { logger: pino({ level: 'info' }, sink) });
    after(() => server.close());

    for (let i = 0; i < 3; i++) assert.notEqual(await tlsAttempt(server.port), 'handshake completed');
    const warnings = lines.filter((l) => l.level === 40);
    assert.equal(warnings.length, 1, `one warning for three attempts: ${JSON.stringify(warnings)}`);
    assert.equal(
      warnings[0]?.msg,
      `a TLS (wss:// or https://) connection reached this plain ws:// port from 127.0.0.1: use ws://HOST:${server.port}, or start Chorus with --tls-cert and --tls-key`,
    );
    assert.equal(warnings[0]?.ip, '127.0.0.1');

    const a = await TestClient.open(rawUrl(server, 'after-tls'));
    const b = await TestClient.open(rawUrl(server, 'after-tls'));
    a.ws.send('plain ws:// still works');
    assert.equal((await b.messages(1))[0]?.text, 'plain ws:// still works');
    a.ws.terminate();
    b.ws.terminate();
  });
});
