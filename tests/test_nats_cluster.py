"""A three-node NATS cluster loses nothing when the requests stream's leader is SIGKILLed.

Three real nats-servers clustered on loopback, the FlipSync streams at three replicas, a few
thousand LlmRequests published with JetStream acks (each retried under its own Nats-Msg-Id until
acked, as a requester would) while a durable pull consumer reads them; one node is killed mid-run.
Every acked publish must be consumed, once per id, and the stream's sequence has no gaps.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import nats
import nats.errors
import nats.js.errors
import pytest
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig

from bus import subjects
from bus.codec import decode, encode
from bus.embedded.nats_cluster import EmbeddedNatsCluster
from bus.messages import LlmRequest
from bus.publishing import MSG_ID
from bus.settings import Settings
from bus.streams import ensure_streams
from tests.helpers import eventually, make_request

pytestmark = [pytest.mark.slow, pytest.mark.chaos]

TOTAL = 3000
KILL_AT = 1000
"""Acked publishes before the requests stream's leader is killed."""
IN_FLIGHT = 64
DURABLE = "cluster-chaos"
RETRYABLE = (nats.errors.Error, nats.js.errors.Error, OSError)


@dataclass
class Run:
    """What happened, for the assertions and the printed figures."""

    started: float
    acked: dict[str, int] = field(default_factory=dict)
    """Request id -> stream sequence of its ack."""
    duplicate_acks: int = 0
    retries: int = 0
    unacked: int = 0
    deliveries: collections.Counter[str] = field(default_factory=collections.Counter)
    killed_at: float | None = None
    killed: str = ""
    recovered_at: float | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def consumed(self) -> set[str]:
        """Ids the consumer processed (an idempotent handler processes each once)."""
        return set(self.deliveries)


async def _connect(urls: list[str], run: Run, name: str) -> Client:
    async def on_error(exc: Exception) -> None:
        run.errors.append(f"{name}: {type(exc).__name__}")

    return await nats.connect(
        servers=urls,
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.1,
        connect_timeout=2,
        error_cb=on_error,
    )


@contextlib.asynccontextmanager
async def _cluster() -> AsyncIterator[EmbeddedNatsCluster]:
    cluster = EmbeddedNatsCluster(3)
    await cluster.start()
    try:
        yield cluster
    finally:
        await cluster.stop()


async def _ensure_streams_when_meta_leader(nc: Client, settings: Settings) -> float:
    """Create the streams as soon as the cluster has elected its meta leader; seconds waited."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with asyncio.timeout(20):
        while True:
            try:
                await ensure_streams(nc.jetstream(timeout=2), settings)
                return loop.time() - start
            except RETRYABLE:
                await asyncio.sleep(0.2)


async def _publish(nc: Client, run: Run, index: int, limit: asyncio.Semaphore) -> None:
    js = nc.jetstream(timeout=2)
    request = make_request(request_id=f"r{index:05d}", text=f"Title for product {index}")
    subject = subjects.llm_request(request.tenant, request.agent)
    data = encode(request)
    loop = asyncio.get_running_loop()
    async with limit:
        deadline = loop.time() + 25
        while True:
            attempt = loop.time()
            try:
                ack = await js.publish(subject, data, headers={MSG_ID: request.id})
            except RETRYABLE:
                run.retries += 1
                if loop.time() > deadline:
                    run.unacked += 1
                    return
                await asyncio.sleep(0.05)
                continue
            run.acked[request.id] = ack.seq
            run.duplicate_acks += int(bool(ack.duplicate))
            if run.killed_at is not None and attempt > run.killed_at and run.recovered_at is None:
                run.recovered_at = loop.time()
            return


async def _consume(nc: Client, run: Run, done: asyncio.Event) -> None:
    js = nc.jetstream(timeout=2)
    config = ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=3.0, max_ack_pending=4000)
    async with asyncio.timeout(20):
        while True:
            try:
                sub = await js.pull_subscribe(
                    subjects.REQUESTS_ALL, DURABLE, stream=subjects.STREAM_REQUESTS, config=config
                )
                break
            except RETRYABLE:
                await asyncio.sleep(0.2)
    while not done.is_set():
        try:
            msgs = await sub.fetch(256, timeout=0.5)
        except nats.errors.TimeoutError:
            continue
        except RETRYABLE:
            await asyncio.sleep(0.1)
            continue
        for msg in msgs:
            run.deliveries[decode(msg.data, LlmRequest).id] += 1
            with contextlib.suppress(*RETRYABLE):
                await msg.ack()


async def _kill_stream_leader(nc: Client, cluster: EmbeddedNatsCluster, run: Run) -> None:
    while len(run.acked) < KILL_AT:  # noqa: ASYNC110 - the publishers fill run.acked
        await asyncio.sleep(0.01)
    info = await nc.jetstream(timeout=2).stream_info(subjects.STREAM_REQUESTS)
    assert info.cluster is not None and info.cluster.leader is not None
    run.killed = info.cluster.leader
    await cluster.node(run.killed).kill()
    run.killed_at = asyncio.get_running_loop().time()


async def _settled(nc: Client) -> tuple[int, int]:
    """(pending, ack pending) of the consumer, read from the surviving nodes."""
    info = await nc.jetstream(timeout=2).consumer_info(subjects.STREAM_REQUESTS, DURABLE)
    return info.num_pending or 0, info.num_ack_pending or 0


async def test_killing_a_node_loses_no_acked_request() -> None:
    """Publish 3000 requests, SIGKILL the stream leader after 1000: all acked ones arrive."""
    loop = asyncio.get_running_loop()
    settings = Settings(stream_replicas=3)
    async with _cluster() as cluster:
        run = Run(started=loop.time())
        publisher = await _connect(cluster.urls, run, "publisher")
        consumer = await _connect(cluster.urls, run, "consumer")
        try:
            meta_wait = await _ensure_streams_when_meta_leader(publisher, settings)
            info = await publisher.jetstream().stream_info(subjects.STREAM_REQUESTS)
            assert info.config.num_replicas == 3
            assert info.cluster is not None and len(info.cluster.replicas or []) == 2

            done = asyncio.Event()
            consuming = asyncio.create_task(_consume(consumer, run, done))
            killing = asyncio.create_task(_kill_stream_leader(publisher, cluster, run))
            limit = asyncio.Semaphore(IN_FLIGHT)
            load_start = loop.time()
            await asyncio.gather(*(_publish(publisher, run, i, limit) for i in range(TOTAL)))
            publish_s = loop.time() - load_start
            await killing

            async def drained() -> bool:
                if not run.consumed >= set(run.acked):
                    return False
                with contextlib.suppress(*RETRYABLE):
                    return await _settled(consumer) == (0, 0)
                return False

            await eventually(drained, timeout_s=20)
            drained_s = loop.time() - load_start
            done.set()
            await consuming
        finally:
            await publisher.close()
            await consumer.close()

    lost = set(run.acked) - run.consumed
    redelivered = sum(count - 1 for count in run.deliveries.values())
    seqs = sorted(run.acked.values())
    assert run.killed_at is not None and run.recovered_at is not None
    print(
        f"\nNATS cluster chaos: 3 nodes, R3 streams, meta leader after {meta_wait:.2f}s; "
        f"killed {run.killed} (LLM_REQUESTS leader) after {KILL_AT} acks\n"
        f"  published {TOTAL}, acked {len(run.acked)}, unacked {run.unacked}, "
        f"publish retries {run.retries}, duplicate acks {run.duplicate_acks}\n"
        f"  consumed {len(run.consumed)} distinct ids ({sum(run.deliveries.values())} "
        f"deliveries, {redelivered} redelivered), lost {len(lost)}, "
        f"unexpected {len(run.consumed - set(run.acked))}\n"
        f"  publishes acked again {run.recovered_at - run.killed_at:.2f}s after the kill; "
        f"load published in {publish_s:.2f}s, all consumed after {drained_s:.2f}s"
    )
    assert run.unacked == 0
    assert len(run.acked) == TOTAL
    assert not lost
    assert run.consumed == set(run.acked)
    assert seqs == list(range(1, TOTAL + 1)), "the stream sequence has gaps or repeats"
