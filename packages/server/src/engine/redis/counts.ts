/**
 * Cluster-wide counts on Redis (see Counts in ../types.ts): how many connections are subscribed
 * to a channel, how many a signed-in user has, over every node.
 *
 * Each count is a hash with one field per node holding that node's share, so the total is the
 * sum of the fields and a node only ever writes its own field: writes are absolute (this node has
 * 3), never increments, so a lost or repeated write heals with the next one. A per-app index
 * hash keeps each positive total, for listings. Each node also lists the counts it has a share
 * in and keeps an expiry in a node table, refreshed three times per nodeTtlMs: when a node dies, a
 * sweep on any other node removes its shares within about 1.3 × nodeTtlMs and reports
 * the totals that changed, so channels vacated by a crash are seen as vacated.
 *
 * Every script returns the totals before and after its change, and runs atomically: of all the
 * nodes, exactly one sees each change (the occupied and vacated transitions among them).
 *
 * Every key of one app's counts carries the hash tag `{app}` (one slot on Redis Cluster), the node
 * table and the node's lists too: one per app, so each script touches one slot. A per-app tag,
 * not one well-known tag for all: every count write goes through its app's table, and one shared
 * slot would put all of them on one shard. The sweep finds the apps to sweep in a small set,
 * `chorus:cnt:apps`, written with its own command (a key of its own slot).
 */
import type { Logger } from 'pino';
import { rethrowUnavailable } from '../errors.js';
import type { CountChange, Counts, CountSpace } from '../types.js';

/** How long a node's shares outlive its last refresh, by default; it refreshes three times per TTL. */
const DEFAULT_NODE_TTL_MS = 15_000;
/** Shares one sweep call removes at most, so a big dead node cannot block Redis for long. */
const SWEEP_BATCH = 1_000;
/** Every app that has (had) counts, for the sweep: a plain set, outside any app's slot. */
const APPS_KEY = 'chorus:cnt:apps';

const NOW_MS = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

const SUM = `local function sum(key)
  local total = 0
  for _, v in ipairs(redis.call('HVALS', key)) do total = total + tonumber(v) end
  return total
end
local function setIndex(index, name, total)
  if total > 0 then redis.call('HSET', index, name, total) else redis.call('HDEL', index, name) end
end`;

/**
 * KEYS: count hash, app index, this node's list, node table. ARGV: node id, share, list entry,
 * name, node TTL (ms). Returns {before, after, 1 when the node was not in the table (new, or swept
 * while it could not reach Redis: its other shares are gone and must be written again)}.
 */
const COUNT_SET = `${NOW_MS}
${SUM}
local known = redis.call('ZSCORE', KEYS[4], ARGV[1])
redis.call('ZADD', KEYS[4], now + tonumber(ARGV[5]), ARGV[1])
local before = sum(KEYS[1])
if tonumber(ARGV[2]) > 0 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  redis.call('SADD', KEYS[3], ARGV[3])
else
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('SREM', KEYS[3], ARGV[3])
end
local after = sum(KEYS[1])
setIndex(KEYS[2], ARGV[4], after)
return {before, after, known and 0 or 1}`;

/**
 * KEYS: the space's marks hash. ARGV: name, '1' present / '0' absent. Returns 1 when that changed.
 * Absent names have no field, so marks of vacated channels take no room.
 */
const MARK = `local was = redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1
local present = ARGV[2] == '1'
if present then redis.call('HSET', KEYS[1], ARGV[1], 1) else redis.call('HDEL', KEYS[1], ARGV[1]) end
if was ~= present then return 1 end
return 0`;

/** KEYS: node table. ARGV: node id, node TTL (ms). Returns 1 when the node was in the table (see COUNT_SET). */
const NODE_REFRESH = `${NOW_MS}
local known = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return known and 1 or 0`;

/**
 * Removes the shares of nodes whose expiry passed, in one app. List entries are
 * `app\nspace\nname` (see entryOf); keys are built here as countKeys and appKeys build them.
 * KEYS: the app's node table. ARGV: at most this many shares, the app. Returns a flat list of
 * app, space, name, before, after per changed total.
 */
const SWEEP = `${NOW_MS}
${SUM}
local budget = tonumber(ARGV[1])
local out = {}
for _, node in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 16)) do
  local list = 'chorus:cnt:{' .. ARGV[2] .. '}:node:' .. node
  for _, entry in ipairs(redis.call('SPOP', list, budget)) do
    local app, space, name = string.match(entry, '^([^\\n]*)\\n([^\\n]*)\\n(.*)$')
    if app then
      local key = 'chorus:cnt:{' .. app .. '}:' .. space .. ':' .. name
      local before = sum(key)
      redis.call('HDEL', key, node)
      local after = sum(key)
      setIndex('chorus:cnt:{' .. app .. '}:' .. space, name, after)
      if after ~= before then
        out[#out + 1] = app
        out[#out + 1] = space
        out[#out + 1] = name
        out[#out + 1] = before
        out[#out + 1] = after
      end
    end
    budget = budget - 1
  end
  if redis.call('SCARD', list) == 0 then redis.call('ZREM', KEYS[1], node) end
  if budget <= 0 then break end
end
return out`;

/** An app's node table and this node's list of its shares there (see SWEEP). */
function appKeys(appId: string, nodeId: string): { nodes: string; list: string } {
  return { nodes: `chorus:cnt:{${appId}}:nodes`, list: `chorus:cnt:{${appId}}:node:${nodeId}` };
}

/** The `{app}` hash tag keeps one app's counts and its index in one slot. */
function countKeys(appId: string, space: CountSpace, name: string): { count: string; index: string } {
  const index = `chorus:cnt:{${appId}}:${space}`;
  return { count: `${index}:${name}`, index };
}

function entryOf(appId: string, space: CountSpace, name: string): string {
  return `${appId}\n${space}\n${name}`;
}

/** The commands this needs from the engine's Redis connection (defined with defineCommand). */
export interface CountCommands {
  chorusCountSet(...args: Array<string | number>): Promise<[number, number, number]>;
  chorusNodeRefresh(...args: Array<string | number>): Promise<number>;
  chorusCountSweep(...args: Array<string | number>): Promise<Array<string | number>>;
  chorusCountMark(...args: Array<string | number>): Promise<number>;
  hget(key: string, field: string): Promise<string | null>;
  hscan(key: string, cursor: string, ...args: Array<string | number>): Promise<[string, string[]]>;
  hgetall(key: string): Promise<Record<string, string>>;
  sadd(key: string, ...members: string[]): Promise<number>;
  smembers(key: string): Promise<string[]>;
}

export const COUNT_SCRIPTS = {
  chorusCountSet: { numberOfKeys: 4, lua: COUNT_SET },
  chorusNodeRefresh: { numberOfKeys: 1, lua: NODE_REFRESH },
  chorusCountSweep: { numberOfKeys: 1, lua: SWEEP },
  chorusCountMark: { numberOfKeys: 1, lua: MARK },
} as const;

interface Share {
  readonly appId: string;
  readonly space: CountSpace;
  readonly name: string;
  local: number;
  /** What Redis holds for this node, as far as this node knows (undefined: must be written). */
  written: number | undefined;
}

export interface RedisCountsOptions {
  readonly nodeId: string;
  readonly log: Logger;
  readonly nodeTtlMs?: number | undefined;
  /** Resolves with the command connection once it is ready (rejects while Redis is away). */
  readonly commands: () => Promise<CountCommands>;
  readonly onChange: (change: CountChange) => void;
}

export class RedisCounts implements Counts {
  readonly #nodeId: string;
  readonly #nodeTtlMs: number;
  readonly #log: Logger;
  /** Resolves with the command connection once it is ready (rejects while Redis is away). */
  readonly #commands: () => Promise<CountCommands>;
  readonly #onChange: (change: CountChange) => void;
  /** This node's shares, by entry; a share of 0 stays until written, then goes. */
  readonly #shares = new Map<string, Share>();
  /** Apps whose node table this node is in: missing from one later means it was swept. */
  readonly #registered = new Set<string>();
  #flushScheduled = false;
  #flushing: Promise<void> = Promise.resolve();
  readonly #timers: NodeJS.Timeout[] = [];

  constructor(options: RedisCountsOptions) {
    this.#nodeId = options.nodeId;
    this.#log = options.log;
    this.#commands = options.commands;
    this.#onChange = options.onChange;
    this.#nodeTtlMs = options.nodeTtlMs ?? DEFAULT_NODE_TTL_MS;
    const every = Math.floor(this.#nodeTtlMs / 3);
    this.#timers.push(setInterval(() => void this.#refresh(), every).unref());
    // Every node sweeps, at jittered times; the script makes a second sweep of the same node a no-op.
    this.#timers.push(setInterval(() => void this.#sweep(), Math.round(every * (0.75 + Math.random() * 0.5))).unref());
    void this.#refresh();
  }

  set(appId: string, space: CountSpace, name: string, local: number): void {
    const entry = entryOf(appId, space, name);
    let share = this.#shares.get(entry);
    if (!share) {
      if (local === 0) return;
      this.#shares.set(entry, (share = { appId, space, name, local, written: undefined }));
    }
    share.local = local;
    if (share.written !== local) this.#scheduleFlush();
  }

  async total(appId: string, space: CountSpace, name: string): Promise<number> {
    const { count } = countKeys(appId, space, name);
    const commands = await this.#commands();
    const share = this.#shares.get(entryOf(appId, space, name));
    const stored = await commands.hgetall(count).catch(rethrowUnavailable('count total'));
    let total = share?.local ?? 0;
    for (const [node, value] of Object.entries(stored)) if (node !== this.#nodeId) total += Number(value);
    return total;
  }

  async list(appId: string, space: CountSpace, prefix: string): Promise<Map<string, number>> {
    const { index } = countKeys(appId, space, '');
    const commands = await this.#commands();
    let out = new Map<string, number>();
    // A write of this node's running while the index is read may be in it already while its
    // share is not yet marked written: read again once no write ran meanwhile (or after 3 tries).
    for (let tries = 0; tries < 3; tries++) {
      const flushing = this.#flushing;
      await flushing;
      out = new Map();
      let cursor = '0';
      do {
        const [next, pairs] = await commands.hscan(index, cursor, 'MATCH', `${globEscape(prefix)}*`, 'COUNT', 1000).catch(rethrowUnavailable('count listing'));
        for (let i = 0; i + 1 < pairs.length; i += 2) out.set(pairs[i] as string, Number(pairs[i + 1]));
        cursor = next;
      } while (cursor !== '0');
      if (this.#flushing === flushing) break;
    }
    // This node's unwritten shares count already (a subscription made a moment ago is listed).
    for (const share of this.#shares.values()) {
      if (share.appId !== appId || share.space !== space || !share.name.startsWith(prefix) || share.written === share.local) continue;
      const total = (out.get(share.name) ?? 0) - (share.written ?? 0) + share.local;
      if (total > 0) out.set(share.name, total);
      else out.delete(share.name);
    }
    return out;
  }

  async mark(appId: string, space: CountSpace, name: string, present: boolean): Promise<boolean> {
    // Not under the space's prefix, where a channel named "marks" would have its count.
    const marks = `chorus:cnt:{${appId}}:marks:${space}`;
    return Number(await (await this.#commands()).chorusCountMark(marks, name, present ? '1' : '0').catch(rethrowUnavailable('count mark'))) === 1;
  }

  /** Writes what is pending, then stops the timers; the node's entry expires and is swept. */
  async close(): Promise<void> {
    for (const timer of this.#timers) clearInterval(timer);
    await this.#flush().catch(() => undefined);
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    // Once per turn: a burst of subscribes to one channel is one write with its last value.
    setImmediate(() => {
      this.#flushScheduled = false;
      this.#flushing = this.#flushing.then(() => this.#flush()).catch((error: unknown) => {
        this.#log.debug({ err: error }, 'count write failed; retried at the next refresh');
      });
    });
  }

  async #flush(): Promise<void> {
    const due = [...this.#shares.entries()].filter(([, share]) => share.written !== share.local);
    if (due.length === 0) return;
    const commands = await this.#commands();
    const apps = new Set(due.map(([, share]) => share.appId));
    await commands.sadd(APPS_KEY, ...apps);
    let resync = false;
    await Promise.all(
      due.map(async ([entry, share]) => {
        const value = share.local;
        const { count, index } = countKeys(share.appId, share.space, share.name);
        const { nodes, list } = appKeys(share.appId, this.#nodeId);
        const [before, after, unknownNode] = await commands.chorusCountSet(count, index, list, nodes, this.#nodeId, value, entry, share.name, this.#nodeTtlMs);
        this.#registered.add(share.appId);
        share.written = value;
        if (share.local === 0 && value === 0) this.#shares.delete(entry);
        if (Number(unknownNode) === 1) resync = true;
        this.#report(share.appId, share.space, share.name, Number(before), Number(after));
      }),
    );
    if (resync) this.#rewriteAll();
  }

  /** The node was swept (it could not reach Redis for nodeTtlMs) or is new: every share is written again. */
  #rewriteAll(): void {
    let any = false;
    for (const share of this.#shares.values()) {
      if (share.local === 0) continue;
      share.written = undefined;
      any = true;
    }
    if (any) this.#scheduleFlush();
  }

  async #refresh(): Promise<void> {
    try {
      const commands = await this.#commands();
      const apps = new Set([...this.#shares.values()].map((share) => share.appId));
      const known = await Promise.all([...apps].map((appId) => commands.chorusNodeRefresh(appKeys(appId, this.#nodeId).nodes, this.#nodeId, this.#nodeTtlMs)));
      const swept = [...apps].filter((appId, i) => Number(known[i]) === 0 && this.#registered.has(appId));
      if (swept.length > 0) {
        this.#log.warn({ shares: this.#shares.size, apps: swept }, 'this node\'s counts were swept while it could not reach redis; writing them again');
        this.#rewriteAll();
      }
      for (const appId of apps) this.#registered.add(appId);
      // Writes that failed while Redis was away are retried here.
      if ([...this.#shares.values()].some((share) => share.written !== share.local)) this.#scheduleFlush();
    } catch {
      // Redis away: the engine logs the outage; the next refresh retries.
    }
  }

  async #sweep(): Promise<void> {
    try {
      const commands = await this.#commands();
      const apps = await commands.smembers(APPS_KEY);
      const changes = (await Promise.all(apps.map((appId) => commands.chorusCountSweep(appKeys(appId, '').nodes, SWEEP_BATCH, appId)))).flat();
      for (let i = 0; i + 4 < changes.length; i += 5) {
        this.#report(String(changes[i]), String(changes[i + 1]) as CountSpace, String(changes[i + 2]), Number(changes[i + 3]), Number(changes[i + 4]));
      }
      if (changes.length > 0) this.#log.info({ counts: changes.length / 5 }, 'counts of a node that stopped refreshing (it died or lost redis) removed');
    } catch {
      // Redis away: the next sweep retries.
    }
  }

  #report(appId: string, space: CountSpace, name: string, before: number, after: number): void {
    if (before === after) return;
    try {
      this.#onChange({ appId, space, name, before, after });
    } catch (error) {
      this.#log.error({ err: error }, 'count change handler failed');
    }
  }
}

/** HSCAN MATCH is a glob: the prefix's own glob characters are matched literally. */
function globEscape(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}
