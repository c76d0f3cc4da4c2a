/**
 * Run by engine-contract.test.ts in a process of its own: creates an engine, uses it, waits, closes
 * it, and must then exit by itself. Anything the engine leaves behind that keeps a process alive
 * (a ref'd timer, a socket) makes the test time out instead.
 *
 *   node --import tsx engine-exit-child.ts <memory|redis|redis-cluster> <url | JSON startup nodes> <wait ms>
 */
import { pino } from 'pino';
import { createMemoryEngine } from '../src/engine/memory.ts';
import { createRedisEngine } from '../src/engine/redis/index.ts';
import type { EngineHandlers, HistoryPolicy } from '../src/engine/types.ts';

const [kind, target = '', waitMs = '0'] = process.argv.slice(2);
const handlers: EngineHandlers = { onPublication: () => undefined, onGap: () => undefined, onControl: () => undefined, onCountChange: () => undefined };
const policy = (): HistoryPolicy => ({ size: 10, ttlMs: 60_000 });
const localStats = (): { connections: number; channels: number } => ({ connections: 0, channels: 0 });
const log = pino({ level: 'silent' });
const engine =
  kind === 'memory'
    ? createMemoryEngine(handlers, policy, localStats)
    : createRedisEngine({ ...(kind === 'redis' ? { url: target } : { nodes: JSON.parse(target) as { host: string; port: number }[] }), nodeId: `exit-${process.pid}`, log, handlers, policy, localStats });
await engine.broker.attach('app', 'exit');
await engine.broker.publish({ appId: 'app', channel: 'exit', originId: 'c', event: 'e', payload: Buffer.from('1'), binary: false });
await new Promise((resolve) => setTimeout(resolve, Number(waitMs)));
await engine.close();
console.log('closed');
