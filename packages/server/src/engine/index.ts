/** Picks the engine the config names, its presence members counted cluster-wide (member-counts.ts). */
import type { Logger } from 'pino';
import type { ChorusConfig } from '../config.js';
import { withMemberCounts } from './member-counts.js';
import { createMemoryEngine } from './memory.js';
import { createRedisEngine } from './redis/index.js';
import type { EngineState } from './state.js';
import type { Engine, EngineHandlers, HistoryPolicyResolver, LocalStats } from './types.js';

export interface EngineContext {
  readonly handlers: EngineHandlers;
  readonly policy: HistoryPolicyResolver;
  readonly localStats: LocalStats;
  readonly nodeId: string;
  readonly log: Logger;
  /** Written by the engine: reachable or not, reconnects, command round trips. */
  readonly state?: EngineState | undefined;
}

export function createEngine(config: ChorusConfig, context: EngineContext): Engine {
  const { engine } = config;
  const created =
    engine.type === 'memory'
      ? createMemoryEngine(context.handlers, context.policy, context.localStats, config.appsFile)
      : createRedisEngine({
          ...context,
          ...(engine.type === 'redis' ? { url: engine.url, sentinels: engine.sentinels, name: engine.name } : { nodes: engine.nodes }),
          probeIntervalMs: engine.probeIntervalMs,
          commandTimeoutMs: engine.commandTimeoutMs,
          presenceTtlMs: engine.presenceTtlMs,
          nodeTtlMs: engine.nodeTtlMs,
        });
  return withMemberCounts(created);
}
