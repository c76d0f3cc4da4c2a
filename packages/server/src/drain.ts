/**
 * The first step of a graceful shutdown: telling every connection to reconnect elsewhere, a few
 * at a time. Closing them all at once sends every client to the other nodes in the same instant
 * (a rolling restart of a cluster would move the whole node's load in one burst); closing them
 * in batches spread over `drainWindowMs` hands them over at a steady rate.
 *
 * Each connection is closed once, with the core's GOING_AWAY, which its dialect turns into its
 * own "reconnect elsewhere" signal: raw 1001, v1 a `disconnect` push with reconnect advice then
 * 1001, Pusher 4200 (Connection.close, closeCodeFor, onClosing).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { CloseCodes } from '@chorus/protocol';
import type { Connection } from './connection.js';

/**
 * One batch per tick. A node with fewer connections than the window has ticks closes one per
 * tick and is done sooner: spreading a handful of clients over seconds protects no one.
 */
export const DRAIN_TICK_MS = 50;

/**
 * Closes `connections` (a snapshot is taken now) in batches every DRAIN_TICK_MS, so that the
 * last batch goes within `windowMs`. A connection that closed by itself meanwhile is skipped and
 * does not count against its batch. Resolves after the last batch; the close handshakes may
 * still be running.
 */
export async function drainConnections(connections: Iterable<Connection>, windowMs: number): Promise<void> {
  const pending = [...connections];
  const ticks = Math.max(1, Math.floor(windowMs / DRAIN_TICK_MS));
  const perTick = Math.ceil(pending.length / ticks);
  const start = performance.now();
  let next = 0;
  for (let tick = 0; next < pending.length; tick++) {
    // Against the start, not the previous tick: a busy event loop does not stretch the window.
    const wait = start + tick * DRAIN_TICK_MS - performance.now();
    if (wait > 0) await sleep(wait);
    for (let closed = 0; closed < perTick && next < pending.length; ) {
      const connection = pending[next++] as Connection;
      if (!connection.isOpen) continue;
      connection.close(CloseCodes.GOING_AWAY);
      closed++;
    }
  }
}
