/**
 * Ping/pong liveness: every interval, each connection that has not answered the previous ping
 * is ended (its peer is gone or its network is dead: see Connection.pongTimedOut); the others are
 * pinged again. One timer for all connections, not one per socket.
 */
import type { Connection } from './connection.js';

export class Heartbeat {
  readonly #timer: NodeJS.Timeout;

  constructor(connections: Iterable<Connection>, intervalMs: number) {
    this.#timer = setInterval(() => {
      for (const connection of connections) {
        if (connection.awaitingPong) {
          connection.pongTimedOut();
          continue;
        }
        connection.awaitingPong = true;
        connection.ws.ping();
      }
    }, intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}
