"""Ledger aggregates in Redis: each event applied once, atomically, to every breakdown.

Everything here can be rebuilt by replaying the LEDGER stream into an empty store.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import redis.asyncio as aioredis

from bus.messages import LedgerEvent, now_ms
from cost_ledger import keys
from cost_ledger.keys import Dimension
from cost_ledger.pricing import to_usd

# KEYS[1]: the event's seen marker; KEYS[2 .. n_agg+1]: aggregate hashes; the rest: member sets.
# ARGV[1]: marker TTL; ARGV[2]: n_agg; ARGV[3]: n_fields; then n_fields (field, increment)
# pairs; then one member per set key.
_APPLY_LUA = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return 0
end
local n_agg = tonumber(ARGV[2])
local n_fields = tonumber(ARGV[3])
for k = 2, n_agg + 1 do
  for f = 0, n_fields - 1 do
    local amount = ARGV[5 + 2 * f]
    if amount ~= '0' then
      redis.call('HINCRBY', KEYS[k], ARGV[4 + 2 * f], amount)
    end
  end
end
local first_member = 4 + 2 * n_fields
for k = n_agg + 2, #KEYS do
  redis.call('SADD', KEYS[k], ARGV[first_member + k - n_agg - 2])
end
return 1
"""


@dataclass(frozen=True, kw_only=True)
class Totals:
    """Summed metrics of a set of ledger events; money in integer micro-dollars."""

    spend_micro_usd: int = 0
    """What was actually paid."""
    baseline_micro_usd: int = 0
    """What the naive path would have paid."""
    calls: int = 0
    """Ledger events: requests served, by any lever."""
    paid_calls: int = 0
    """Events that paid for an upstream provider call."""
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    simulated_events: int = 0
    """Events produced by the simulated provider, where no real money moved."""

    @property
    def savings_micro_usd(self) -> int:
        """Baseline minus spend."""
        return self.baseline_micro_usd - self.spend_micro_usd

    @property
    def spend_usd(self) -> Decimal:
        """Spend in Decimal dollars."""
        return to_usd(self.spend_micro_usd)

    @property
    def baseline_usd(self) -> Decimal:
        """Baseline in Decimal dollars."""
        return to_usd(self.baseline_micro_usd)

    @property
    def savings_usd(self) -> Decimal:
        """Savings in Decimal dollars."""
        return to_usd(self.savings_micro_usd)


_FIELDS = tuple(f.name for f in dataclasses.fields(Totals))


def event_metrics(event: LedgerEvent) -> Totals:
    """What one event adds to every breakdown it falls in."""
    return Totals(
        spend_micro_usd=event.cost_micro_usd,
        baseline_micro_usd=event.baseline_micro_usd,
        calls=1,
        paid_calls=int(event.paid_call),
        input_tokens=event.usage.input_tokens,
        cached_input_tokens=event.usage.cached_input_tokens,
        output_tokens=event.usage.output_tokens,
        simulated_events=int(event.simulated),
    )


def event_members(event: LedgerEvent) -> dict[Dimension, str]:
    """The member of each dimension an event falls in (its model, its UTC day...)."""
    # A replay must land in the same day, so the clock is only a last resort.
    at_ms = event.finished_ms or event.started_ms or now_ms()
    at = datetime.fromtimestamp(at_ms // 1000, tz=UTC)
    return {
        Dimension.TOTAL: keys.TOTAL_MEMBER,
        Dimension.TENANT: event.tenant,
        Dimension.AGENT: event.agent,
        Dimension.MODEL: event.model or "-",
        Dimension.PROVIDER: event.provider or "-",
        Dimension.LEVER: event.lever.value,
        Dimension.DAY: at.strftime("%Y-%m-%d"),
        Dimension.HOUR: at.strftime("%Y-%m-%dT%H"),
    }


class AggregateStore:
    """Spend, baseline, calls and tokens by tenant, agent, model, provider, lever, day, hour."""

    def __init__(self, redis: aioredis.Redis, *, seen_ttl_s: int = keys.SEEN_TTL_S) -> None:
        self._redis = redis
        self._seen_ttl_s = seen_ttl_s
        self._apply = redis.register_script(_APPLY_LUA)

    async def apply(self, event: LedgerEvent) -> bool:
        """Add an event to every breakdown, unless its event id was applied before.

        Returns whether it was applied. The check and all increments are one atomic script,
        so concurrent replicas and redeliveries never count an event twice.
        """
        metrics = event_metrics(event)
        members = event_members(event)
        agg_keys: list[str] = []
        set_keys: list[str] = []
        set_members: list[str] = []
        for scope, dims in (
            (keys.GLOBAL_SCOPE, tuple(Dimension)),
            (keys.scope(event.tenant), tuple(d for d in Dimension if d is not Dimension.TENANT)),
        ):
            for dim in dims:
                agg_keys.append(keys.aggregate(scope, dim, members[dim]))
                if dim is not Dimension.TOTAL:
                    set_keys.append(keys.members(scope, dim))
                    set_members.append(members[dim])
        field_args: list[str | int] = []
        for name in _FIELDS:
            field_args += [name, getattr(metrics, name)]
        applied = await self._apply(
            keys=[keys.seen(event.event_id), *agg_keys, *set_keys],
            args=[self._seen_ttl_s, len(agg_keys), len(_FIELDS), *field_args, *set_members],
        )
        return bool(applied)

    async def totals(self, tenant: str | None = None) -> Totals:
        """Everything summed, for one tenant or for all of them."""
        raw = await self._redis.hgetall(
            keys.aggregate(keys.scope(tenant), Dimension.TOTAL, keys.TOTAL_MEMBER)
        )
        return _totals(raw)

    async def members(self, dimension: Dimension, tenant: str | None = None) -> list[str]:
        """The known members of a dimension (tenants, agents, models, days...), sorted."""
        if dimension is Dimension.TOTAL:
            return [keys.TOTAL_MEMBER]
        if dimension is Dimension.TENANT and tenant is not None:
            return [tenant]
        raw = await self._redis.smembers(keys.members(keys.scope(tenant), dimension))
        return sorted(_text(m) for m in raw)

    async def breakdown(self, dimension: Dimension, tenant: str | None = None) -> dict[str, Totals]:
        """Totals per member of a dimension, sorted by member, for one tenant or all."""
        names = await self.members(dimension, tenant)
        # The tenant dimension is only kept in the global scope.
        scope = keys.scope(None if dimension is Dimension.TENANT else tenant)
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(keys.aggregate(scope, dimension, name))
            rows = await pipe.execute()
        return {name: _totals(raw) for name, raw in zip(names, rows, strict=True)}


def _totals(raw: dict[bytes | str, bytes | str]) -> Totals:
    values = {_text(k): int(v) for k, v in raw.items()}
    return Totals(**{name: values[name] for name in _FIELDS if name in values})


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
