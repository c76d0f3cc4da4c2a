/**
 * Ping/pong liveness: every interval, each connection that has not answered the previous ping
 * is terminated (its peer is gone or its network is dead); the others are pinged again. One
 * timer for all connections, not one per socket.
 */
import type { Connection } from './connection.js';

export class Heartbeat {
  readonly #timer: NodeJS.Timeout;

  constructor(connections: Iterable<Connection>, intervalMs: number) {
    this.#timer = setInterval(() => {
      for (const connection of connections) {
        if (connection.awaitingPong) {
          connection.terminate();
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
