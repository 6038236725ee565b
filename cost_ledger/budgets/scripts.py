"""The Redis Lua scripts of the budgets: each one atomic, shared by every replica.

Time is Redis's own (TIME), so replicas on different hosts agree on when a reservation expires.
Every script first releases up to SWEEP_BATCH expired reservations (their requests died), so
no sweeper process is needed: any replica's next call cleans up after a dead one.
RESERVE answers a Code first, then (for DENIED and WAIT) the counter's index, spent and
reserved.
"""

from __future__ import annotations

import enum

SWEEP_BATCH = 100


class Code(enum.IntEnum):
    """What RESERVE answered."""

    RESERVED = 0
    DENIED = 1
    """Settled spend plus this request's maximum would pass a limit: no waiting helps."""
    SETTLED = 2
    """The request id was settled before (a redelivery after its result was paid)."""
    HELD = 3
    """The request id holds a reservation already (a redelivery while it stands), grown to
    this delivery's maximum where a booking had taken part of it."""
    WAIT = 4
    """It would fit once in-flight reservations settle: try again soon."""
    NOT_READY = 5
    """The counters are not trustworthy (Redis was flushed): wait for a rebuild."""
    NOT_HELD = 6
    """EXTEND: the request id holds no reservation (it settled, or expired), so none grows."""


_PRELUDE = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function release(key)
  local held = redis.call('HGETALL', key)
  for k = 1, #held, 2 do
    local amount = tonumber(held[k + 1])
    -- (a part given back can leave 0; Lua's -0 reaches HINCRBY as "-0", not an integer;
    -- a field starting with ~ is a mark, not a counter)
    if amount ~= 0 and string.sub(held[k], 1, 1) ~= '~' and redis.call('EXISTS', held[k]) == 1 then
      redis.call('HINCRBY', held[k], 'reserved', -amount)
    end
  end
  redis.call('DEL', key)
end
local function sweep(zset, prefix, now)
  local ids = redis.call('ZRANGEBYSCORE', zset, '-inf', now, 'LIMIT', 0, SWEEP_BATCH)
  for _, id in ipairs(ids) do
    release(prefix .. id)
    redis.call('ZREM', zset, id)
  end
  return #ids
end
""".replace("SWEEP_BATCH", str(SWEEP_BATCH))

RESERVE = (
    _PRELUDE
    + """
-- KEYS: 1 reservations zset, 2 this reservation, 3 settled marker, 4 ready marker, 5.. counters
-- ARGV: 1 request id, 2 ttl ms, 3 reservation key prefix; per counter: limit, amount, expire-at
local now = now_ms()
sweep(KEYS[1], ARGV[3], now)
if redis.call('EXISTS', KEYS[4]) == 0 then return {5} end
if redis.call('EXISTS', KEYS[3]) == 1 then return {2} end
if redis.call('EXISTS', KEYS[2]) == 1 then
  -- A redelivery while the earlier delivery's reservation stands. A call of that delivery
  -- booked at its bound took its cost off it (SETTLE's reserved_by give-back), so it may
  -- hold less than this delivery's maximum: grown back to it here, all counters or none,
  -- refused (1) or told to wait (4) as a new reservation would be. Marked taken over
  -- (the ~adopted mark): a give-back arriving from now on is skipped (see GIVE_BACK).
  local grow = {}
  for i = 5, #KEYS do
    local a = 4 + (i - 5) * 3
    local limit, amount = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
    local need = amount - tonumber(redis.call('HGET', KEYS[2], KEYS[i]) or '0')
    if need > 0 then
      local v = redis.call('HMGET', KEYS[i], 'spent', 'reserved')
      local spent, reserved = tonumber(v[1] or 0), tonumber(v[2] or 0)
      if spent + amount > limit then return {1, i - 4, spent, reserved} end
      if spent + reserved + need > limit then return {4, i - 4, spent, reserved} end
      grow[#grow + 1] = {i, need, ARGV[a + 2]}
    end
  end
  for _, g in ipairs(grow) do
    redis.call('HINCRBY', KEYS[g[1]], 'reserved', g[2])
    redis.call('EXPIREAT', KEYS[g[1]], g[3])
    redis.call('HINCRBY', KEYS[2], KEYS[g[1]], g[2])
  end
  redis.call('HSET', KEYS[2], '~adopted', 1)
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
  return {3}
end
local wait = nil
for i = 5, #KEYS do
  local a = 4 + (i - 5) * 3
  local limit, amount = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  local v = redis.call('HMGET', KEYS[i], 'spent', 'reserved')
  local spent, reserved = tonumber(v[1] or 0), tonumber(v[2] or 0)
  if spent + amount > limit then return {1, i - 4, spent, reserved} end
  if wait == nil and spent + reserved + amount > limit then
    wait = {4, i - 4, spent, reserved}
  end
end
if wait then return wait end
for i = 5, #KEYS do
  local a = 4 + (i - 5) * 3
  redis.call('HINCRBY', KEYS[i], 'reserved', ARGV[a + 1])
  redis.call('EXPIREAT', KEYS[i], ARGV[a + 2])
  redis.call('HSET', KEYS[2], KEYS[i], ARGV[a + 1])
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return {0}
"""
)

EXTEND = (
    _PRELUDE
    + """
-- Grow a standing reservation, all counters or none (a fallback, an escalation or a retry
-- will spend more than was reserved). No waiting: it fits now or it is denied.
-- KEYS: 1 reservations zset, 2 this reservation, 3.. counters
-- ARGV: 1 request id, 2 ttl ms, 3 reservation key prefix; per counter: limit, amount, expire-at
local now = now_ms()
sweep(KEYS[1], ARGV[3], now)
if redis.call('EXISTS', KEYS[2]) == 0 then return {6} end
for i = 3, #KEYS do
  local a = 4 + (i - 3) * 3
  local limit, amount = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  local v = redis.call('HMGET', KEYS[i], 'spent', 'reserved')
  local spent, reserved = tonumber(v[1] or 0), tonumber(v[2] or 0)
  if spent + reserved + amount > limit then return {1, i - 2, spent, reserved} end
end
for i = 3, #KEYS do
  local a = 4 + (i - 3) * 3
  redis.call('HINCRBY', KEYS[i], 'reserved', ARGV[a + 1])
  redis.call('EXPIREAT', KEYS[i], ARGV[a + 2])
  redis.call('HINCRBY', KEYS[2], KEYS[i], ARGV[a + 1])
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return {0}
"""
)

SHRINK = """
-- Undo an EXTEND of this group (another group refused its part): the amounts come off the
-- counters and the reservation again. KEYS: 1 this reservation, 2.. counters
-- ARGV: per counter, the amount EXTEND added.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for i = 2, #KEYS do
  if redis.call('HEXISTS', KEYS[1], KEYS[i]) == 1 then
    redis.call('HINCRBY', KEYS[i], 'reserved', -tonumber(ARGV[i - 1]))
    redis.call('HINCRBY', KEYS[1], KEYS[i], -tonumber(ARGV[i - 1]))
  end
end
return 1
"""

GIVE_BACK = """
-- A part of a request's reservation was spent by a booking settled under another id (a
-- call booked at its bound: cost_ledger settles it into spent at once): take that part off
-- the reservation, so the same micro-dollars are not counted both as spent and as reserved.
-- Never below what this request holds in a counter. Skipped once a redelivery took the
-- reservation over (RESERVE's HELD): that delivery counts on the room it found, so a late
-- give-back would hand its room to other requests; the booking's room is then held twice
-- until the request settles (never spent twice). KEYS: 1 this reservation, 2.. counters
-- ARGV: 1 amount. Returns 0 when the request holds no reservation here, or it was taken over.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HEXISTS', KEYS[1], '~adopted') == 1 then return 0 end
local amount = tonumber(ARGV[1])
for i = 2, #KEYS do
  local held = tonumber(redis.call('HGET', KEYS[1], KEYS[i]) or '0')
  local take = math.min(amount, held)
  if take > 0 then
    redis.call('HINCRBY', KEYS[i], 'reserved', -take)
    redis.call('HINCRBY', KEYS[1], KEYS[i], -take)
  end
end
return 1
"""

SETTLE = (
    _PRELUDE
    + """
-- KEYS: 1 reservations zset, 2 this reservation, 3 settled marker, 4.. charged counters
-- ARGV: 1 request id, 2 settled-marker ttl s, 3 reservation key prefix, 4 mode (p | f),
--       5 cost, 6 messages; per counter: kind (u: micro-dollars | m: messages), expire-at
-- The marker keeps what was settled: "<mode>:<cost>:<messages>". A provisional settle (the
-- router's, right after the answer) applies only if none came before; a final one (from the
-- ledger event) also corrects a provisional one that charged a different amount, so the
-- counters always end equal to the ledger (a final one confirming a provisional one of the
-- same amount only marks it final).
-- Returns {0, held} when no counter changed, else {1 (first) or 2 (corrected), held, spent
-- per counter}; held is 1 when the request's reservation still stood (it had not expired).
local now = now_ms()
sweep(KEYS[1], ARGV[3], now)
local held = redis.call('EXISTS', KEYS[2])
release(KEYS[2])
redis.call('ZREM', KEYS[1], ARGV[1])
local cost, messages = tonumber(ARGV[5]), tonumber(ARGV[6])
local mark = ARGV[4] .. ':' .. ARGV[5] .. ':' .. ARGV[6]
local code = 1
local before = redis.call('GET', KEYS[3])
if before then
  if ARGV[4] ~= 'f' or string.sub(before, 1, 1) ~= 'p' then return {0, held} end
  local old_cost, old_messages = string.match(before, '^p:(-?%d+):(-?%d+)$')
  if not old_cost then return {0, held} end
  cost = cost - tonumber(old_cost)
  messages = messages - tonumber(old_messages)
  redis.call('SET', KEYS[3], mark, 'KEEPTTL')
  if cost == 0 and messages == 0 then return {0, held} end
  code = 2
else
  redis.call('SET', KEYS[3], mark, 'EX', ARGV[2])
end
local out = {code, held}
for i = 4, #KEYS do
  local a = 7 + (i - 4) * 2
  local amount = cost
  if ARGV[a] == 'm' then amount = messages end
  if amount ~= 0 then
    out[#out + 1] = redis.call('HINCRBY', KEYS[i], 'spent', amount)
    redis.call('EXPIREAT', KEYS[i], ARGV[a + 1])
  else
    out[#out + 1] = tonumber(redis.call('HGET', KEYS[i], 'spent') or 0)
  end
end
return out
"""
)

RELEASE = (
    _PRELUDE
    + """
-- KEYS: 1 reservations zset, 2 this reservation; ARGV: 1 request id, 2 reservation key prefix
sweep(KEYS[1], ARGV[2], now_ms())
local held = redis.call('EXISTS', KEYS[2])
release(KEYS[2])
redis.call('ZREM', KEYS[1], ARGV[1])
return held
"""
)

KEEPALIVE = """
-- KEYS: 1 reservations zset, 2 this reservation; ARGV: 1 request id, 2 ttl ms
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
return 1
"""

SWEEP = (
    _PRELUDE
    + """
-- KEYS: 1 reservations zset; ARGV: 1 reservation key prefix. Returns how many were released.
return sweep(KEYS[1], ARGV[1], now_ms())
"""
)

APPLY_CONFIG = """
-- KEYS: 1 config hash, 2 config rev, 3 marker (applied change, or unused for a seed)
-- ARGV: 1 mode (seed | change), 2 new rev, 3 replace all (1 | 0), 4 number of fields set;
--       then (field, value) pairs to set, then fields to delete.
-- A seed applies only when there is no live config; a change only once per change id.
if ARGV[1] == 'seed' then
  if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
elseif not redis.call('SET', KEYS[3], '1', 'NX') then
  return 0
end
if ARGV[3] == '1' then redis.call('DEL', KEYS[1]) end
local n = tonumber(ARGV[4])
for i = 5 + 2 * n, #ARGV do
  redis.call('HDEL', KEYS[1], ARGV[i])
end
for i = 0, n - 1 do
  redis.call('HSET', KEYS[1], ARGV[5 + 2 * i], ARGV[6 + 2 * i])
end
redis.call('SET', KEYS[2], ARGV[2])
return 1
"""
