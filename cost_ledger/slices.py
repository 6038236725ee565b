"""Reading the ledger cube (cube.py) for a report filter: one tenant or all, one agent or one
model or one workspace (or project) or everything, over a range of UTC days or hours (a
workspace or project over days only).

A model filter reads the model's row of the whole cube as its totals: the cube keeps no
per-model breakdown by agent, lever or task type.

A report reads one hash per day, so a range is at most MAX_RANGE_DAYS days: a longer explicit
range is refused (FilterError), and an open start or end is clamped to the days the ledger has
seen, then to MAX_RANGE_DAYS days (an open start to the most recent ones).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta

import redis.asyncio as aioredis

from bus.subjects import shown, token
from cost_ledger import keys
from cost_ledger.aggregates import AggregateStore, Totals
from cost_ledger.api_models import Filter
from cost_ledger.cube import (
    ALL,
    SEP,
    CubeDim,
    agent_slice,
    cube_key,
    day_bucket,
    project_slice,
    workspace_slice,
)
from cost_ledger.keys import Dimension

_ALL_METRICS = frozenset(f.name for f in fields(Totals))
RawHash = Mapping[bytes | str, bytes | str]
"""A hash as HGETALL returns it."""
PIPELINE_CHUNK = 2048
"""Commands per round trip when reading many hashes at once."""
MAX_RANGE_DAYS = 400
"""The longest day range a report reads (one Redis hash per day, per tenant)."""
MAX_MODEL_CHARS = 128
"""The longest model a filter names (catalog ids are under 40 characters)."""


class FilterError(ValueError):
    """A report filter that cannot be answered (the message says why)."""


def check_filter(where: Filter) -> Filter:
    """The filter if it can be answered; raises FilterError with the reason."""
    if where.agent is not None and where.model is not None:
        raise FilterError("filter by agent or by model, not both")
    if where.project is not None and where.workspace is None:
        raise FilterError("a project is named within its workspace: give workspace too")
    if where.workspace is not None and (where.agent is not None or where.model is not None):
        raise FilterError("filter by workspace (and project) or by agent or model, not both")
    if where.start is not None and where.end is not None and where.start > where.end:
        raise FilterError(f"start {where.start} is after end {where.end}")
    if where.start is not None and where.end is not None:
        span = (where.end - where.start).days + 1
        if span > MAX_RANGE_DAYS:
            raise FilterError(
                f"{where.start}..{where.end} is {span} days: at most {MAX_RANGE_DAYS} days"
            )
    named = (
        ("tenant", where.tenant), ("agent", where.agent), ("workspace", where.workspace),
        ("project", where.project),
    )  # fmt: skip
    for what, value in named:
        if value is not None:
            try:
                token(value)
            except ValueError as exc:
                raise FilterError(f"bad {what}: {exc}") from None
    if where.model is not None and not where.model.strip():
        raise FilterError("model is empty")
    if where.model is not None and (
        len(where.model) > MAX_MODEL_CHARS or not where.model.isprintable()
    ):
        raise FilterError(
            f"bad model: {shown(where.model)}: at most {MAX_MODEL_CHARS} printable characters"
        )
    return where


def slice_of(where: Filter) -> str:
    """The slice a filter reads: one agent's, one project's, one workspace's, or every
    event's."""
    if where.agent is not None:
        return agent_slice(where.agent)
    if where.workspace is not None and where.project is not None:
        return project_slice(where.workspace, where.project)
    if where.workspace is not None:
        return workspace_slice(where.workspace)
    return ALL


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

    async def window(self) -> tuple[date, date] | None:
        """The first and last UTC day read: the filter's bounds, an open one clamped to the
        days with events and to MAX_RANGE_DAYS; None when there is nothing to read."""
        start, end = self.where.start, self.where.end
        if start is not None and end is not None:
            return (start, end)  # check_filter bounded it
        seen = await self.store.members(Dimension.DAY, self.where.tenant)
        if not seen:
            return None
        first, last = date.fromisoformat(seen[0]), date.fromisoformat(seen[-1])
        longest = timedelta(days=MAX_RANGE_DAYS - 1)
        if start is not None:  # open end: from the start (or the first day seen) onwards
            if start > last:
                return None
            start = max(start, first)
            return (start, min(last, start + longest))
        # Open start: the most recent days up to the end (or the last day seen).
        end = last if end is None else min(end, last)
        if end < first:
            return None
        return (max(first, end - longest), end)

    async def days(self) -> list[date]:
        """Every UTC day of the window, missing days included."""
        window = await self.window()
        if window is None:
            return []
        first, last = window
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]

    async def hours(self) -> list[str]:
        """Every UTC hour (YYYY-MM-DDTHH) from the first to the last hour with events in the
        window."""
        window = await self.window()
        if window is None:
            return []
        seen = sorted(await self.store.members(Dimension.HOUR, self.where.tenant))
        lo, hi = window[0].isoformat(), window[1].isoformat() + "T99"
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

    async def by_tenant(self, tenants: list[str], buckets: list[str]) -> dict[str, Cube]:
        """Each tenant's breakdowns of the filter's slice summed over some buckets, read in
        one pipeline (sent in chunks of PIPELINE_CHUNK commands)."""
        wanted = [
            cube_key(keys.scope(t), bucket, self._slice) for t in tenants for bucket in buckets
        ]
        replies: list[RawHash] = []
        for at in range(0, len(wanted), PIPELINE_CHUNK):
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in wanted[at : at + PIPELINE_CHUNK]:
                    pipe.hgetall(key)
                replies += await pipe.execute()
        n = len(buckets)
        return {
            t: parse(replies[i * n : (i + 1) * n], model=self.where.model)
            for i, t in enumerate(tenants)
        }

    async def days_cube(self) -> Cube:
        """Every day in range, summed."""
        return await self.summed([day_bucket(d) for d in await self.days()])
