"""Packing with router replicas as separate processes on a real nats-server and Redis, the
simulated provider in this process counting the upstream calls."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import msgspec
import pytest
import redis.asyncio as aioredis
from faststream.nats import NatsBroker

from bus import subjects
from bus.broker import make_broker
from bus.embedded import EmbeddedNats, EmbeddedRedis
from bus.llm_client import LlmClient
from bus.messages import LedgerEvent, Lever, LlmRequest, LlmResult
from bus.settings import Settings
from bus.streams import ensure_streams
from cost_ledger.aggregates import AggregateStore
from flipsync.children import service_process
from router.call_markers import EVENTS
from router.validation import parse_answer
from simulator.config import SimConfig
from simulator.server import SimulatedProvider
from tests.helpers import TITLE_SCHEMA, consumers_quiet, eventually
from tests.test_packing import AGENT, packable

_MARKER = msgspec.json.Decoder(LedgerEvent | list[LedgerEvent])
"""A call marker's lost-call events (router.call_markers.EVENTS)."""


@dataclass(kw_only=True)
class Cluster:
    """Servers for router replicas: NATS, Redis, the simulated provider, and their env."""

    broker: NatsBroker
    redis: aioredis.Redis
    sim: SimulatedProvider
    env: dict[str, str]


@contextlib.asynccontextmanager
async def cluster(sim_config: SimConfig, ack_wait_s: float) -> AsyncIterator[Cluster]:
    """Fresh servers of its own (so the durable consumer gets this test's ack_wait)."""
    nats_server, redis_server = EmbeddedNats(), EmbeddedRedis()
    sim = SimulatedProvider(sim_config)
    await nats_server.start()
    await redis_server.start()
    await sim.start()
    env = {
        "NATS_URL": nats_server.url,
        "REDIS_URL": redis_server.url,
        "FLIPSYNC_SIM_BASE_URL": sim.base_url,
        "FLIPSYNC_EXTRA_AGENTS": json.dumps([AGENT]),
        "FLIPSYNC_ACK_WAIT_S": str(ack_wait_s),
        "FLIPSYNC_PROVIDER_MAX_RETRIES": "0",
    }
    broker = make_broker(nats_server.url)
    redis = aioredis.Redis.from_url(redis_server.url)
    try:
        await broker.connect()
        await ensure_streams(broker.connection.jetstream(), Settings())
        yield Cluster(broker=broker, redis=redis, sim=sim, env=env)
    finally:
        await broker.stop()
        await redis.aclose()
        await sim.stop()
        await redis_server.stop()
        await nats_server.stop()


async def assert_one_result_each_and_ledger_once(
    c: Cluster,
    tenant: str,
    requests: list[LlmRequest],
    results: list[LlmResult],
    lost_calls: int = 0,
) -> None:
    """Each requester got its own validated answer, stored once; the ledger counts each once."""
    assert [r.request_id for r in results] == [r.id for r in requests]
    assert all(r.ok for r in results), [r.reason for r in results if not r.ok]
    for result in results:
        parsed, problem = parse_answer(result.content, TITLE_SCHEMA.schema)
        assert not problem and parsed == result.parsed
    js = c.broker.connection.jetstream()
    # A result reaches its requester before the stream's ack (NATS stores it on its own
    # time); the router acks each request only after that ack, so read the stream then.
    await consumers_quiet(js, ledger=False)
    info = await js.stream_info(subjects.STREAM_RESULTS, subjects_filter=f"llm.result.{tenant}.>")
    assert info.state.subjects is not None
    assert len(info.state.subjects) == len(requests)
    assert set(info.state.subjects.values()) == {1}  # exactly one result per request
    store = AggregateStore(c.redis)

    async def settled() -> bool:
        return (await store.totals(tenant)).calls >= len(requests) + lost_calls

    await eventually(settled, timeout_s=20)
    totals = await store.totals(tenant)
    # Each share recorded once, none twice; plus each call a kill caught at the provider,
    # booked as lost at its maximum, one event per item (router/paid_answers.py).
    assert totals.calls == len(requests) + lost_calls
    assert totals.spend_micro_usd >= sum(r.cost_micro_usd for r in results)


async def lost_events(redis: aioredis.Redis) -> int:
    """The ledger events the calls now at the provider book if lost: one per packed item."""
    markers = (await redis.hgetall(EVENTS)).values()
    return sum(len(m) if isinstance(m, list) else 1 for m in map(_MARKER.decode, markers))


@pytest.mark.slow
async def test_three_replicas_pack_100_requests_into_at_most_25_calls() -> None:
    # A long ack_wait: on two busy cores, no request is redelivered while it is being packed.
    async with cluster(SimConfig(latency_ms=50), ack_wait_s=30) as c:
        # A roomy window, so that a slow start on two busy cores does not split windows.
        env = {**c.env, "FLIPSYNC_PACK_WINDOW_MS": "1000"}
        replicas = [service_process(["router", "ledger"], env) for _ in range(3)]
        try:
            await asyncio.gather(*(replica.start() for replica in replicas))
            tenant = f"k{uuid.uuid4().hex[:8]}"
            requests = [packable(i, tenant=tenant) for i in range(100)]
            client = LlmClient(c.broker)
            results = await asyncio.gather(*(client.request(r, timeout_s=60) for r in requests))

            calls = (await c.sim.stats()).calls
            assert calls <= 25, calls
            assert sum(r.lever is Lever.PACKED for r in results) >= 75
            await assert_one_result_each_and_ledger_once(c, tenant, requests, list(results))
        finally:
            await asyncio.gather(*(replica.stop() for replica in replicas))


@pytest.mark.slow
@pytest.mark.chaos
async def test_a_replica_killed_during_a_packed_call_loses_no_request() -> None:
    # A short ack_wait, so the dead replica's requests come back soon.
    async with cluster(SimConfig(latency_ms=1500), ack_wait_s=2) as c:
        doomed = service_process(["router", "ledger"], c.env)
        survivor = service_process(["router", "ledger"], c.env)
        try:
            await doomed.start()
            tenant = f"k{uuid.uuid4().hex[:8]}"
            requests = [packable(i, tenant=tenant) for i in range(16)]
            client = LlmClient(c.broker)
            pending = [asyncio.create_task(client.request(r, timeout_s=60)) for r in requests]

            async def packed_calls_in_flight() -> bool:
                stats = await c.sim.stats()
                return stats.requests >= 2 and stats.calls == 0  # sent, not yet answered

            await eventually(packed_calls_in_flight)
            doomed.kill()
            caught = await lost_events(c.redis)  # the doomed replica's calls at the provider
            await survivor.start()
            results = await asyncio.gather(*pending)

            await assert_one_result_each_and_ledger_once(
                c, tenant, requests, list(results), lost_calls=caught
            )
        finally:
            await doomed.stop()
            await survivor.stop()
