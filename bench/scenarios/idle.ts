/**
 * Idle memory: the server's RSS and JS heap per idle connection, at several connection counts
 * (10,000 and 19,000 by default). Connections are opened by holder processes (lib/holders.ts),
 * each from its own 127.0.0.x source address, 10 connections per channel. Before every reading
 * the server collects garbage twice (Node servers run with --expose-gc; Bun has Bun.gc), and the
 * reading taken before any connection is subtracted.
 */
import { ConnectionHolder, nextSourceAddress } from '../lib/holders.ts';
import { startPeer, type Peer } from '../lib/peers.ts';
import type { ServerMemory } from '../lib/process.ts';
import { formatInteger, formatKiB, formatMiB, progress, sleep } from '../lib/report.ts';

export interface IdleSettings {
  /** Connection counts to read memory at, ascending. */
  steps: number[];
  /** Most connections one holder process opens. */
  perHolder: number;
  perChannel: number;
  /** Wait after connecting, before the reading (lets the server settle). */
  settleMs: number;
  label?: string;
}

export interface IdleStep {
  connections: number;
  /** Connections the holders report open at the reading. */
  open: number;
  memory: ServerMemory;
  rssPerConnection: number;
  heapPerConnection: number;
  connectMs: number;
}

export interface IdleResult {
  server: string;
  baseline: ServerMemory;
  steps: IdleStep[];
  warnings: string[];
}

export async function runIdle(peer: Peer, settings: IdleSettings): Promise<IdleResult> {
  const label = settings.label ?? peer.id;
  const server = await startPeer(peer);
  const holders: ConnectionHolder[] = [];
  try {
    await sleep(500);
    const baseline = await server.memory();
    progress(label, `pid ${server.pid}: baseline RSS ${formatMiB(baseline.rss)}, heap ${formatMiB(baseline.heapUsed)}${baseline.gc ? '' : ' (no GC available)'}`);
    const result: IdleResult = { server: peer.id, baseline, steps: [], warnings: [] };
    let opened = 0;
    for (const target of settings.steps) {
      const stepStart = performance.now();
      while (opened < target) {
        const count = Math.min(settings.perHolder, target - opened);
        const localAddress = nextSourceAddress();
        const base = opened;
        holders.push(
          await ConnectionHolder.start(
            { peer: peer.id, port: server.port, count, localAddress, perChannel: settings.perChannel, firstChannel: Math.ceil(base / settings.perChannel) },
            (n) => progress(label, `connecting: ${formatInteger(base + n)} of ${formatInteger(target)}`),
          ),
        );
        opened += count;
      }
      const connectMs = performance.now() - stepStart;
      await sleep(settings.settleMs);
      const memory = await server.memory();
      let open = 0;
      for (const holder of holders) open += (await holder.status()).open;
      const step: IdleStep = {
        connections: target,
        open,
        memory,
        rssPerConnection: (memory.rss - baseline.rss) / target,
        heapPerConnection: (memory.heapUsed - baseline.heapUsed) / target,
        connectMs: Math.round(connectMs),
      };
      result.steps.push(step);
      progress(
        label,
        `${formatInteger(target)} idle connections (${formatInteger(open)} open): RSS ${formatMiB(memory.rss)} → ${formatKiB(step.rssPerConnection)} per connection, ` +
          `heap ${formatMiB(memory.heapUsed)} → ${formatKiB(step.heapPerConnection)} per connection`,
      );
      if (open < target) result.warnings.push(`${formatInteger(target - open)} of ${formatInteger(target)} connections were closed before the reading`);
    }
    for (const warning of result.warnings) progress(label, `WARNING: ${warning}`);
    return result;
  } finally {
    await Promise.all(holders.map((holder) => holder.stop()));
    await server.stop();
  }
}
