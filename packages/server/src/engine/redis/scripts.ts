/**
 * The Lua scripts of the Redis engine. Each runs atomically in Redis, which is what makes the
 * guarantees hold across nodes: an offset is assigned, stored in the stream and published in one
 * step, so every node sees offsets in order and history never disagrees with what was delivered.
 *
 * Keys of one channel share the hash tag `{app:channel}`, so the scripts also work on Redis
 * Cluster. Times come from Redis (`TIME`), the one clock all nodes share.
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
 * KEYS: meta, stream, msgId key (any key of the channel when there is no msgId).
 * ARGV: pub/sub channel, header fields (`,"k":…`), payload, history size, history TTL (s),
 * meta TTL (s), a fresh epoch, has msgId ('1'/'0').
 * Returns {offset, epoch, duplicate (0/1)}.
 */
export const PUBLISH = `${ENSURE_EPOCH.replace('ARGV_NEW_EPOCH', 'ARGV[7]')}
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
 * Returns {epoch, offset, entries}: entries after `since` oldest first, or the latest newest first.
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
return {epoch, offset, entries}`;

/** Drops members whose node stopped refreshing them (it died). KEYS: zset (id → expiry), hash (id → member). */
const DROP_EXPIRED = `${NOW_MS}
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for _, id in ipairs(expired) do redis.call('HDEL', KEYS[2], id) end
if #expired > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now) end`;

/** ARGV: connection id, member JSON, TTL (ms), max members, key TTL (s). Returns the roster, or nil when full. */
export const PRESENCE_JOIN = `${DROP_EXPIRED}
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return false end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[5])
return redis.call('HVALS', KEYS[2])`;

/** ARGV: connection id. Returns the roster after the leave. */
export const PRESENCE_LEAVE = `${DROP_EXPIRED}
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return redis.call('HVALS', KEYS[2])`;

export const PRESENCE_MEMBERS = `${DROP_EXPIRED}
return redis.call('HVALS', KEYS[2])`;

/** ARGV: connection id, TTL (ms), key TTL (s). Extends a live member's expiry (XX: never resurrects one). */
export const PRESENCE_REFRESH = `${NOW_MS}
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return 1`;
