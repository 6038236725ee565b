"""Lua scripts of provider health and rate limits: each runs atomically in Redis.

Each reads the time from its last ARGV when one is given (milliseconds; tests pass a fixed
clock), and from Redis TIME otherwise, so every replica shares Redis's clock in production.

RECORD and ACQUIRE run the state machine of router.health.breaker, so that every replica
sees one state per provider+model; TAKE is a token bucket pair (requests and tokens per
minute) shared by every replica, that also honours a 429's retry-after (the pause key).
"""

from __future__ import annotations


def _now(arg: int) -> str:
    """Lua that sets `now` (ms) from ARGV[arg] when it is given and not empty, else TIME."""
    return f"""
local now = tonumber(ARGV[{arg}] or '')
if not now then
  local clock = redis.call('TIME')
  now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
end
"""


RECORD = (
    _now(14)
    + """
-- KEYS: stats, index. ARGV: provider, model, outcome (ok|fail|rate_limited|neutral),
-- latency_ms, alpha, failures, error_rate, min_calls, cooldown_ms, cost,
-- error, input_tokens, output_tokens, [now_ms]. Returns the breaker state after the call.
-- (Answer quality is not kept here: router.routing.quality_store has the one figure.)
local key = KEYS[1]
local outcome = ARGV[3]
local alpha = tonumber(ARGV[5])
local function ewma(field, value)
  local previous = redis.call('HGET', key, field)
  if previous then value = alpha * value + (1 - alpha) * tonumber(previous) end
  redis.call('HSET', key, field, tostring(value))
  return value
end
redis.call('HSET', key, 'provider', ARGV[1], 'model', ARGV[2], 'last_ms', math.floor(now))
redis.call('SADD', KEYS[2], key)
local state = redis.call('HGET', key, 'state') or 'closed'
if outcome == 'ok' then
  redis.call('HINCRBY', key, 'ok', 1)
  redis.call('HINCRBY', key, 'judged', 1)
  ewma('latency_ms', tonumber(ARGV[4]))
  ewma('error_rate', 0)
  redis.call('HSET', key, 'consecutive', 0)
  if state == 'half_open' then
    state = 'closed'
    redis.call('HSET', key, 'state', state, 'closed_ms', math.floor(now))
  end
elseif outcome == 'fail' then
  redis.call('HINCRBY', key, 'failures', 1)
  local judged = redis.call('HINCRBY', key, 'judged', 1)
  local consecutive = redis.call('HINCRBY', key, 'consecutive', 1)
  local rate = ewma('error_rate', 1)
  redis.call('HSET', key, 'last_error', ARGV[11])
  local opens = state == 'half_open' or (state == 'closed' and (
    consecutive >= tonumber(ARGV[6])
    or (judged >= tonumber(ARGV[8]) and rate >= tonumber(ARGV[7]))))
  if opens then
    state = 'open'
    redis.call('HSET', key, 'state', state, 'opened_ms', math.floor(now),
      'reopen_ms', math.floor(now + tonumber(ARGV[9])))
    redis.call('HINCRBY', key, 'opened', 1)
  end
elseif outcome == 'rate_limited' then
  redis.call('HINCRBY', key, 'rate_limited', 1)
else
  redis.call('HINCRBY', key, 'neutral', 1)
end
local cost = tonumber(ARGV[10])
if cost > 0 then redis.call('HINCRBY', key, 'cost_micro_usd', cost) end
local tokens_in, tokens_out = tonumber(ARGV[12]), tonumber(ARGV[13])
if tokens_in > 0 then redis.call('HINCRBY', key, 'input_tokens', tokens_in) end
if tokens_out > 0 then redis.call('HINCRBY', key, 'output_tokens', tokens_out) end
return state
"""
)

ACQUIRE = (
    _now(2)
    + """
-- KEYS: stats. ARGV: lease_ms, [now_ms]. Returns {allowed (0|1), state, ms until it may allow}.
local key = KEYS[1]
local state = redis.call('HGET', key, 'state')
if not state or state == 'closed' then return {1, 'closed', 0} end
if state == 'open' then
  local reopen = tonumber(redis.call('HGET', key, 'reopen_ms') or '0')
  if now < reopen then return {0, 'open', math.ceil(reopen - now)} end
else
  local lease = tonumber(redis.call('HGET', key, 'probe_until_ms') or '0')
  if now < lease then return {0, 'half_open', math.ceil(lease - now)} end
end
redis.call('HSET', key, 'state', 'half_open', 'probe_until_ms', math.floor(now + tonumber(ARGV[1])))
return {1, 'half_open', 0}
"""
)

TAKE = (
    _now(4)
    + """
-- KEYS: bucket, pause. ARGV: requests_per_min (0 none), tokens_per_min (0 none), tokens,
-- [now_ms].
-- Takes one request and the tokens from the buckets and returns 0, or takes nothing and
-- returns the milliseconds until both would have room (or the pause is over).
local paused = redis.call('PTTL', KEYS[2])
if paused > 0 then return paused end
local rpm, tpm, tokens = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if rpm <= 0 and tpm <= 0 then return 0 end
local key = KEYS[1]
local since = tonumber(redis.call('HGET', key, 'ts') or now)
local elapsed = math.max(now - since, 0)
local wait = 0
local function level(field, limit, need)
  if limit <= 0 then return 0, 0 end
  local current = tonumber(redis.call('HGET', key, field) or limit)
  current = math.min(limit, current + elapsed * limit / 60000)
  need = math.min(need, limit)  -- a call bigger than the bucket goes when it is full
  if current < need then wait = math.max(wait, (need - current) * 60000 / limit) end
  return current, need
end
local requests, request_need = level('r', rpm, 1)
local token_level, token_need = level('t', tpm, tokens)
if wait > 0 then return math.ceil(wait) end
redis.call('HSET', key, 'r', tostring(requests - request_need),
  't', tostring(token_level - token_need), 'ts', tostring(now))
redis.call('PEXPIRE', key, 120000)
return 0
"""
)

PAUSE = """
-- KEYS: pause. ARGV: ms. Lengthens the pause to ms from now, never shortens it.
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
return 0
"""
