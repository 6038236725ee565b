"""Reading the ledger cube (cube.py) for a report filter: one tenant or all, one agent or one
model or everything, over a range of UTC days or hours.

A model filter reads the model's row of the whole cube as its totals: the cube keeps no
per-model breakdown by agent, lever or task type.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta

import redis.asyncio as aioredis

from bus.subjects import token
from cost_ledger import keys
from cost_ledger.aggregates import AggregateStore, Totals
from cost_ledger.api_models import Filter
from cost_ledger.cube import ALL, SEP, CubeDim, agent_slice, cube_key, day_bucket
from cost_ledger.keys import Dimension

_ALL_METRICS = frozenset(f.name for f in fields(Totals))
RawHash = Mapping[bytes | str, bytes | str]
"""A hash as HGETALL returns it."""


class FilterError(ValueError):
    """A report filter that cannot be answered (the message says why)."""


def check_filter(where: Filter) -> Filter:
    """The filter if it can be answered; raises FilterError with the reason."""
    if where.agent is not None and where.model is not None:
        raise FilterError("filter by agent or by model, not both")
    if where.start is not None and where.end is not None and where.start > where.end:
        raise FilterError(f"start {where.start} is after end {where.end}")
    for what, value in (("tenant", where.tenant), ("agent", where.agent)):
        if value is not None:
            try:
                token(value)
            except ValueError as exc:
                raise FilterError(f"bad {what}: {exc}") from None
    if where.model is not None and not where.model.strip():
        raise FilterError("model is empty")
    return where


def slice_of(where: Filter) -> str:
    """The slice a filter reads: one agent's, or every event's."""
    return agent_slice(where.agent) if where.agent is not None else ALL


@dataclass(frozen=True, kw_only=True)
class Cube:
    """Breakdowns summed over some buckets: dimension -> member -> totals."""

    dims: Mapping[CubeDim, Mapping[str, Totals]]

    @property
    def totals(self) -> Totals:
        """The slice's totals."""
        return self.dims.get(CubeDim.TOTAL, {}).get("", Totals())

    def of(self, dim: CubeDim) -> Mapping[str, Totals]:
        """Totals per member of one dimension, sorted by member."""
        return self.dims.get(dim, {})


EMPTY = Cube(dims={})


def parse(raws: Iterable[RawHash], *, model: str | None = None) -> Cube:
    """Sum cube hashes (as HGETALL returns them) into one Cube; with a model, only that
    model's row, as the totals."""
    sums: dict[CubeDim, dict[str, dict[str, int]]] = {}
    for raw in raws:
        for field, value in raw.items():
            text = field.decode() if isinstance(field, bytes) else field
            dim_name, _, rest = text.partition(SEP)
            member, _, metric = rest.rpartition(SEP)
            try:
                dim = CubeDim(dim_name)
            except ValueError:
                continue
            if model is not None:
                if dim is not CubeDim.MODEL or member != model:
                    continue
                dim, member = CubeDim.TOTAL, ""
            row = sums.setdefault(dim, {}).setdefault(member, {})
            row[metric] = row.get(metric, 0) + int(value)
    return Cube(
        dims={
            dim: {
                member: Totals(**{k: v for k, v in row.items() if k in _ALL_METRICS})
                for member, row in sorted(rows.items())
            }
            for dim, rows in sums.items()
        }
    )


class CubeReader:
    """Reads cube buckets of one filter (tenant, slice, day range) from Redis."""

    def __init__(self, store: AggregateStore, where: Filter) -> None:
        self.store = store
        self.where = check_filter(where)
        self._scope = keys.scope(where.tenant)
        self._slice = slice_of(where)

    @property
    def redis(self) -> aioredis.Redis:
        """The store's Redis."""
        return self.store.redis

    async def days(self) -> list[date]:
        """Every UTC day in the filter's range, from its first to its last day with events
        (or the range's own bounds when given), missing days included."""
        seen = [
            date.fromisoformat(d)
            for d in await self.store.members(Dimension.DAY, self.where.tenant)
        ]
        first = self.where.start or (min(seen) if seen else None)
        last = self.where.end or (max(seen) if seen else None)
        if first is None or last is None or first > last:
            return []
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]

    async def hours(self) -> list[str]:
        """Every UTC hour (YYYY-MM-DDTHH) from the first to the last hour with events in range."""
        seen = sorted(await self.store.members(Dimension.HOUR, self.where.tenant))
        lo = self.where.start.isoformat() if self.where.start else ""
        hi = self.where.end.isoformat() + "T99" if self.where.end else "~"
        seen = [h for h in seen if lo <= h <= hi]
        if not seen:
            return []
        at = datetime.strptime(seen[0], "%Y-%m-%dT%H").replace(tzinfo=UTC)
        end = datetime.strptime(seen[-1], "%Y-%m-%dT%H").replace(tzinfo=UTC)
        out: list[str] = []
        while at <= end:
            out.append(at.strftime("%Y-%m-%dT%H"))
            at += timedelta(hours=1)
        return out

    async def raw(self, buckets: list[str], slice_: str | None = None) -> list[RawHash]:
        """The cube hashes of some buckets, in order (HGETALL replies); ``slice_`` overrides
        the filter's (and then a model filter is not applied)."""
        if not buckets:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for bucket in buckets:
                pipe.hgetall(cube_key(self._scope, bucket, slice_ or self._slice))
            replies: list[RawHash] = await pipe.execute()
        return replies

    async def by_bucket(self, buckets: list[str], slice_: str | None = None) -> list[Cube]:
        """One Cube per bucket, in order."""
        model = self.where.model if slice_ is None else None
        return [parse([raw], model=model) for raw in await self.raw(buckets, slice_)]

    async def summed(self, buckets: list[str], slice_: str | None = None) -> Cube:
        """The buckets' breakdowns summed."""
        model = self.where.model if slice_ is None else None
        return parse(await self.raw(buckets, slice_), model=model)

    async def days_cube(self) -> Cube:
        """Every day in range, summed."""
        return await self.summed([day_bucket(d) for d in await self.days()])
