"""Call markers in Redis (router.paid_answers): their keys and the Lua scripts that write,
renew, drop and claim them.

A marker is a call's lease (in LEASES, scored by its expiry) and the ledger event to book if
the call is lost (in EVENTS). Both keys share one hash tag, so that each script stays in
one Redis Cluster slot.
"""

from __future__ import annotations

from router.keys import PREFIX

CALLS_TAG = "{calls}"
"""Hash tag of the call markers: every script here touches both of them, so one slot."""
LEASES = f"{PREFIX}{CALLS_TAG}:leases"
"""Sorted set of calls at a provider, scored by lease expiry (Redis ms)."""
EVENTS = f"{PREFIX}{CALLS_TAG}:events"
"""Hash of call id to the encoded ledger event to book if that call is lost: one event, or
a list of them, one per request the call serves (a packed call's items)."""

BEGIN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return 1
"""
"""Write a call's marker: KEYS LEASES, EVENTS; ARGV call id, lease ms, lost event(s)."""
RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZADD', KEYS[1], 'XX', 'CH', now + tonumber(ARGV[2]), ARGV[1])
"""
"""Extend a running call's lease, if it still has one: KEYS LEASES; ARGV call id, lease ms."""
DROP = """
redis.call('ZREM', KEYS[1], ARGV[1])
return redis.call('HDEL', KEYS[2], ARGV[1])
"""
"""Drop a call's marker: KEYS LEASES, EVENTS; ARGV call id. 0 when a reaper claimed it."""
CLAIM = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local out = {}
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  local event = redis.call('HGET', KEYS[2], id)
  redis.call('HDEL', KEYS[2], id)
  if event then out[#out + 1] = event end
end
return out
"""
"""Take up to ARGV[1] markers whose lease expired: KEYS LEASES, EVENTS; their events."""
