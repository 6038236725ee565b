"""SIGKILL a router worker holding in-flight requests: every request still gets one result."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis

from bus import subjects
from bus.broker import make_broker
from bus.embedded import EmbeddedNats, EmbeddedRedis
from bus.llm_client import LlmClient
from bus.settings import Settings
from bus.streams import ensure_streams
from cost_ledger.aggregates import AggregateStore
from flipsync.children import service_process
from simulator.config import SimConfig
from simulator.server import SimulatedProvider
from tests.helpers import consumers_quiet, eventually, make_request

REQUESTS = 40


@pytest.mark.slow
@pytest.mark.chaos
async def test_killed_worker_loses_no_request_and_ledger_counts_each_once() -> None:
    nats_server, redis_server = EmbeddedNats(), EmbeddedRedis()
    sim = SimulatedProvider(SimConfig(latency_ms=600))
    await nats_server.start()
    await redis_server.start()
    await sim.start()
    env = {
        "NATS_URL": nats_server.url,
        "REDIS_URL": redis_server.url,
        "FLIPSYNC_SIM_BASE_URL": sim.base_url,
        "FLIPSYNC_ACK_WAIT_S": "2",
    }
    doomed = service_process(["router", "ledger"], env)
    survivor = service_process(["router", "ledger"], env)
    broker = make_broker(nats_server.url)
    redis = aioredis.Redis.from_url(redis_server.url)
    try:
        await broker.connect()
        await ensure_streams(broker.connection.jetstream(), Settings())
        await doomed.start()
        tenant = f"k{uuid.uuid4().hex[:8]}"
        requests = [
            make_request(tenant=tenant, text=f"Write a title for sample item {i}.")
            for i in range(REQUESTS)
        ]
        client = LlmClient(broker)
        pending = [asyncio.create_task(client.request(r, timeout_s=60)) for r in requests]
        await asyncio.sleep(0.3)  # every request is now inside the doomed worker
        assert (await sim.stats()).calls == 0  # and none has been answered yet
        doomed.kill()
        await survivor.start()
        results = await asyncio.gather(*pending)

        assert [r.request_id for r in results] == [r.id for r in requests]
        assert all(r.ok for r in results), [r.reason for r in results if not r.ok]
        js = broker.connection.jetstream()
        # A result reaches its requester before the stream has stored it (the router acks
        # the request once it is stored): read the stream once every request is acked.
        await consumers_quiet(js, ledger=False)
        info = await js.stream_info(
            subjects.STREAM_RESULTS, subjects_filter=f"llm.result.{tenant}.>"
        )
        assert info.state.subjects is not None
        assert len(info.state.subjects) == REQUESTS
        assert set(info.state.subjects.values()) == {1}  # exactly one result per request

        store = AggregateStore(redis)
        billed = (await sim.stats()).calls  # the doomed worker's calls were at the provider

        answered = sum(r.cost_micro_usd for r in results)

        async def settled() -> bool:  # every call booked, and every answer's own event applied
            totals = await store.totals(tenant)
            return totals.paid_calls >= billed and totals.spend_micro_usd >= answered

        await eventually(settled, timeout_s=20)
        totals = await store.totals(tenant)
        # Every call the provider answered is booked: each request's own once, and each call
        # the kill caught at the provider as a lost call, at its maximum cost (packed items
        # are an event each, so events may outnumber calls).
        assert totals.paid_calls >= billed
        assert totals.spend_micro_usd >= answered
    finally:
        await doomed.stop()
        await survivor.stop()
        await broker.stop()
        await redis.aclose()
        await sim.stop()
        await redis_server.stop()
        await nats_server.stop()
