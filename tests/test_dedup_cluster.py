"""Dedup and the exact cache across three router replicas running as separate processes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import redis.asyncio as aioredis
from faststream.nats import NatsBroker

from bus.broker import make_broker
from bus.embedded import EmbeddedNats, EmbeddedRedis
from bus.llm_client import LlmClient
from bus.messages import (
    Lever,
)
from bus.settings import Settings
from bus.streams import ensure_streams
from cost_ledger.aggregates import AggregateStore
from flipsync.children import ChildProcess, service_process
from router import keys
from simulator.config import SimConfig
from simulator.server import SimulatedProvider
from tests.helpers import eventually, make_request
from tests.test_dedup_replicas import KEY, same_requests

# --- three router replicas as separate processes -------------------------------------------


@dataclass
class Cluster:
    """Servers and router replicas shared by the multi-process tests."""

    nats: EmbeddedNats
    redis_server: EmbeddedRedis
    sim: SimulatedProvider
    replicas: list[ChildProcess]
    broker: NatsBroker
    redis: aioredis.Redis
    env: dict[str, str]

    @property
    def client(self) -> LlmClient:
        """A requester on the test's own connection."""
        return LlmClient(self.broker)

    async def calls(self) -> int:
        """Completions the simulated provider produced so far."""
        return (await self.sim.stats()).calls


@pytest.fixture(scope="module")
async def cluster() -> AsyncIterator[Cluster]:
    """nats-server, redis-server and a 1.5 s simulated provider here; 3 replicas as processes."""
    nats_server, redis_server = EmbeddedNats(), EmbeddedRedis()
    sim = SimulatedProvider(SimConfig(latency_ms=1500))
    await nats_server.start()
    await redis_server.start()
    await sim.start()
    env = {
        "NATS_URL": nats_server.url,
        "REDIS_URL": redis_server.url,
        "FLIPSYNC_SIM_BASE_URL": sim.base_url,
        "FLIPSYNC_ACK_WAIT_S": "2",
        "FLIPSYNC_EXTRA_AGENTS": '["listing"]',
    }
    replicas = [service_process(["router", "ledger"], env) for _ in range(3)]
    broker = make_broker(nats_server.url)
    redis = aioredis.Redis.from_url(redis_server.url)
    try:
        await broker.connect()
        await ensure_streams(broker.connection.jetstream(), Settings())
        await asyncio.gather(*(r.start(ready_within_s=60) for r in replicas))
        yield Cluster(nats_server, redis_server, sim, replicas, broker, redis, env)
    finally:
        for child in replicas:
            await child.stop()
        await broker.stop()
        await redis.aclose()
        await sim.stop()
        await redis_server.stop()
        await nats_server.stop()


async def _settled(cluster: Cluster, tenant: str, events: int) -> AggregateStore:
    store = AggregateStore(cluster.redis)

    async def counted() -> bool:
        return (await store.totals(tenant)).calls == events

    await eventually(counted, timeout_s=30)
    return store


@pytest.mark.slow
async def test_200_identical_requests_on_3_replicas_make_one_upstream_call(
    cluster: Cluster,
) -> None:
    tenant = f"d{uuid.uuid4().hex[:8]}"
    requests = same_requests(200, tenant)
    before = await cluster.calls()
    results = await asyncio.gather(*(cluster.client.request(r, timeout_s=60) for r in requests))

    assert await cluster.calls() == before + 1
    assert [r.request_id for r in results] == [r.id for r in requests]
    assert all(r.ok for r in results), {r.reason for r in results if not r.ok}
    assert len({r.content for r in results}) == 1
    paid = [r for r in results if r.cost_micro_usd > 0]
    assert len(paid) == 1 and paid[0].lever in (Lever.ROUTED, Lever.TRIMMED)
    # Requests that arrived while the call was in flight were coalesced (normally all of
    # them); one that a slow machine delivered after it finished was served by the cache.
    coalesced = sum(r.lever is Lever.DEDUP for r in results)
    assert coalesced > 100
    assert coalesced + sum(r.lever is Lever.EXACT_CACHE for r in results) == 199
    ledger = await (await _settled(cluster, tenant, 200)).totals(tenant)
    assert ledger.paid_calls == 1
    assert ledger.spend_micro_usd == paid[0].cost_micro_usd
    assert ledger.baseline_micro_usd == 200 * paid[0].baseline_micro_usd


@pytest.mark.slow
async def test_a_tenant_never_gets_another_tenants_cached_answer(cluster: Cluster) -> None:
    text = f"Summarise the return policy {uuid.uuid4().hex}."
    tenant_a, tenant_b = f"a{uuid.uuid4().hex[:8]}", f"b{uuid.uuid4().hex[:8]}"
    before = await cluster.calls()
    # At the same time: identical content, two tenants, so neither dedup nor cache may share.
    a1, b1 = make_request(tenant=tenant_a, text=text), make_request(tenant=tenant_b, text=text)
    first_a, first_b = await asyncio.gather(
        cluster.client.request(a1, timeout_s=30), cluster.client.request(b1, timeout_s=30)
    )
    assert await cluster.calls() == before + 2
    assert first_a.cost_micro_usd > 0 and first_b.cost_micro_usd > 0
    # Later: each tenant is served from its own entry, named by its own first request.
    a2, b2 = make_request(tenant=tenant_a, text=text), make_request(tenant=tenant_b, text=text)
    second_a, second_b = await asyncio.gather(
        cluster.client.request(a2, timeout_s=30), cluster.client.request(b2, timeout_s=30)
    )
    assert await cluster.calls() == before + 2
    assert second_a.lever is second_b.lever is Lever.EXACT_CACHE
    assert a1.id in second_a.reason and b1.id not in second_a.reason
    assert b1.id in second_b.reason and a1.id not in second_b.reason
    assert second_a.tenant == tenant_a and second_b.tenant == tenant_b


@pytest.mark.slow
@pytest.mark.chaos
async def test_killing_the_leader_replica_loses_nothing_and_pays_once(cluster: Cluster) -> None:
    tenant = f"k{uuid.uuid4().hex[:8]}"
    requests = same_requests(30, tenant)
    fingerprint = KEY(requests[0])
    before = await cluster.sim.stats()
    pending = [asyncio.create_task(cluster.client.request(r, timeout_s=60)) for r in requests]

    async def leader_calling() -> bool:
        return (await cluster.sim.stats()).requests > before.requests

    await eventually(leader_calling, timeout_s=20)
    holder = await cluster.redis.get(keys.flight_claim(tenant, fingerprint))
    assert isinstance(holder, bytes)
    leader_pid = int(holder.decode().rsplit(":", 1)[1])
    doomed = next(r for r in cluster.replicas if r.proc is not None and r.proc.pid == leader_pid)
    doomed.kill()  # mid-call: the provider is still working on the leader's request
    results = await asyncio.gather(*pending)

    assert [r.request_id for r in results] == [r.id for r in requests]
    assert all(r.ok for r in results), {r.reason for r in results if not r.ok}
    paid = [r for r in results if r.cost_micro_usd > 0]
    assert len(paid) == 1
    # The dead leader's call was at the provider, which bills it: it is booked too, as a
    # lost call at its maximum cost (router/paid_answers.py), beside the one that replaced it.
    store = await _settled(cluster, tenant, 31)
    ledger = await store.totals(tenant)
    assert ledger.paid_calls == 2
    assert ledger.spend_micro_usd > paid[0].cost_micro_usd
    # The provider saw the dead leader's call and the one that replaced it, no more.
    assert (await cluster.sim.stats()).calls - before.calls <= 2
    await doomed.stop()
    replacement = service_process(["router", "ledger"], cluster.env)
    await replacement.start(ready_within_s=60)
    cluster.replicas[cluster.replicas.index(doomed)] = replacement
