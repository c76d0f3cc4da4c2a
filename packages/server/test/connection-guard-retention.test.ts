/**
 * A connection the server ends and its peer then closes is not kept in memory (issue 16, the
 * churn soak). The connection guard gives a peer closeTimeoutMs to close its side after the
 * server's FIN, with a timer that destroys the socket; that timer was not cleared when the socket
 * closed in time, so every ended connection — every cleanly closed WebSocket — stayed reachable
 * (socket, WebSocket, buffers) for the whole closeTimeoutMs. `npm run bench:soak` found it: a
 * heap snapshot taken after every client had left still held 1,129 sockets with a Timeout each.
 *
 * Real HTTP server and sockets; the server's sockets are watched through WeakRefs and the test
 * collects garbage itself (V8's gc, exposed at run time).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, get, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { pino } from 'pino';
import { ConnectionGuard } from '../src/http/connection-guard.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Far longer than the test: a socket still reachable at the end is held by its timer. */
const CLOSE_TIMEOUT_MS = 60_000;
const REQUESTS = 20;

async function guardedServer(): Promise<{ server: Server; sockets: WeakRef<Socket>[]; closed: () => number }> {
  const server = createServer((_req, res) => {
    // `Connection: close`: the server ends the socket after the answer (its FIN: the guard's timer starts).
    res.setHeader('Connection', 'close');
    res.end('ok');
  });
  const guard = new ConnectionGuard(server, { headersTimeoutMs: 10_000, closeTimeoutMs: CLOSE_TIMEOUT_MS, tls: false, log: pino({ level: 'silent' }) });
  server.on('clientError', guard.clientError);
  server.on('close', () => guard.close());
  const sockets: WeakRef<Socket>[] = [];
  let closed = 0;
  server.on('connection', (socket: Socket) => {
    sockets.push(new WeakRef(socket));
    socket.once('close', () => closed++);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, sockets, closed: () => closed };
}

function request(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
      res.resume();
      res.once('end', resolve);
    }).once('error', reject);
  });
}

describe('connection guard: ended connections', () => {
  it('lets go of a socket the peer closed before closeTimeoutMs', async () => {
    const { server, sockets, closed } = await guardedServer();
    try {
      const { port } = server.address() as { port: number };
      for (let i = 0; i < REQUESTS; i++) await request(port);
      // Each client closes its side on the server's FIN, so every server socket closes well before closeTimeoutMs.
      const deadline = Date.now() + 5_000;
      while (closed() < REQUESTS && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      assert.equal(closed(), REQUESTS, 'every server socket closed');
      for (let round = 0; round < 5; round++) {
        await nextTurn();
        gc();
      }
      const alive = sockets.filter((ref) => ref.deref() !== undefined).length;
      assert.equal(sockets.length, REQUESTS);
      assert.equal(alive, 0, `${alive} of ${REQUESTS} closed sockets are still reachable (held by the guard's close timer)`);
    } finally {
      server.close();
      server.closeAllConnections();
    }
  });
});
