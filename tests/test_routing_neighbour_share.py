"""Routing neighbours past one replica (router.routing.neighbour_share): a verdict filed by
the replica that routed the request, whichever replica's consumer took it, reaches the other
replicas and a restarted one; bad input on either path files nothing and stops nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import nats
import numpy as np
import pytest
import redis.asyncio as aioredis
from nats.aio.client import Client
from redis.typing import EncodableT, FieldT

from bus.codec import encode
from bus.embedded import EmbeddedNats
from bus.messages import Lever
from bus.messages import QualitySignal as SignalMessage
from router.routing.neighbour_share import SharedOutcomes
from router.routing.neighbours import OutcomeMemory

INVOICE = np.array([1.0, 0.0], dtype=np.float32)
POEM = np.array([0.0, 1.0], dtype=np.float32)


@pytest.fixture
def stream() -> str:
    return f"fs:test:neighbours:{uuid.uuid4().hex}"


async def until(check: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    """Wait for check() to hold (the replicas read each other every poll_s)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        await asyncio.sleep(0.02)


def verdict(request_id: str, model: str, valid: bool, task_type: str = "qa") -> bytes:
    return encode(
        SignalMessage(
            request_id=request_id,
            tenant="t1",
            agent="a",
            task_type=task_type,
            model=model,
            lever=Lever.ROUTED,
            valid=valid,
        )  # fmt: skip
    )


async def replica(
    redis: aioredis.Redis, nats_url: str, stream: str, keep: int = 100
) -> tuple[SharedOutcomes, Client]:
    """A replica's memory joined to the others' on its own NATS connection."""
    client = await nats.connect(nats_url)
    shared = SharedOutcomes(OutcomeMemory(), redis, keep=keep, poll_s=0.05, stream=stream)
    await shared.start(client)
    return shared, client


async def test_a_verdict_is_filed_where_the_request_was_routed_and_reaches_every_replica(
    redis_client: aioredis.Redis, nats_server: EmbeddedNats, nc: Client, stream: str
) -> None:
    a, a_nc = await replica(redis_client, nats_server.url, stream)
    b, b_nc = await replica(redis_client, nats_server.url, stream)
    try:
        a.memory.remember("routed-by-a", "qa", INVOICE)  # only replica a knows its prompt
        await nc.publish("quality.t1", verdict("routed-by-a", "cheap", False))
        await until(lambda: b.memory.recorded("qa", "cheap") == 1, "b learns a's outcome")
        assert a.memory.recorded("qa", "cheap") == 1
        # b now routes invoices away from the model that failed on one; poems keep its prior
        on_invoice = b.memory.blend("qa", INVOICE, {"cheap": 0.9})["cheap"]
        assert on_invoice < 0.9 and b.memory.blend("qa", POEM, {"cheap": 0.9})["cheap"] == 0.9

        # The same verdict again (a publisher's retry) is not filed twice; a barrier behind it
        await nc.publish("quality.t1", verdict("routed-by-a", "cheap", False))
        b.memory.remember("routed-by-b", "qa", POEM)
        await nc.publish("quality.feedback.t1", verdict("routed-by-b", "strong", True))
        await until(lambda: a.memory.recorded("qa", "strong") == 1, "a learns b's feedback")
        assert a.memory.recorded("qa", "cheap") == 1 and b.memory.recorded("qa", "cheap") == 1
        assert await redis_client.xlen(stream) == 2
    finally:
        for shared, client in ((a, a_nc), (b, b_nc)):
            await shared.stop()
            await client.close()


async def test_a_restarted_replica_starts_with_the_last_kept_outcomes(
    redis_client: aioredis.Redis, nats_server: EmbeddedNats, nc: Client, stream: str
) -> None:
    a, a_nc = await replica(redis_client, nats_server.url, stream, keep=3)
    try:
        for i in range(5):
            a.memory.remember(f"r{i}", "qa", INVOICE)
            await nc.publish("quality.t1", verdict(f"r{i}", f"model-{i}", True))
        await until(lambda: a.memory.recorded("qa", "model-4") == 1, "a files all five")
        await a.flush()
    finally:
        await a.stop()
        await a_nc.close()
    assert await redis_client.xlen(stream) == 3  # the bound
    restarted = SharedOutcomes(OutcomeMemory(), redis_client, keep=3, stream=stream)
    assert await restarted.load() == 3
    kept = [restarted.memory.recorded("qa", f"model-{i}") for i in range(5)]
    assert kept == [0, 0, 1, 1, 1]  # the newest three


async def test_bad_verdicts_and_bad_stream_entries_file_nothing_and_stop_nothing(
    redis_client: aioredis.Redis, nats_server: EmbeddedNats, nc: Client, stream: str
) -> None:
    a, a_nc = await replica(redis_client, nats_server.url, stream)
    try:
        a.memory.remember("r", "qa", INVOICE)
        deep = b"[" * 10_000 + b"]" * 10_000
        for bad in (b"not json", b"{}", deep, b'{"request_id": "r"}', b"x" * 200_000):
            await nc.publish("quality.t1", bad)
        hit = verdict("r", "m", True)
        await nc.publish("quality.t1", hit.replace(b'"lever":"routed"', b'"lever":"exact_cache"'))
        await nc.publish("quality.t1", hit)  # the one good verdict, after all the bad ones
        await until(lambda: a.memory.recorded("qa", "m") == 1, "the good verdict is filed")
        vector = INVOICE.tobytes()
        entries: list[dict[FieldT, EncodableT]] = [
            {"r": "x", "t": "qa", "m": "m"},  # no outcome, no vector
            {"r": "x", "t": "qa", "m": "m", "y": "nan", "v": vector},
            {"r": "x", "t": "qa", "m": "m", "y": "2", "v": vector},
            {"r": "x", "t": "qa", "m": "m", "y": "1", "v": b"abc"},
            {"r": "x", "t": "qa", "m": "m" * 1000, "y": "1", "v": vector},
            {"r": "x", "t": "qa", "m": "m", "y": "1", "v": np.full(2, np.inf).tobytes()},
            {"r": "x", "t": "qa", "m": "m", "y": "1", "v": np.ones(3, np.float32).tobytes()},
            {"r": "x", "t": "qa", "m": "m2", "y": "1", "v": vector},  # good: the barrier
        ]
        for fields in entries:
            await redis_client.xadd(stream, fields)
        await until(lambda: a.memory.recorded("qa", "m2") == 1, "another replica's outcome")
        assert a.memory.recorded("qa", "m") == 1
        assert all(not task.done() for task in a._tasks)
    finally:
        await a.stop()
        await a_nc.close()


async def test_two_router_replicas_both_learn_from_a_verdict_on_either_ones_request() -> None:
    """Two stacks on one NATS and Redis (two router replicas): an agent's verdict on each
    request, published as agents do, is filed by prompt in both replicas' memories."""
    from bus import subjects
    from bus.llm_client import LlmClient
    from bus.settings import Settings
    from flipsync.stack import Service, start_stack
    from tests.helpers import make_request, router_stack

    async with router_stack() as first:
        second = await start_stack(
            Settings(nats_url=first.nats_url, redis_url=first.redis_url, sim_latency_ms=0),
            {Service.PROVIDER, Service.ROUTER},
        )
        try:
            memories = [
                c.memory
                for stack in (first, second)
                for c in stack.live_consumers
                if isinstance(c, SharedOutcomes)
            ]
            assert len(memories) == 2
            client, js = LlmClient(first.broker), first.broker.connection.jetstream()
            models: set[tuple[str, str]] = set()
            for i in range(6):  # two replicas pull them: each routes some
                request = make_request(text=f"Write a title for mug number {i}.")
                result = await client.request(request, 30)
                assert result.ok, result.reason
                models.add((request.task_type, result.model))
                signal = SignalMessage(
                    request_id=request.id, tenant=request.tenant, agent=request.agent,
                    task_type=request.task_type, model=result.model, lever=result.lever,
                    valid=i % 2 == 0,
                )  # fmt: skip
                await js.publish(subjects.quality(request.tenant), encode(signal))

            def filed(memory: OutcomeMemory) -> int:
                return sum(memory.recorded(task, model) for task, model in models)

            await until(lambda: all(filed(m) == 6 for m in memories), "both replicas, all six")
        finally:
            await second.stop()
