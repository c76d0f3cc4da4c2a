/**
 * Where the Redis engine's connections go: one Redis URL, or a primary found through Redis
 * Sentinel (`sentinels` and the monitored `name`), which ioredis asks again after every
 * disconnect, so a failover moves every connection to the new primary by itself.
 */
import { Redis, type RedisOptions } from 'ioredis';
import type { EngineConfig } from '../../config-types.js';

export type RedisTarget = Pick<Extract<EngineConfig, { type: 'redis' }>, 'url' | 'sentinels' | 'name'>;

export function connectRedis(target: RedisTarget, options: RedisOptions): Redis {
  if (target.sentinels && target.name) return new Redis({ ...options, sentinels: target.sentinels, name: target.name });
  return new Redis(target.url ?? 'redis://127.0.0.1:6379', options);
}

/** The target for logs: no password, ever. */
export function describeTarget(target: RedisTarget): string {
  if (target.sentinels && target.name) return `sentinel ${target.name} via ${target.sentinels.map((s) => `${s.host}:${s.port}`).join(',')}`;
  try {
    const parsed = new URL(target.url ?? '');
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return 'redis://(unparsable url)';
  }
}
