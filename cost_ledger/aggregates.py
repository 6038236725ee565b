"""Ledger aggregates in Redis: each event applied once, atomically, to every breakdown.

Everything here can be rebuilt by replaying the LEDGER stream into an empty store.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import redis.asyncio as aioredis

from bus.messages import LedgerEvent, Lever, now_ms
from cost_ledger import cube, keys
from cost_ledger.keys import Dimension
from cost_ledger.pricing import to_usd

MARKER_VERSION = 3
"""What the seen marker's value says was written for the event: 1, the aggregates and member
sets (deployments before the cube wrote '1'); 2, those and the cube rows; 3, those and the
workspace and project rows (cube.PLACES_VERSION). An event whose marker
is older gets only the parts added since, so a rebuild fills in the cube of events applied
before it existed, and an event still counts once. Bump it when the script writes a new part."""

# KEYS[1]: the event's seen marker; KEYS[2 .. n_agg+1]: aggregate hashes; then n_sets member
# sets; then the cube hashes (cube.py). ARGV[1]: marker TTL; ARGV[2]: n_agg; ARGV[3]: n_fields;
# ARGV[4]: n_sets; then n_fields (field, increment) pairs; then one member per set key; then
# n_msets metric sets, each a count and that many 0-based field indexes; then the cube rows as
# (cube key offset, field prefix, metric set number, marker version that added the row)
# quadruples: a row is written when the marker is older than its version.
# Returns 0 (applied before), 1 (newly applied) or 2 (only the parts its marker lacked).
_APPLY_LUA = (
    "local VERSION = "
    + str(MARKER_VERSION)
    + """
local written = 0
local before = redis.call('GET', KEYS[1])
if before then
  written = tonumber(before)
  if not written or written >= VERSION then
    return 0
  end
  redis.call('SET', KEYS[1], VERSION, 'KEEPTTL')
else
  redis.call('SET', KEYS[1], VERSION, 'EX', ARGV[1])
end
local n_agg = tonumber(ARGV[2])
local n_fields = tonumber(ARGV[3])
local n_sets = tonumber(ARGV[4])
local first_member = 5 + 2 * n_fields
if written < 1 then
  for k = 2, n_agg + 1 do
    for f = 0, n_fields - 1 do
      local amount = ARGV[6 + 2 * f]
      if amount ~= '0' then
        redis.call('HINCRBY', KEYS[k], ARGV[5 + 2 * f], amount)
      end
    end
  end
  for s = 0, n_sets - 1 do
    redis.call('SADD', KEYS[n_agg + 2 + s], ARGV[first_member + s])
  end
end
local m = first_member + n_sets
local msets = {}
for i = 1, tonumber(ARGV[m]) do
  m = m + 1
  local set = {}
  for j = 1, tonumber(ARGV[m]) do
    local f = tonumber(ARGV[m + j])
    if ARGV[6 + 2 * f] ~= '0' then
      set[#set + 1] = f
    end
  end
  m = m + tonumber(ARGV[m])
  msets[i] = set
end
m = m + 1
local cube_base = n_agg + 1 + n_sets
while m + 3 <= #ARGV do
  if written < tonumber(ARGV[m + 3]) then
    local key = KEYS[cube_base + tonumber(ARGV[m])]
    local prefix = ARGV[m + 1]
    for _, f in ipairs(msets[tonumber(ARGV[m + 2])]) do
      redis.call('HINCRBY', key, prefix .. ARGV[5 + 2 * f], ARGV[6 + 2 * f])
    end
  end
  m = m + 4
end
if written == 0 then
  return 1
end
return 2
"""
)


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
    exact_hits: int = 0
    """Events served by the exact cache."""
    semantic_hits: int = 0
    """Events served by the semantic cache."""
    dedup_hits: int = 0
    """Events served by an identical call already in flight."""
    packed_items: int = 0
    """Events served inside a packed provider call."""
    pack_share_micro: int = 0
    """Sum over packed events of 1e6 / pack size: packed provider calls, in millionths."""

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


class Applied(enum.IntEnum):
    """What applying an event did (the script's reply)."""

    BEFORE = 0
    """Nothing: it was applied before, in full."""
    NEW = 1
    """Added to every breakdown."""
    COMPLETED = 2
    """Applied before by an older script: only the parts it lacked were added (the cube)."""


DERIVED_PREFIXES = tuple(f"{keys.PREFIX}{part}:" for part in ("seen", "agg", "idx", "cube"))
"""Every key the apply script writes starts with one of these: a fresh rebuild deletes them."""
CLEAR_BATCH = 1000
"""Keys scanned and unlinked per round trip by clear()."""

_FIELDS = tuple(f.name for f in dataclasses.fields(Totals))
_METRIC_SET_NUMBER = {name: i + 1 for i, name in enumerate(cube.METRIC_SETS)}


def _metric_set_args() -> list[int]:
    """The cube's metric sets as the script takes them: a count, then each set's field indexes."""
    out = [len(cube.METRIC_SETS)]
    for names in cube.METRIC_SETS.values():
        indexes = [_FIELDS.index(n) for n in names] if names else list(range(len(_FIELDS)))
        out += [len(indexes), *indexes]
    return out


_METRIC_SET_ARGS = _metric_set_args()


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
        exact_hits=int(event.lever is Lever.EXACT_CACHE),
        semantic_hits=int(event.lever is Lever.SEMANTIC_CACHE),
        dedup_hits=int(event.lever is Lever.DEDUP),
        packed_items=int(event.lever is Lever.PACKED),
        pack_share_micro=(
            (1_000_000 + event.pack_size // 2) // event.pack_size
            if event.lever is Lever.PACKED and event.pack_size > 0
            else 0
        ),
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


def event_scopes(event: LedgerEvent) -> tuple[str, str]:
    """The scopes an event is applied to, in the order they are applied: its tenant's, then
    all tenants' (the last one decides whether the event was new: see apply_event)."""
    return (keys.scope(event.tenant), keys.GLOBAL_SCOPE)


def scope_dimensions(scope: str) -> tuple[Dimension, ...]:
    """The dimensions kept in a scope (the tenant dimension only in the global one)."""
    if scope == keys.GLOBAL_SCOPE:
        return tuple(Dimension)
    return tuple(d for d in Dimension if d is not Dimension.TENANT)


class AggregateStore:
    """Spend, baseline, calls and tokens by tenant, agent, model, provider, lever, day, hour."""

    def __init__(self, redis: aioredis.Redis, *, seen_ttl_s: int = keys.SEEN_TTL_S) -> None:
        self._redis = redis
        self._seen_ttl_s = seen_ttl_s
        self._apply = redis.register_script(_APPLY_LUA)

    @property
    def redis(self) -> aioredis.Redis:
        """The Redis the aggregates live in."""
        return self._redis

    @property
    def seen_ttl_s(self) -> int:
        """How long an applied event id is remembered."""
        return self._seen_ttl_s

    async def settle_applied(self, events: Sequence[LedgerEvent], new: Sequence[bool]) -> None:
        """What follows applying events in a batch (new: whether each was newly applied):
        nothing here; LedgerView settles their budgets."""

    async def apply(self, event: LedgerEvent) -> bool:
        """Add an event to every breakdown, unless its event id was applied before.

        Returns whether it was newly applied. The check and all increments are one atomic
        script, so concurrent replicas and redeliveries never count an event twice.
        """
        return await self.apply_event(event) is Applied.NEW

    async def apply_event(self, event: LedgerEvent) -> Applied:
        """Add an event to every breakdown it is not in yet (see MARKER_VERSION): all of them
        if new, only the cube if an older script applied it, nothing if applied in full.

        One script per scope (the event's tenant, then all tenants), each guarded by that
        scope's own seen marker in the same slot, so each scope counts the event once even
        when a failure stopped an earlier try between the two. The answer is the last
        scope's: exactly one of concurrent or repeated applications gets NEW, and a retry
        after a failure between the scopes still does (the last scope was not reached)."""
        applied = Applied.BEFORE
        for scope in event_scopes(event):
            applied = await self.apply_scope(event, scope)
        return applied

    async def apply_scope(self, event: LedgerEvent, scope: str) -> Applied:
        """Add an event to the breakdowns of one of its scopes, in one script in that scope's
        slot, guarded by the scope's own seen marker (see apply_event)."""
        metrics = event_metrics(event)
        members = event_members(event)
        field_args: list[str | int] = []
        for name in _FIELDS:
            field_args += [name, getattr(metrics, name)]
        agg_keys: list[str] = []
        set_keys: list[str] = []
        set_members: list[str] = []
        for dim in scope_dimensions(scope):
            agg_keys.append(keys.aggregate(scope, dim, members[dim]))
            if dim is not Dimension.TOTAL:
                set_keys.append(keys.members(scope, dim))
                set_members.append(members[dim])
        cube_keys: dict[str, int] = {}
        cube_args: list[str | int] = []
        for key, prefix, metric_set, version in cube.event_entries(
            event, members[Dimension.DAY], members[Dimension.HOUR], (scope,)
        ):
            number = _METRIC_SET_NUMBER[metric_set]
            cube_args += [cube_keys.setdefault(key, len(cube_keys) + 1), prefix, number, version]
        applied = await self._apply(
            keys=[keys.seen(event.event_id, scope), *agg_keys, *set_keys, *cube_keys],
            args=[
                self._seen_ttl_s, len(agg_keys), len(_FIELDS), len(set_keys),
                *field_args, *set_members, *_METRIC_SET_ARGS, *cube_args,
            ],
        )  # fmt: skip
        return Applied(int(applied))

    async def clear(self) -> int:
        """Delete every key the apply script writes (seen markers, aggregates, member sets,
        cube), for a rebuild from scratch; returns how many. Not atomic: events applied while
        it runs may be lost or counted twice, so stop the ledger consumers first."""
        deleted = 0
        for prefix in DERIVED_PREFIXES:
            batch: list[bytes | str] = []
            async for key in self._redis.scan_iter(match=f"{prefix}*", count=CLEAR_BATCH):
                batch.append(key)
                if len(batch) >= CLEAR_BATCH:
                    deleted += int(await self._redis.unlink(*batch))
                    batch = []
            if batch:
                deleted += int(await self._redis.unlink(*batch))
        return deleted

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
