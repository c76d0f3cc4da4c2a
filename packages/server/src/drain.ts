/**
 * The first step of a graceful shutdown: telling every connection to reconnect elsewhere, a few
 * at a time. Closing them all at once sends every client to the other nodes in the same instant
 * (a rolling restart of a cluster would move the whole node's load in one burst); closing them
 * in batches spread over `drainWindowMs` hands them over at a steady rate.
 *
 * Each connection is closed once, with the core's GOING_AWAY, which its dialect turns into its
 * own "reconnect elsewhere" signal: raw 1001, v1 a `disconnect` push with reconnect advice then
 * 1001, Pusher 4200 (Connection.close, closeCodeFor, ConnectionHandler.closing).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { CloseCodes, type CloseCodeInfo } from '@chorus/protocol';
import type { Connection } from './connection.js';

/**
 * One batch per tick. A node with fewer connections than the window has ticks closes one per
 * tick and is done sooner: spreading a handful of clients over seconds protects no one.
 */
export const DRAIN_TICK_MS = 50;

/**
 * Closes `connections` (a snapshot is taken now) in batches every DRAIN_TICK_MS, the last one
 * within `windowMs`: tick t closes the snapshot up to ⌈(t+1)·n/ticks⌉. A connection that closed
 * by itself meanwhile is skipped, and a tick left with nothing to close is not waited for.
 * Resolves after the last batch; the close handshakes may still be running. Also used, with
 * ENGINE_UNAVAILABLE, when the node lost Redis for too long (engine-outage.ts).
 */
export async function drainConnections(connections: Iterable<Connection>, windowMs: number, code: CloseCodeInfo = CloseCodes.GOING_AWAY): Promise<void> {
  const pending = [...connections];
  const ticks = Math.max(1, Math.min(pending.length, Math.floor(windowMs / DRAIN_TICK_MS)));
  const start = performance.now();
  let next = 0;
  for (let tick = 0; tick < ticks; tick++) {
    const end = Math.ceil(((tick + 1) * pending.length) / ticks);
    const batch = pending.slice(next, end);
    next = end;
    if (!batch.some((c) => c.isOpen)) continue;
    // Against the start, not the previous tick: a busy event loop does not stretch the window.
    const wait = start + tick * DRAIN_TICK_MS - performance.now();
    if (wait > 0) await sleep(wait);
    for (const connection of batch) if (connection.isOpen) connection.close(code);
  }
}
