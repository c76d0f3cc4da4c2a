/**
 * Presence on Redis: a sorted set of member expiries plus a hash of members per channel (in the
 * channel's hash slot, scripts.ts), and one index of all member expiries, so a sweep finds ghosts
 * without scanning keys. Each node refreshes its own members, so a crashed node's members expire
 * within presenceTtlMs; every node sweeps the index a few times per presenceTtlMs, and the sweep
 * removes a channel's expired members and announces each one's leave in one atomic step, so every
 * dialect's subscribers on every node see the ghost leave, exactly once.
 *
 * The index (`chorus:presence:expiries`) is one key, in its own slot, which a script of a channel
 * cannot touch on Redis Cluster: the engine writes it with separate commands, after the channel's
 * script (join, refresh) or before nothing depends on it (leave). It only says when to look: the
 * channel's sorted set decides, and a sweep brings the index back in step with it (an entry of a
 * member that left is removed, a refreshed one moved). The one thing the split can lose is the
 * index entry of a member whose node died between its join script and the index write: that
 * member expires unlisted (no script shows it) but its leave is not announced.
 */
import type { Logger } from 'pino';
import type { Member } from '@chorus/protocol';
import type { RedisClient } from './layout.js';

/** Every member's expiry across channels (`{app:channel}connectionId` → expiry), for the sweep. */
const PRESENCE_INDEX_KEY = 'chorus:presence:expiries';
/** Index entries one sweep call reads; a sweep calls again while it gets this many (a node with many members died). */
const SWEEP_BATCH = 500;
/**
 * Leave publications one sweep call sends, in bytes (each carries the roster, see PRESENCE_SWEEP):
 * kept far below Redis's 32 MB pub/sub output limit, which Redis applies while a script runs.
 */
const SWEEP_BYTES_PER_CALL = 512 * 1024;
/** Calls per sweep at most (4 MB), then the rest after SWEEP_BACKLOG_DELAY_MS, so subscribers drain in between. */
const SWEEP_MAX_CALLS = 8;
const SWEEP_BACKLOG_DELAY_MS = 500;

/** Methods defineCommand adds (ioredis does not type them). */
export interface PresenceCommands {
  chorusPresenceJoin(...args: Array<string | number>): Promise<[number, string[]] | null>;
  chorusPresenceLeave(...args: Array<string | number>): Promise<string[] | null>;
  chorusPresenceMembers(...args: Array<string | number>): Promise<string[]>;
  chorusPresenceRefresh(...args: Array<string | number>): Promise<number>;
  chorusPresenceSweep(...args: Array<string | number>): Promise<number[]>;
  chorusPresenceIndexDue(...args: Array<string | number>): Promise<string[]>;
  chorusPresenceIndexSettle(...args: Array<string | number>): Promise<number>;
}

type Client = RedisClient & PresenceCommands;

/** A channel's presence keys and where its leaves are published. */
export interface PresenceKeys {
  readonly tag: string;
  readonly presence: string;
  readonly members: string;
  readonly pubsub: string;
}

export interface RedisPresenceOptions {
  readonly log: Logger;
  readonly presenceTtlMs: number;
  /** How long the channel's keys outlive their last use (s). */
  readonly keyTtlSeconds: number;
  readonly keysOf: (appId: string, channel: string) => PresenceKeys;
  /** The command connection once ready (rejects while Redis is away). */
  readonly commands: () => Promise<Client>;
  /** The command connection as it is (for timers that skip a round while Redis is away). */
  readonly client: Client;
  /** For `.catch`: Redis being away becomes EngineUnavailableError (a coded "try again" for clients). */
  readonly unavailable: (what: string) => (error: unknown) => never;
}

export class RedisPresence {
  readonly #options: RedisPresenceOptions;
  /** This node's members, refreshed periodically: index entry → where it is. */
  readonly #members = new Map<string, { appId: string; channel: string; connectionId: string }>();
  readonly #timers: NodeJS.Timeout[] = [];
  #sweepTimer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: RedisPresenceOptions) {
    this.#options = options;
    // Three refreshes per TTL: a live member survives two lost or late ones. (A floor of 1 s here
    // once let members of a 1 s TTL expire between refreshes, and the sweep announce them left.)
    this.#timers.push(setInterval(() => this.#refreshMembers(), Math.max(100, Math.floor(options.presenceTtlMs / 3))).unref());
    this.#scheduleSweep();
  }

  async join(appId: string, channel: string, connectionId: string, member: Member, maxMembers: number): Promise<Member[] | undefined> {
    const keys = this.#options.keysOf(appId, channel);
    const entry = keys.tag + connectionId;
    const commands = await this.#options.commands();
    const joined = await commands
      .chorusPresenceJoin(keys.presence, keys.members, connectionId, memberValue(member), this.#options.presenceTtlMs, maxMembers, this.#options.keyTtlSeconds)
      .catch(this.#options.unavailable('presence join'));
    if (!joined) return undefined;
    this.#members.set(entry, { appId, channel, connectionId });
    // Not awaited: if it fails, the next refresh writes it (the member is listed already).
    commands.zadd(PRESENCE_INDEX_KEY, joined[0], entry).catch(() => undefined);
    return parseRoster(joined[1]);
  }

  async leave(appId: string, channel: string, connectionId: string): Promise<Member[] | undefined> {
    const keys = this.#options.keysOf(appId, channel);
    const entry = keys.tag + connectionId;
    this.#members.delete(entry);
    const commands = await this.#options.commands();
    const roster = await commands.chorusPresenceLeave(keys.presence, keys.members, connectionId).catch(this.#options.unavailable('presence leave'));
    // A leftover entry would only cost a sweep a look; but a rejoin in between must keep its own.
    if (!this.#members.has(entry)) commands.zrem(PRESENCE_INDEX_KEY, entry).catch(() => undefined);
    return roster ? parseRoster(roster) : undefined;
  }

  async members(appId: string, channel: string): Promise<Member[]> {
    const keys = this.#options.keysOf(appId, channel);
    return parseRoster(await (await this.#options.commands()).chorusPresenceMembers(keys.presence, keys.members).catch(this.#options.unavailable('presence members')));
  }

  close(): void {
    this.#closed = true;
    for (const timer of this.#timers) clearInterval(timer);
    clearTimeout(this.#sweepTimer);
  }

  #refreshMembers(): void {
    const client = this.#options.client;
    if (client.status !== 'ready' || this.#members.size === 0) return;
    let lost = 0;
    const refreshes = [...this.#members].map(([entry, { appId, channel, connectionId }]) => {
      const keys = this.#options.keysOf(appId, channel);
      return client.chorusPresenceRefresh(keys.presence, keys.members, connectionId, this.#options.presenceTtlMs, this.#options.keyTtlSeconds).then(
        async (expiry) => {
          // Expired (this node could not refresh it for presenceTtlMs) or lost with Redis's data:
          // the sweep announced it left or nobody lists it; refreshing cannot bring it back.
          if (Number(expiry) === 0) {
            if (this.#members.delete(entry)) lost++;
            return;
          }
          await client.zadd(PRESENCE_INDEX_KEY, expiry, entry);
        },
        () => undefined,
      ).catch(() => undefined);
    });
    void Promise.all(refreshes).then(() => {
      if (lost > 0) this.#options.log.warn({ members: lost }, 'presence members of open connections expired (not refreshed within presenceTtlMs, or redis lost them); they stay unlisted until they subscribe again');
    });
  }

  /**
   * Every jittered quarter of presenceTtlMs (at most a third), so the nodes' sweeps spread out
   * instead of colliding: a dead node's member is announced within 1.33 × presenceTtlMs.
   */
  #scheduleSweep(backlog = false): void {
    if (this.#closed) return;
    const ttl = this.#options.presenceTtlMs;
    const delay = backlog ? SWEEP_BACKLOG_DELAY_MS : Math.max(100, Math.round((ttl / 4) * (0.75 + Math.random() * 0.5)));
    this.#sweepTimer = setTimeout(() => {
      void this.#sweep().then((more) => this.#scheduleSweep(more));
    }, delay).unref();
  }

  /** Resolves true when ghosts are left over for a sooner next sweep. */
  async #sweep(): Promise<boolean> {
    const client = this.#options.client;
    if (client.status !== 'ready') return false;
    let announced = 0;
    let more = false;
    try {
      for (let call = 0; call < SWEEP_MAX_CALLS; call++) {
        const due = await client.chorusPresenceIndexDue(PRESENCE_INDEX_KEY, SWEEP_BATCH);
        const result = await this.#sweepDue(client, due, SWEEP_BYTES_PER_CALL);
        announced += result.announced;
        more = due.length / 2 === SWEEP_BATCH || result.stopped;
        if (!more) break;
      }
    } catch (error) {
      this.#options.log.debug({ err: error }, 'presence sweep failed; the next one retries');
    }
    if (announced > 0) this.#options.log.info({ members: announced }, 'presence members whose node stopped refreshing them (it died or lost redis) announced as left');
    return more;
  }

  /** Sweeps the channels of the due index entries (flat entry, score list), one script per channel, within `budget` bytes. */
  async #sweepDue(client: Client, due: string[], budget: number): Promise<{ announced: number; stopped: boolean }> {
    const byTag = new Map<string, Array<{ entry: string; id: string; score: string }>>();
    const settle: Array<string | number> = [];
    for (let i = 0; i + 1 < due.length; i += 2) {
      const entry = due[i] as string;
      const score = due[i + 1] as string;
      const tag = /^\{[^}]*\}/.exec(entry)?.[0];
      if (!tag) {
        settle.push(entry, score, 0);
        continue;
      }
      const list = byTag.get(tag) ?? [];
      list.push({ entry, id: entry.slice(tag.length), score });
      byTag.set(tag, list);
    }
    let announced = 0;
    let spent = 0;
    let stopped = false;
    for (const [tag, entries] of byTag) {
      if (spent >= budget) {
        stopped = true;
        break;
      }
      // App ids and channel names hold no `:` or `}`, so the tag parses back (keysOf in index.ts).
      const [appId = '', channel = ''] = tag.slice(1, -1).split(/:(.*)/s);
      const keys = this.#options.keysOf(appId, channel);
      const [count = 0, bytes = 0, done = 1, ...expiries] = (await client.chorusPresenceSweep(keys.presence, keys.members, appId, channel, keys.pubsub, budget - spent, ...entries.map((e) => e.id))).map(Number);
      announced += count;
      spent += bytes;
      entries.forEach((e, i) => settle.push(e.entry, e.score, expiries[i] ?? 0));
      if (done === 0) {
        stopped = true;
        break;
      }
    }
    if (settle.length > 0) await client.chorusPresenceIndexSettle(PRESENCE_INDEX_KEY, ...settle);
    return { announced, stopped };
  }
}

/** The stored form PRESENCE_SWEEP parses with a pattern (it must not re-encode the member JSON). */
function memberValue(member: Member): string {
  return `{"j":${Date.now()},"m":${JSON.stringify(member)}}`;
}

function parseRoster(values: string[]): Member[] {
  return values
    .map((value) => JSON.parse(value) as { j: number; m: Member })
    .sort((a, b) => a.j - b.j)
    .map((entry) => entry.m);
}
