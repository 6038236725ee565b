"""Growing standing reservations: several requests' at once, one script per counter group.

A packed call's items grow their reservations together (router.context.cover), and a
fallback, an escalation or a retry grows one. Each request grows in every money counter of
its budgets, all or none; what it grows in one group it keeps only if every other group of it
grew too (compensation, as RESERVE's). No waiting: it fits now or it is refused.

EXTEND_MANY grows each request of one group in turn, in the order given (a later one sees the
earlier ones' growth in the counters, as if each had run its own script); the groups of a
batch are independent (one Redis Cluster slot each), so their scripts go together, in one
round trip. A request one group refused is shrunk again in the groups that grew it
(SHRINK_MANY, one script per such group), so the counters hold only whole growths.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from cost_ledger.budgets import keys
from cost_ledger.budgets.gate import Reservation
from cost_ledger.budgets.policy import Check
from cost_ledger.budgets.scripts import PRELUDE, Code

EXTEND_MANY = (
    PRELUDE
    + """
-- KEYS: 1 reservations zset; then per request: its reservation, its counters
-- ARGV: 1 ttl ms, 2 reservation key prefix; then per request: id, number of counters n,
--       and n triples (limit, amount, expire-at)
-- Returns 4 numbers per request: code (0 grown, 1 denied, 6 not held), then for a denial
-- the counter's index among the request's, its spent and its reserved (else 0 0 0).
local now = now_ms()
sweep(KEYS[1], ARGV[2], now)
local ttl = tonumber(ARGV[1])
local out = {}
local k, a = 2, 3
while a <= #ARGV do
  local id, n = ARGV[a], tonumber(ARGV[a + 1])
  local res = KEYS[k]
  local code, at, spent_at, reserved_at = 0, 0, 0, 0
  if redis.call('EXISTS', res) == 0 then
    code = 6
  else
    for i = 1, n do
      local b = a + 2 + (i - 1) * 3
      local limit, amount = tonumber(ARGV[b]), tonumber(ARGV[b + 1])
      local v = redis.call('HMGET', KEYS[k + i], 'spent', 'reserved')
      local spent, reserved = tonumber(v[1] or 0), tonumber(v[2] or 0)
      if spent + reserved + amount > limit then
        code, at, spent_at, reserved_at = 1, i, spent, reserved
        break
      end
    end
    if code == 0 then
      for i = 1, n do
        local b = a + 2 + (i - 1) * 3
        redis.call('HINCRBY', KEYS[k + i], 'reserved', ARGV[b + 1])
        redis.call('EXPIREAT', KEYS[k + i], ARGV[b + 2])
        redis.call('HINCRBY', res, KEYS[k + i], ARGV[b + 1])
      end
      redis.call('ZADD', KEYS[1], now + ttl, id)
    end
  end
  out[#out + 1] = code
  out[#out + 1] = at
  out[#out + 1] = spent_at
  out[#out + 1] = reserved_at
  k = k + 1 + n
  a = a + 2 + 3 * n
end
return out
"""
)

SHRINK_MANY = """
-- Undo EXTEND_MANY's growth of requests another group refused. KEYS: per request, its
-- reservation then its counters; ARGV: per request, its number of counters n, then n amounts.
local k, a = 1, 1
while a <= #ARGV do
  local n = tonumber(ARGV[a])
  local res = KEYS[k]
  if redis.call('EXISTS', res) == 1 then
    for i = 1, n do
      if redis.call('HEXISTS', res, KEYS[k + i]) == 1 then
        redis.call('HINCRBY', KEYS[k + i], 'reserved', -tonumber(ARGV[a + i]))
        redis.call('HINCRBY', res, KEYS[k + i], -tonumber(ARGV[a + i]))
      end
    end
  end
  k = k + 1 + n
  a = a + 1 + n
end
return 1
"""


@dataclass(frozen=True, kw_only=True)
class Growing:
    """One request's growth: its id and, group by group, the money counters to grow."""

    request_id: str
    groups: list[tuple[str, list[Check]]]
    """(group, the checks of its counters in that group, each with the amount to add)."""


_Part = tuple[int, list[Check]]
"""A request's index in the batch and its checks in one group."""


class Growth:
    """Grows standing reservations in Redis, a batch of requests at a time."""

    def __init__(self, redis: aioredis.Redis, ttl_ms: Callable[[], int]) -> None:
        """ttl_ms(): the reservation TTL a grown reservation is pushed back to."""
        self._extend = redis.register_script(EXTEND_MANY)
        self._shrink = redis.register_script(SHRINK_MANY)
        self._ttl_ms = ttl_ms

    async def grow(self, items: Sequence[Growing]) -> list[Reservation]:
        """Grow each item in every group of it, all or none per item; what each answered:
        RESERVED when it grew (or had nothing to grow), else its first group's refusal."""
        by_group: dict[str, list[_Part]] = {}
        for i, item in enumerate(items):
            for group, checks in item.groups:
                by_group.setdefault(group, []).append((i, checks))
        groups = list(by_group)
        replies = await asyncio.gather(
            *(self._extend_group(g, by_group[g], items) for g in groups), return_exceptions=True
        )
        refused: dict[int, tuple[int, Reservation]] = {}
        """Each refused item's first refusal in its groups' order (rank, what it answered)."""
        grown: dict[str, list[_Part]] = {}
        failure: BaseException | None = None
        for group, reply in zip(groups, replies, strict=True):
            if isinstance(reply, BaseException):  # taken as refused there: undo the rest
                failure = failure or reply
                reply = [Code.NOT_HELD, 0, 0, 0] * len(by_group[group])
            grown[group] = []
            for n, (i, checks) in enumerate(by_group[group]):
                code = Code(int(reply[4 * n]))
                if code is Code.RESERVED:
                    grown[group].append((i, checks))
                    continue
                rank = [g for g, _ in items[i].groups].index(group)
                if i not in refused or rank < refused[i][0]:
                    refused[i] = (rank, _refusal(code, checks, reply[4 * n : 4 * n + 4]))
        undo = {g: [p for p in parts if p[0] in refused] for g, parts in grown.items()}
        await asyncio.gather(*(self._shrink_group(g, parts, items) for g, parts in undo.items()))
        if failure is not None:
            raise failure
        done = Reservation(code=Code.RESERVED)
        return [refused[i][1] if i in refused else done for i in range(len(items))]

    async def _extend_group(
        self, group: str, parts: list[_Part], items: Sequence[Growing]
    ) -> list[Any]:
        """EXTEND_MANY in one group: four numbers per part (see the script)."""
        script_keys = [keys.reservations(group)]
        args: list[str | int] = [self._ttl_ms(), keys.reservation_prefix(group)]
        for i, checks in parts:
            request_id = items[i].request_id
            script_keys.append(keys.reservation(group, request_id))
            script_keys += [keys.counter(c.counter) for c in checks]
            args += [request_id, len(checks)]
            for check in checks:
                args += [check.limit, check.amount, check.expire_at_s]
        reply: list[Any] = await self._extend(keys=script_keys, args=args)
        return reply

    async def _shrink_group(self, group: str, parts: list[_Part], items: Sequence[Growing]) -> None:
        """SHRINK_MANY in one group, for the parts it grew of refused requests."""
        if not parts:
            return
        script_keys: list[str] = []
        args: list[int] = []
        for i, checks in parts:
            script_keys.append(keys.reservation(group, items[i].request_id))
            script_keys += [keys.counter(c.counter) for c in checks]
            args += [len(checks), *(c.amount for c in checks)]
        await self._shrink(keys=script_keys, args=args)


def _refusal(code: Code, checks: list[Check], reply: Sequence[Any]) -> Reservation:
    """A group's refusal of one request, from its four numbers."""
    if code is not Code.DENIED:
        return Reservation(code=code)
    check = checks[int(reply[1]) - 1]
    return Reservation(code=code, check=check, spent=int(reply[2]), reserved=int(reply[3]))
