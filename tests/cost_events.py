"""Ledger events for the aggregate, cost report, forecast, anomaly, recommendation and API
tests: the one builder of a test ledger event."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import redis.asyncio as aioredis

from bus.messages import LedgerEvent, Lever, Usage
from cost_ledger.aggregates import AggregateStore

_ids = itertools.count()


def ms(iso: str) -> int:
    """Unix milliseconds of a naive UTC ISO time."""
    return int(datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp() * 1000)


def ledger_event(
    *,
    at: str,
    tenant: str = "acme",
    agent: str = "lister",
    model: str = "gpt-4o-mini",
    task_type: str = "listing",
    workflow_id: str = "",
    cost: int = 100,
    baseline: int = 1000,
    lever: Lever = Lever.ROUTED,
    input_tokens: int = 500,
    cached_input_tokens: int = 0,
    output_tokens: int = 100,
    pack_size: int = 0,
    simulated: bool = False,
    event_id: str | None = None,
    workspace: str = "default",
    project: str = "default",
) -> LedgerEvent:
    """A ledger event finished at `at` (naive UTC ISO time), with sensible defaults."""
    eid = event_id or f"ev-{next(_ids)}"
    return LedgerEvent(
        event_id=eid,
        request_id=eid,
        tenant=tenant,
        agent=agent,
        workflow_id=workflow_id,
        task_type=task_type,
        workspace=workspace,
        project=project,
        model=model,
        provider="openai",
        usage=Usage(
            input_tokens=input_tokens,
            cached_input_tokens=cached_input_tokens,
            output_tokens=output_tokens,
        ),
        cost_micro_usd=cost,
        baseline_micro_usd=baseline,
        lever=lever,
        catalog_version="2026-11-01",
        paid_call=cost > 0,
        simulated=simulated,
        started_ms=ms(at) - 300,
        finished_ms=ms(at),
        pack_size=pack_size,
    )


async def apply_all(store: AggregateStore, events: list[LedgerEvent]) -> None:
    """Apply events to the aggregates, checking each one is new."""
    for e in events:
        assert await store.apply(e), e.event_id


async def ledger_keys(redis: aioredis.Redis, pattern: str = "fs:ledger:*") -> dict[str, object]:
    """Every ledger key matching a pattern with its value (hash, set or string), for comparing
    two states of the ledger's Redis view exactly."""
    out: dict[str, object] = {}
    async for raw in redis.scan_iter(match=pattern, count=1000):
        key = raw.decode() if isinstance(raw, bytes) else raw
        kind = await redis.type(key)
        kind = kind.decode() if isinstance(kind, bytes) else kind
        if kind == "hash":
            out[key] = await redis.hgetall(key)
        elif kind == "set":
            out[key] = await redis.smembers(key)
        else:
            out[key] = await redis.get(key)
    return out


async def as_old_deployment(redis: aioredis.Redis) -> int:
    """Make the ledger's Redis look written by the apply script before the cube existed: seen
    markers at version 1, no cube keys; returns how many cube keys were deleted."""
    async for key in redis.scan_iter(match="fs:ledger:seen:*", count=1000):
        await redis.set(key, "1", keepttl=True)
    cube = [k async for k in redis.scan_iter(match="fs:ledger:cube:*", count=1000)]
    if cube:
        await redis.delete(*cube)
    return len(cube)
