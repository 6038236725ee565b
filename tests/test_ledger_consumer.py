"""The ledger consumer, on a real nats-server and Redis: counts once, dead-letters bad input.

The session's nats-server and its durable ledger consumer are shared with other tests, so each
test uses its own tenant and asserts on that tenant only.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import msgspec
import pytest
import redis.asyncio as aioredis
from faststream.nats import NatsBroker
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from bus import subjects
from bus.broker import make_broker
from bus.codec import decode, encode
from bus.embedded import EmbeddedNats
from bus.messages import DeadLetter, ErrorCode, LedgerEvent, Lever, Usage
from bus.settings import Settings
from bus.streams import ensure_streams
from cost_ledger.aggregates import AggregateStore
from cost_ledger.catalog import PriceCatalog
from cost_ledger.consumer import LedgerConsumer
from cost_ledger.keys import Dimension
from cost_ledger.pricing import baseline_micro_usd, cost_micro_usd
from cost_ledger.report import SIMULATED_NOTE, build_report, render_report

TIMEOUT_S = 10.0


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp() * 1000)


@pytest.fixture
async def js(nc: NatsClient) -> JetStreamContext:
    """A JetStream context, with every FlipSync stream in place."""
    js = nc.jetstream()
    await ensure_streams(js, Settings())
    return js


@pytest.fixture
async def store(redis_client: aioredis.Redis) -> AggregateStore:
    return AggregateStore(redis_client)


@pytest.fixture
async def broker(
    nats_server: EmbeddedNats, nc: NatsClient, js: JetStreamContext, store: AggregateStore
) -> AsyncIterator[NatsBroker]:
    """A running broker beside the live ledger consumer, both stopped at the end of the test."""
    broker = make_broker(nats_server.url)
    await broker.start()
    consumer = LedgerConsumer(store)
    await consumer.start(nc)
    yield broker
    await consumer.stop()
    await broker.stop()


@pytest.fixture
def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


async def eventually(check: Callable[[], Awaitable[bool]]) -> None:
    """Wait until check() holds; fail the test after TIMEOUT_S seconds."""
    async with asyncio.timeout(TIMEOUT_S):
        while True:
            if await check():
                return
            await asyncio.sleep(0.02)


async def publish(js: JetStreamContext, subject: str, body: bytes, msg_id: str) -> int:
    """Publish to JetStream with a message id; return the stream sequence."""
    ack = await js.publish(subject, body, headers={"Nats-Msg-Id": msg_id})
    assert not ack.duplicate
    return ack.seq


async def consumed_through(js: JetStreamContext, seq: int) -> None:
    """Wait until the ledger consumer has acked every message up to stream sequence seq."""

    async def acked() -> bool:
        info = await js.consumer_info(subjects.STREAM_LEDGER, subjects.DURABLE_LEDGER)
        return info.ack_floor is not None and (info.ack_floor.stream_seq or 0) >= seq

    await eventually(acked)


def priced(
    catalog: PriceCatalog, tenant: str, agent: str, model: str, usage: Usage, **kw: object
) -> LedgerEvent:
    """A routed, paid ledger event priced with the catalog, finished on 2026-11-02."""
    fields: dict[str, object] = {
        "event_id": uuid.uuid4().hex,
        "request_id": uuid.uuid4().hex,
        "tenant": tenant,
        "agent": agent,
        "workflow_id": "wf",
        "task_type": "general",
        "model": model,
        "provider": catalog.get(model).provider,
        "usage": usage,
        "cost_micro_usd": cost_micro_usd(catalog.get(model), usage),
        "baseline_micro_usd": baseline_micro_usd(catalog, "gpt-4o", usage),
        "lever": Lever.ROUTED,
        "catalog_version": catalog.version,
        "paid_call": True,
        "finished_ms": _ms("2026-11-02T09:00:00"),
    }
    fields.update(kw)
    return msgspec.convert(fields, LedgerEvent)


@pytest.mark.usefixtures("broker")
async def test_events_are_aggregated_and_a_duplicate_counts_once(
    js: JetStreamContext, store: AggregateStore, tenant: str
) -> None:
    catalog = PriceCatalog.load()
    usage = Usage(input_tokens=1200, cached_input_tokens=1000, output_tokens=300)
    events = [
        priced(catalog, tenant, "lister", "gpt-4o-mini", usage),
        priced(catalog, tenant, "pricer", "gemini-2.5-flash", usage),
        priced(catalog, tenant, "lister", "claude-haiku-3.5", usage,
               finished_ms=_ms("2026-11-03T01:00:00")),
    ]  # fmt: skip
    subject = subjects.ledger(tenant)
    for e in events:
        await publish(js, subject, encode(e), e.event_id)
    # A redelivered or republished event: a new message id, so JetStream keeps both copies.
    last = await publish(js, subject, encode(events[0]), f"{events[0].event_id}-again")
    await consumed_through(js, last)

    totals = await store.totals(tenant)
    assert totals.calls == 3 and totals.paid_calls == 3
    assert totals.spend_micro_usd == sum(e.cost_micro_usd for e in events)
    assert totals.baseline_micro_usd == sum(e.baseline_micro_usd for e in events)
    assert totals.input_tokens == 3600 and totals.cached_input_tokens == 3000
    agents = await store.breakdown(Dimension.AGENT, tenant)
    assert {a: t.calls for a, t in agents.items()} == {"lister": 2, "pricer": 1}
    days = await store.breakdown(Dimension.DAY, tenant)
    assert {d: t.calls for d, t in days.items()} == {"2026-11-02": 2, "2026-11-03": 1}
    models = await store.breakdown(Dimension.MODEL, tenant)
    assert models["gpt-4o-mini"].spend_micro_usd == events[0].cost_micro_usd
    assert tenant in await store.members(Dimension.TENANT)


@pytest.mark.usefixtures("broker")
async def test_malformed_events_go_to_the_dead_letter_queue_and_consuming_goes_on(
    nc: NatsClient, js: JetStreamContext, store: AggregateStore, tenant: str
) -> None:
    letters: asyncio.Queue[DeadLetter] = asyncio.Queue()

    async def on_letter(msg: Msg) -> None:
        await letters.put(decode(msg.data, DeadLetter))

    sub = await nc.subscribe(subjects.dead_letter("ledger"), cb=on_letter)
    subject = subjects.ledger(tenant)
    good = priced(PriceCatalog.load(), tenant, "lister", "gpt-4.1-nano", Usage(input_tokens=10))
    not_an_event = DeadLetter(
        source_subject="x", error_code=ErrorCode.MALFORMED, reason="?", payload=b""
    )
    other_tenant = msgspec.structs.replace(good, event_id="e-other", tenant="someone-else")
    bad = [b"{not json", encode(not_an_event), encode(other_tenant)]
    for i, body in enumerate(bad):
        await publish(js, subject, body, f"{tenant}-bad-{i}")
    last = await publish(js, subject, encode(good), good.event_id)

    mine: list[DeadLetter] = []
    async with asyncio.timeout(TIMEOUT_S):
        while len(mine) < len(bad):
            letter = await letters.get()
            if letter.source_subject == subject:
                mine.append(letter)
    await sub.unsubscribe()
    assert sorted(letter.payload for letter in mine) == sorted(bad)
    assert {letter.error_code for letter in mine} == {ErrorCode.MALFORMED}
    assert all("LedgerEvent" in letter.reason for letter in mine)
    assert all(letter.headers.get("Nats-Msg-Id", "").startswith(tenant) for letter in mine)

    await consumed_through(js, last)
    totals = await store.totals(tenant)
    assert totals.calls == 1 and totals.spend_micro_usd == good.cost_micro_usd


@pytest.mark.usefixtures("broker")
async def test_report_names_agents_models_days_and_simulated_spend(
    js: JetStreamContext, store: AggregateStore, tenant: str
) -> None:
    catalog = PriceCatalog.load()
    usage = Usage(input_tokens=2000, output_tokens=400)
    events = [
        priced(catalog, tenant, "title-writer", "gpt-4.1-mini", usage, simulated=True),
        priced(catalog, tenant, "photo-judge", "gemini-2.5-flash", usage, simulated=True,
               finished_ms=_ms("2026-11-04T12:00:00")),
        priced(catalog, tenant, "title-writer", "gpt-4.1-mini", usage, simulated=True,
               lever=Lever.EXACT_CACHE, cost_micro_usd=0, paid_call=False),
    ]  # fmt: skip
    last = 0
    for e in events:
        last = await publish(js, subjects.ledger(tenant), encode(e), e.event_id)
    await consumed_through(js, last)

    report = await build_report(store, tenant)
    assert report.simulated and report.calls == 3 and report.paid_calls == 2
    assert report.savings_usd == report.baseline_usd - report.spend_usd > 0
    assert set(report.savings_by_lever_usd) == {"routed", "exact_cache"}
    text = render_report(report)
    for name in ("title-writer", "photo-judge", "gpt-4.1-mini", "gemini-2.5-flash"):
        assert name in text
    assert "2026-11-02" in text and "2026-11-04" in text
    assert SIMULATED_NOTE in text


@pytest.mark.usefixtures("broker")
async def test_forged_amounts_and_times_are_dead_lettered_not_booked(
    nc: NatsClient, js: JetStreamContext, store: AggregateStore, tenant: str
) -> None:
    """Negative money or tokens would take spend (and budgets) down; amounts past 64 bits or
    a finish time past year 9999 cannot be applied: each is one clear dead letter."""
    letters: asyncio.Queue[DeadLetter] = asyncio.Queue()

    async def on_letter(msg: Msg) -> None:
        await letters.put(decode(msg.data, DeadLetter))

    sub = await nc.subscribe(subjects.dead_letter("ledger"), cb=on_letter)
    subject = subjects.ledger(tenant)
    good = priced(PriceCatalog.load(), tenant, "lister", "gpt-4.1-nano", Usage(input_tokens=10))
    forged: list[dict[str, object]] = [
        {"cost_micro_usd": -1_000_000},
        {"baseline_micro_usd": -5},
        {"usage": Usage(input_tokens=-(10**6))},
        {"usage": Usage(output_tokens=5, reasoning_tokens=-1)},
        {"cost_micro_usd": 2**70},
        {"pack_size": -3},
        {"finished_ms": 10**18},
        {"finished_ms": -(10**18)},
    ]
    bodies = [
        encode(msgspec.structs.replace(good, event_id=f"{tenant}-f{i}", **change))
        for i, change in enumerate(forged)
    ]
    for i, body in enumerate(bodies):
        await publish(js, subject, body, f"{tenant}-forged-{i}")
    last = await publish(js, subject, encode(good), good.event_id)

    mine: list[DeadLetter] = []
    async with asyncio.timeout(TIMEOUT_S):
        while len(mine) < len(bodies):
            letter = await letters.get()
            if letter.source_subject == subject:
                mine.append(letter)
    await sub.unsubscribe()
    assert sorted(letter.payload for letter in mine) == sorted(bodies)
    assert {letter.error_code for letter in mine} == {ErrorCode.MALFORMED}
    assert all("LedgerEvent" in letter.reason for letter in mine), [m.reason for m in mine]
    await consumed_through(js, last)
    totals = await store.totals(tenant)
    assert totals.calls == 1 and totals.spend_micro_usd == good.cost_micro_usd
