"""Savings by lever from each event's split, per tenant and UTC day, in Redis.

Kept beside the aggregates (not in their script, which the batch-apply work owns): one Lua
call per event adds its split (cost_ledger.savings.settled) and its lever cost (an event with
overhead_of set) to the hashes of its day, for all tenants and for its tenant, once per event
id. One call per scope, each with its own seen marker beside the sums it guards (the hash tag
of the scope, cost_ledger/keys.py), so each runs in one Redis Cluster slot and a retry after
a failure between the two counts neither scope twice. Rebuilt with the aggregates
(`flipsync ledger rebuild`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime

import redis.asyncio as aioredis

from bus.messages import LedgerEvent, now_ms
from cost_ledger import keys
from cost_ledger.lever_split import LeverSplit
from cost_ledger.savings import settled

PREFIX = "fs:split:"
GROSS, COST = "gross", "cost"

# KEYS[1]: the scope's seen marker; then the scope's pair of hashes (gross, cost). ARGV[1]: marker
# TTL; ARGV[2]: number of gross (lever, amount) pairs; then those pairs; then cost pairs.
_APPLY_LUA = """
if not redis.call('SET', KEYS[1], 1, 'NX', 'EX', ARGV[1]) then
  return 0
end
local n_gross = tonumber(ARGV[2])
for k = 2, #KEYS, 2 do
  for i = 0, n_gross - 1 do
    redis.call('HINCRBY', KEYS[k], ARGV[3 + 2 * i], ARGV[4 + 2 * i])
  end
  for i = 3 + 2 * n_gross, #ARGV, 2 do
    redis.call('HINCRBY', KEYS[k + 1], ARGV[i], ARGV[i + 1])
  end
end
return 1
"""


# The same for a batch of events in one scope. KEYS: each event's seen marker (n of them),
# then the batch's (gross, cost) hash pairs. ARGV[1]: marker TTL; ARGV[2]: n; then per event:
# its hash pair's number h (KEYS[n + 2h - 1], KEYS[n + 2h]), its gross and cost pair counts,
# its gross pairs, its cost pairs. Returns 1 per event newly added, 0 per event seen before.
_APPLY_MANY_LUA = """
local n = tonumber(ARGV[2])
local out = {}
local a = 3
for e = 1, n do
  local h = tonumber(ARGV[a])
  local n_gross = tonumber(ARGV[a + 1])
  local n_cost = tonumber(ARGV[a + 2])
  a = a + 3
  local new = redis.call('SET', KEYS[e], 1, 'NX', 'EX', ARGV[1])
  if new then
    for i = 0, n_gross - 1 do
      redis.call('HINCRBY', KEYS[n + 2 * h - 1], ARGV[a + 2 * i], ARGV[a + 2 * i + 1])
    end
    for i = n_gross, n_gross + n_cost - 1 do
      redis.call('HINCRBY', KEYS[n + 2 * h], ARGV[a + 2 * i], ARGV[a + 2 * i + 1])
    end
  end
  a = a + 2 * (n_gross + n_cost)
  out[e] = new and 1 or 0
end
return out
"""


def _key(kind: str, scope: str, day: str) -> str:
    return f"{PREFIX}{kind}:{keys.tag(scope)}:{day}"


def seen(event_id: str, scope: str) -> str:
    """Marker that an event's split was added to a scope (in that scope's slot)."""
    return f"{PREFIX}seen:{keys.tag(scope)}:{event_id}"


def _split(event: LedgerEvent) -> tuple[dict[str, int], dict[str, int]]:
    """An event's (gross savings by lever, lever costs by lever) to add."""
    if event.overhead_of:
        return {}, {event.overhead_of: event.cost_micro_usd}
    gross = settled(
        event.savings_by_lever, event.baseline_micro_usd, event.cost_micro_usd, event.lever.value
    )
    return gross, {}


def _day(event: LedgerEvent) -> str:
    at_ms = event.finished_ms or event.started_ms or now_ms()
    return datetime.fromtimestamp(at_ms // 1000, tz=UTC).strftime("%Y-%m-%d")


class SplitStore:
    """Per-lever gross savings and lever costs by tenant and day."""

    def __init__(self, redis: aioredis.Redis, *, seen_ttl_s: int = keys.SEEN_TTL_S) -> None:
        self._redis = redis
        self._seen_ttl_s = seen_ttl_s
        self._apply = redis.register_script(_APPLY_LUA)
        self._apply_many = redis.register_script(_APPLY_MANY_LUA)

    async def apply(self, event: LedgerEvent) -> bool:
        """Add an event's split once per event id and scope; returns whether it was new in
        any scope."""
        gross, cost = _split(event)
        day = _day(event)
        args: list[str | int] = [self._seen_ttl_s, len(gross)]
        for name, amount in [*gross.items(), *cost.items()]:
            args += [name, amount]
        new = False
        for scope in (keys.GLOBAL_SCOPE, keys.scope(event.tenant)):
            hashes = [_key(kind, scope, day) for kind in (GROSS, COST)]
            marker = seen(event.event_id, scope)
            new = bool(await self._apply(keys=[marker, *hashes], args=args)) or new
        return new

    async def apply_many(self, events: Sequence[LedgerEvent]) -> list[bool]:
        """apply() for a batch, in one script call per scope (all tenants, and each tenant of
        the batch) instead of two per event; returns for each event whether it was new in
        any scope. Raises what Redis raised; a scope's call either ran whole or, on a reply
        error, may have added the events before the one that failed (each once: a retry
        skips them by their markers)."""
        if not events:
            return []
        new = [False] * len(events)
        by_scope: dict[str, list[int]] = {keys.GLOBAL_SCOPE: list(range(len(events)))}
        for i, event in enumerate(events):
            by_scope.setdefault(keys.scope(event.tenant), []).append(i)
        calls = [self._apply_scope(scope, [events[i] for i in which])
                 for scope, which in by_scope.items()]  # fmt: skip
        for which, added in zip(by_scope.values(), await asyncio.gather(*calls), strict=True):
            for i, was_new in zip(which, added, strict=True):
                new[i] = new[i] or was_new
        return new

    async def _apply_scope(self, scope: str, events: Sequence[LedgerEvent]) -> list[bool]:
        markers = [seen(event.event_id, scope) for event in events]
        pairs: dict[str, int] = {}  # day -> its hash pair's number
        args: list[str | int] = [self._seen_ttl_s, len(events)]
        for event in events:
            gross, cost = _split(event)
            h = pairs.setdefault(_day(event), len(pairs) + 1)
            args += [h, len(gross), len(cost)]
            for name, amount in [*gross.items(), *cost.items()]:
                args += [name, amount]
        hashes = [_key(kind, scope, day) for day in pairs for kind in (GROSS, COST)]
        added = await self._apply_many(keys=[*markers, *hashes], args=args)
        return [bool(int(flag)) for flag in added]

    async def split(self, tenant: str | None, days: Iterable[date]) -> LeverSplit:
        """The summed split of a tenant (or all) over days."""
        out = LeverSplit()
        for day in await self.daily(tenant, days):
            for into, part in ((out.gross, day.gross), (out.lever_cost, day.lever_cost)):
                for lever, amount in part.items():
                    into[lever] = into.get(lever, 0) + amount
        return out

    async def daily(self, tenant: str | None, days: Iterable[date]) -> list[LeverSplit]:
        """The split of a tenant (or all) on each of days, in order (one round trip)."""
        scope = keys.scope(tenant)
        wanted = [d.isoformat() for d in days]
        async with self._redis.pipeline(transaction=False) as pipe:
            for day in wanted:
                pipe.hgetall(_key(GROSS, scope, day))
                pipe.hgetall(_key(COST, scope, day))
            found = await pipe.execute()
        out = [LeverSplit() for _ in wanted]
        for i, raw in enumerate(found):
            into = out[i // 2].gross if i % 2 == 0 else out[i // 2].lever_cost
            for name, amount in raw.items():
                lever = name.decode() if isinstance(name, bytes) else str(name)
                into[lever] = into.get(lever, 0) + int(amount)
        return out

    async def clear(self) -> int:
        """Delete every key this store wrote (for a rebuild from scratch)."""
        deleted = 0
        async for key in self._redis.scan_iter(match=f"{PREFIX}*", count=1000):
            deleted += int(await self._redis.unlink(key))
        return deleted
