/**
 * The Lua scripts of the Redis engine. Each runs atomically in Redis, which is what makes the
 * guarantees hold across nodes: an offset is assigned, stored in the stream and published in one
 * step, so every node sees offsets in order and history never disagrees with what was delivered.
 *
 * Every script touches the keys of one channel only, which share the hash tag `{app:channel}`:
 * one hash slot, so they run on Redis Cluster as on one Redis. Their PUBLISH goes to the channel's
 * pub/sub channel, given by the engine (layout.ts): on Redis Cluster the engine swaps it for
 * SPUBLISH (withPublishCommand) and names the channel with the same tag, as a script's shard
 * channel must be in its slot. Times come from Redis (`TIME`), the one clock all nodes share.
 */

const NOW_MS = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/** A missing epoch means the history was lost (or never existed): start a new one, and drop any stale stream. */
const ENSURE_EPOCH = `local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV_NEW_EPOCH
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'offset', 0)
end`;

/**
 * A channel last written under another primary (its `rid`, Redis's master_replid, differs): a
 * failover happened, and asynchronous replication may have lost the last acknowledged writes,
 * whose offsets this primary would assign again to other publications. So a new epoch begins,
 * and the old one is kept as `prev_epoch` up to `prev_offset`, what this primary holds of it:
 * a client resuming from there or before recovers (HISTORY), one that saw a lost write hears
 * `recovered: false` instead of missing the reused offsets silently. No primary id (''): not
 * checked.
 */
const NEW_EPOCH_AFTER_FAILOVER = `if ARGV[9] ~= '' then
  local rid = redis.call('HGET', KEYS[1], 'rid')
  if rid ~= ARGV[9] then
    if rid then
      local kept = redis.call('HGET', KEYS[1], 'offset')
      redis.call('HSET', KEYS[1], 'epoch', ARGV[7], 'prev_epoch', epoch, 'prev_offset', kept)
      epoch = ARGV[7]
    end
    redis.call('HSET', KEYS[1], 'rid', ARGV[9])
  end
end`;

/**
 * KEYS: meta, stream, msgId key (any key of the channel when there is no msgId).
 * ARGV: pub/sub channel, header fields (`,"k":…`), payload, history size, history TTL (s),
 * meta TTL (s), a fresh epoch, has msgId ('1'/'0'), the primary's id ('' unknown).
 * Returns {offset, epoch, duplicate (0/1)}.
 */
export const PUBLISH = `${ENSURE_EPOCH.replace('ARGV_NEW_EPOCH', 'ARGV[7]')}
${NEW_EPOCH_AFTER_FAILOVER}
if ARGV[8] == '1' then
  local seen = redis.call('GET', KEYS[3])
  if seen then return {tonumber(seen), epoch, 1} end
end
local offset = redis.call('HINCRBY', KEYS[1], 'offset', 1)
redis.call('EXPIRE', KEYS[1], ARGV[6])
${NOW_MS}
local message = '{"off":' .. offset .. ',"ep":"' .. epoch .. '","t":' .. now .. ARGV[2] .. '}\\n' .. ARGV[3]
if tonumber(ARGV[4]) > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[4], offset .. '-0', 'm', message)
  redis.call('EXPIRE', KEYS[2], ARGV[5])
end
if ARGV[8] == '1' then redis.call('SET', KEYS[3], offset, 'EX', ARGV[5]) end
redis.call('PUBLISH', ARGV[1], message)
return {offset, epoch, 0}`;

/**
 * KEYS: meta, stream. ARGV: a fresh epoch, meta TTL (s), since offset ('-1' for the latest), limit.
 * Returns {epoch, offset, entries, prev_epoch, prev_offset}: entries after `since` oldest first,
 * or the latest newest first; the epoch before the last failover and how far this primary holds
 * it ('' without one, see NEW_EPOCH_AFTER_FAILOVER).
 */
export const HISTORY = `${ENSURE_EPOCH.replace('ARGV_NEW_EPOCH', 'ARGV[1]')}
redis.call('EXPIRE', KEYS[1], ARGV[2])
local offset = redis.call('HGET', KEYS[1], 'offset')
local entries
if ARGV[3] == '-1' then
  entries = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', ARGV[4])
else
  entries = redis.call('XRANGE', KEYS[2], (tonumber(ARGV[3]) + 1) .. '-0', '+', 'COUNT', ARGV[4])
end
local prev = redis.call('HMGET', KEYS[1], 'prev_epoch', 'prev_offset')
return {epoch, offset, entries, prev[1] or '', prev[2] or ''}`;

/** The scripts for a pub/sub flavour: 'SPUBLISH' on Redis Cluster (sharded pub/sub). */
export function withPublishCommand(lua: string, command: 'PUBLISH' | 'SPUBLISH'): string {
  return lua.replaceAll("redis.call('PUBLISH',", `redis.call('${command}',`);
}

/**
 * Presence: per channel a sorted set (connection id → expiry) and a hash (connection id → member
 * value `{"j":joinMs,"m":memberJSON}`, written by the engine in exactly that form, which
 * PRESENCE_SWEEP parses). One index of every member's expiry across channels
 * (`{app:channel}connectionId` → expiry) lets a sweep find ghosts without scanning keys; it lives
 * in another slot, so the engine writes it with its own commands after each script (presence.ts),
 * and these scripts touch the channel's keys only.
 *
 * A member whose expiry passed is gone for every script at once (not listed, not counted, not
 * refreshed), but only PRESENCE_SWEEP removes it, and it announces what it removes in the same
 * step: a member never vanishes without a leave event, and never gets two.
 */
const LIVE_ROSTER = `local function live(presence, members, now)
  local expired = redis.call('ZRANGEBYSCORE', presence, '-inf', now)
  if #expired == 0 then return redis.call('HVALS', members) end
  local gone = {}
  for _, id in ipairs(expired) do gone[id] = true end
  local all = redis.call('HGETALL', members)
  local out = {}
  for i = 1, #all, 2 do
    if not gone[all[i]] then out[#out + 1] = all[i + 1] end
  end
  return out
end`;

/**
 * KEYS: zset, hash. ARGV: connection id, member value, TTL (ms), max members, key TTL (s).
 * Returns {expiry, roster}, or nil when full.
 */
export const PRESENCE_JOIN = `${NOW_MS}
${LIVE_ROSTER}
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
local present = score and tonumber(score) > now
if not present and redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf') >= tonumber(ARGV[4]) then return false end
local expiry = now + tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], expiry, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[5])
return {expiry, live(KEYS[1], KEYS[2], now)}`;

/**
 * KEYS: zset, hash. ARGV: connection id. Returns the roster after the leave, or nil when the
 * member was not there (a sweep removed and announced it: no second leave).
 */
export const PRESENCE_LEAVE = `${NOW_MS}
${LIVE_ROSTER}
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
if removed == 0 then return false end
return live(KEYS[1], KEYS[2], now)`;

/** KEYS: zset, hash. */
export const PRESENCE_MEMBERS = `${NOW_MS}
${LIVE_ROSTER}
return live(KEYS[1], KEYS[2], now)`;

/**
 * KEYS: zset, hash. ARGV: connection id, TTL (ms), key TTL (s). Extends a live member's expiry
 * and returns it; returns 0 for one that is gone or expired (never resurrects it: the sweep
 * announces it as left).
 */
export const PRESENCE_REFRESH = `${NOW_MS}
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) <= now then return 0 end
local expiry = now + tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], expiry, ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return expiry`;

/**
 * Removes a channel's expired members (their node stopped refreshing them: it died, or lost
 * Redis for presenceTtlMs) and PUBLISHes a presence 'left' for each, in the codec's format
 * (codec.ts), on the channel's pub/sub channel. Removal and announcement are one atomic step, so
 * of all the nodes sweeping, exactly one announces each member, and a node dying right after its
 * sweep cannot lose an announcement.
 *
 * Each leave carries the roster after it, in which the members not announced yet are still
 * listed: the second-to-last tab of a user leaves with the last one listed, so a dialect that
 * shows users (Pusher) shows one leave.
 *
 * Every leave carries the whole roster, so the k ghosts of one channel cost O(k²) bytes, all
 * queued to subscribers while the script runs: 1000 members of 60 bytes is 30 MB, past Redis's
 * 32 MB pub/sub output limit, which would disconnect every subscriber and lose it all. So a call
 * publishes about the byte budget at most (at least one leave), and the rest waits, still listed
 * and still due, for the next call.
 *
 * KEYS: zset, hash. ARGV: app, channel, pub/sub channel, byte budget, then the connection ids
 * the caller's index lists as due. Returns {members announced, bytes published, 1 when no ghost
 * is left, then per given id its expiry now, or 0 when it is gone} (the caller settles its index).
 */
export const PRESENCE_SWEEP = `${NOW_MS}
${LIVE_ROSTER}
local presence, members = KEYS[1], KEYS[2]
local function parse(value)
  local j, m = string.match(value, '^{"j":(%d+),"m":(.*)}$')
  return tonumber(j) or 0, m
end
local function forget(id)
  redis.call('HDEL', members, id)
  redis.call('ZREM', presence, id)
end
local function sweep(budget)
  local expired = redis.call('ZRANGEBYSCORE', presence, '-inf', now)
  if #expired == 0 then return 0, 0, 1 end
  local entries = {}
  for _, value in ipairs(live(presence, members, now)) do
    local j, m = parse(value)
    if m then entries[#entries + 1] = { j = j, m = m, rank = 0 } end
  end
  local gone = {}
  for _, id in ipairs(expired) do
    local value = redis.call('HGET', members, id)
    local j, m
    if value then j, m = parse(value) end
    if m then
      local entry = { j = j, m = m, id = id, rank = #gone + 1 }
      gone[#gone + 1] = entry
      entries[#entries + 1] = entry
    else
      forget(id) -- nothing to announce
    end
  end
  table.sort(entries, function(x, y) return x.j < y.j end)
  local listed = 0
  for _, entry in ipairs(entries) do listed = listed + #entry.m + 1 end
  local prefix = '{"k":"p","a":' .. cjson.encode(ARGV[1]) .. ',"c":' .. cjson.encode(ARGV[2]) .. ',"act":"left","o":'
  local spent = 0
  for rank, leaver in ipairs(gone) do
    listed = listed - #leaver.m - 1
    local size = #prefix + #leaver.id + #leaver.m + listed + 16
    if spent > 0 and spent + size > budget then return rank - 1, spent, 0 end
    forget(leaver.id)
    local roster = {}
    for _, entry in ipairs(entries) do
      if entry.rank == 0 or entry.rank > rank then roster[#roster + 1] = entry.m end
    end
    redis.call('PUBLISH', ARGV[3], prefix .. cjson.encode(leaver.id) .. ',"m":' .. leaver.m .. ',"ms":[' .. table.concat(roster, ',') .. ']}\\n')
    spent = spent + size
  end
  return #gone, spent, 1
end
local announced, spent, done = sweep(tonumber(ARGV[4]))
local out = {announced, spent, done}
for i = 5, #ARGV do out[#out + 1] = tonumber(redis.call('ZSCORE', presence, ARGV[i]) or 0) end
return out`;

/**
 * The presence index (see above). KEYS: index. ARGV: at most this many. Returns the entries due
 * by Redis's clock, with their scores, as a flat list.
 */
export const PRESENCE_INDEX_DUE = `${NOW_MS}
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[1]))`;

/**
 * Brings index entries in step with their channels after a sweep. KEYS: index. ARGV: triples of
 * entry, the score the sweep read, the channel's expiry now (0: gone). An entry rewritten since
 * the sweep read it (its member joined again or was refreshed) is left alone, so a leave of an
 * old membership never drops the index entry of a new one.
 */
export const PRESENCE_INDEX_SETTLE = `for i = 1, #ARGV, 3 do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) == tonumber(ARGV[i + 1]) then
    if tonumber(ARGV[i + 2]) > 0 then redis.call('ZADD', KEYS[1], ARGV[i + 2], ARGV[i]) else redis.call('ZREM', KEYS[1], ARGV[i]) end
  end
end
return 0`;
