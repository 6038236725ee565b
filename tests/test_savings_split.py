"""Savings split by lever: each lever's part of the counterfactual chain, summing exactly to
baseline minus cost, from the price page's figures."""

from __future__ import annotations

import uuid
from datetime import date

import msgspec
import nats
import redis.asyncio as aioredis

from bus import subjects
from bus.codec import encode
from bus.embedded import EmbeddedNats
from bus.messages import ErrorCode, LedgerEvent, Lever, LlmRequest, LlmResult, Status, Usage
from bus.settings import Settings
from bus.streams import ensure_streams
from cost_ledger.aggregates import AggregateStore
from cost_ledger.api_models import Filter
from cost_ledger.budgets.config import BudgetConfig
from cost_ledger.budgets.live import LiveBudgets
from cost_ledger.budgets.store import BudgetStore
from cost_ledger.catalog import PriceCatalog
from cost_ledger.lever_split import LeverSplit
from cost_ledger.pricing import baseline_micro_usd, cost_micro_usd
from cost_ledger.rebuild import rebuild
from cost_ledger.report import render_spend, usd
from cost_ledger.savings import chain, net_by_lever, paid_call_steps, settled
from cost_ledger.spend import spend_view, timeseries_view
from cost_ledger.split_store import SplitStore
from router.levers.served import with_trim_savings
from router.outcomes import claimed, ledger_event
from tests.cost_events import apply_all
from tests.cost_events import ledger_event as ledger_event_at
from tests.helpers import make_request

CATALOG = PriceCatalog.load()


def test_a_routed_call_with_cached_tokens_splits_into_routing_and_prompt_cache() -> None:
    mini = CATALOG.get("gpt-4o-mini")
    usage = Usage(input_tokens=2000, cached_input_tokens=1024, output_tokens=100)
    naive = baseline_micro_usd(CATALOG, "gpt-4o", usage)
    assert naive == 2000 * 2.5 + 100 * 10  # gpt-4o, no cache: 6,000 micro-dollars
    split = chain(naive, paid_call_steps(mini, usage, naive=naive))
    # gpt-4o-mini uncached: 2000 x 0.15 + 100 x 0.60 = 360; with 1,024 cached at 0.075: 283.2.
    assert split == {"routed": 6000 - 360, "prompt_cache": 360 - 283}
    assert sum(split.values()) == naive - cost_micro_usd(mini, usage)


def test_packing_and_the_batch_api_take_their_own_parts() -> None:
    mini = CATALOG.get("gpt-4o-mini")
    alone = Usage(input_tokens=400, output_tokens=50)
    share = Usage(input_tokens=150, output_tokens=50)  # the shared instructions paid once
    naive = baseline_micro_usd(CATALOG, "gpt-4o", alone)  # 1000 + 500
    split = chain(naive, paid_call_steps(mini, share, naive=naive, alone=alone, packed=True))
    assert split == {"routed": 1500 - 90, "packed": 90 - 53}  # 52.5 rounds half up
    batch = chain(naive, paid_call_steps(mini, alone, naive=naive, batch=True))
    assert batch == {"routed": 1500 - 90, "batch_api": 45}


def test_the_ledger_event_completes_the_split_to_baseline_minus_cost() -> None:
    request: LlmRequest = make_request()
    routed = LlmResult(
        request_id=request.id, tenant=request.tenant, agent=request.agent, status=Status.OK,
        model="gpt-4o-mini", cost_micro_usd=283, baseline_micro_usd=6000, lever=Lever.ROUTED,
        savings_by_lever={"routed": 5640, "prompt_cache": 77},
    )  # fmt: skip
    trimmed = with_trim_savings(routed, 500, 200, ("history",))
    event = ledger_event(request, trimmed, CATALOG.version)
    assert event.lever is Lever.TRIMMED
    assert event.savings_by_lever == {"routed": 5640, "prompt_cache": 77, "trimmed": 500}
    assert sum(event.savings_by_lever.values()) == event.baseline_micro_usd - 283
    hit = LlmResult(
        request_id=request.id, tenant=request.tenant, agent=request.agent, status=Status.OK,
        baseline_micro_usd=4321, lever=Lever.EXACT_CACHE,
    )  # fmt: skip
    assert ledger_event(request, hit, CATALOG.version).savings_by_lever == {"exact_cache": 4321}


def test_a_paid_answer_that_failed_keeps_its_cost_and_claims_no_saving() -> None:
    request: LlmRequest = make_request()
    invalid = LlmResult(
        request_id=request.id, tenant=request.tenant, agent=request.agent, status=Status.ERROR,
        error_code=ErrorCode.SCHEMA_INVALID, model="gpt-4o-mini", cost_micro_usd=283,
        baseline_micro_usd=6000, lever=Lever.ROUTED, savings_by_lever={"routed": 5640},
    )  # fmt: skip
    event = ledger_event(request, claimed(invalid), CATALOG.version)
    assert event.cost_micro_usd == 283 and event.paid_call  # the paid call is still booked
    assert event.baseline_micro_usd == 283 and event.savings_by_lever == {}
    ok = msgspec.structs.replace(invalid, status=Status.OK, error_code=None)
    assert claimed(ok) is ok  # a delivered answer keeps its saving


def test_a_cascade_that_cost_more_books_a_negative_part_and_lever_costs_net_out() -> None:
    split = settled({"routed": 100}, baseline=1000, cost=1200, lever="escalated")
    assert split == {"routed": 100, "escalated": -300}
    gross, costs = net_by_lever([split, {"routed": 50}], [("semantic_cache", 7)])
    assert gross == {"routed": 150, "escalated": -300} and costs == {"semantic_cache": 7}


def split_events(tenant: str, hit_tenant: str, *, hit_at: str) -> list[LedgerEvent]:
    """A routed call with three levers' savings and a shadow check's lever cost (tenant's),
    and an exact-cache hit (hit_tenant's, at hit_at)."""
    routed = msgspec.structs.replace(
        ledger_event_at(at="2026-11-03T10:00:00", tenant=tenant, cost=300, baseline=1000),
        savings_by_lever={"trimmed": 100, "routed": 550, "prompt_cache": 50},
    )
    hit = ledger_event_at(at=hit_at, tenant=hit_tenant, cost=0, baseline=800,
                          lever=Lever.EXACT_CACHE)  # fmt: skip
    shadow = msgspec.structs.replace(
        ledger_event_at(at="2026-11-04T09:00:00", tenant=tenant, cost=40, baseline=0),
        overhead_of="semantic_cache",
    )
    return [routed, hit, shadow]


async def test_the_split_store_sums_each_event_once_and_nets_lever_costs(
    redis_client: aioredis.Redis,
) -> None:
    tenant = f"split-{uuid.uuid4().hex[:8]}"
    routed, hit, shadow = split_events(tenant, tenant, hit_at="2026-11-03T11:00:00")
    store = SplitStore(redis_client)
    assert [await store.apply(e) for e in (routed, hit, shadow, routed)] == [
        True, True, True, False,
    ]  # fmt: skip
    days = [date(2026, 11, 3), date(2026, 11, 4)]
    split = await store.split(tenant, days)
    assert split.gross == {"trimmed": 100, "routed": 550, "prompt_cache": 50, "exact_cache": 800}
    assert split.lever_cost == {"semantic_cache": 40}
    assert split.net["semantic_cache"] == -40
    # Net savings are baseline minus every cost, overheads included.
    assert sum(split.net.values()) == (1000 + 800 + 0) - (300 + 0 + 40)
    assert (await store.split(tenant, days[:1])).lever_cost == {}


async def test_a_batch_of_splits_writes_what_one_at_a_time_writes(
    redis_client: aioredis.Redis,
) -> None:
    """apply_many (one script per scope) adds the same sums as apply per event, across
    tenants and days, once per event id: repeats in the batch and events added before count
    nothing."""

    def events(tenants: tuple[str, str]) -> list[LedgerEvent]:
        first, second = tenants
        routed, hit, shadow = split_events(first, second, hit_at="2026-11-04T11:00:00")
        plain = ledger_event_at(at="2026-11-03T12:00:00", tenant=second, cost=10, baseline=90)
        return [routed, hit, shadow, plain, routed]

    days = [date(2026, 11, 3), date(2026, 11, 4)]
    store = SplitStore(redis_client)
    alone = (f"a-{uuid.uuid4().hex[:8]}", f"b-{uuid.uuid4().hex[:8]}")
    one_by_one = [await store.apply(e) for e in events(alone)]
    together = (f"a-{uuid.uuid4().hex[:8]}", f"b-{uuid.uuid4().hex[:8]}")
    batch = events(together)
    assert await store.apply(batch[3]) is True  # added before the batch
    assert await store.apply_many(batch) == [True, True, True, False, False]
    assert one_by_one == [True, True, True, True, False]
    for a, b in zip(alone, together, strict=True):
        assert await store.split(a, days) == await store.split(b, days)
    assert await store.apply_many([]) == []


def routing_events(tenant: str) -> list[LedgerEvent]:
    """A routed answer (gross 650 routed, 50 prompt cache), a cascade's failed attempt booked
    as routing's cost (120) and a semantic shadow check (40), on one day."""
    routed = msgspec.structs.replace(
        ledger_event_at(at="2026-11-03T10:00:00", tenant=tenant, cost=300, baseline=1000),
        savings_by_lever={"routed": 650, "prompt_cache": 50},
    )
    failed = msgspec.structs.replace(
        ledger_event_at(at="2026-11-03T10:00:01", tenant=tenant, cost=120, baseline=0),
        overhead_of="routing",
    )
    shadow = msgspec.structs.replace(
        ledger_event_at(at="2026-11-03T11:00:00", tenant=tenant, cost=40, baseline=0),
        overhead_of="semantic_cache",
    )
    return [routed, failed, shadow]


def test_routings_own_calls_are_charged_to_the_routed_lever() -> None:
    split = LeverSplit()
    for event in routing_events("t"):
        split.add(event)
    assert split.lever_cost == {"routing": 120, "semantic_cache": 40}  # as booked
    assert split.cost_by_lever == {"routed": 120, "semantic_cache": 40}
    assert split.net == {"routed": 530, "prompt_cache": 50, "semantic_cache": -40}


async def test_the_report_and_api_show_routings_net_saving_and_a_rebuild_keeps_it(
    own_nats: EmbeddedNats, redis_client: aioredis.Redis
) -> None:
    tenant = f"net-{uuid.uuid4().hex[:8]}"
    events = routing_events(tenant)
    store = AggregateStore(redis_client)
    await apply_all(store, events)
    for event in events:
        await SplitStore(redis_client).apply(event)
    view = await spend_view(store, Filter(tenant=tenant))
    assert view.savings_by_lever == {"routed": 530, "prompt_cache": 50, "semantic_cache": -40}
    # The timeseries' savings_by_lever means the same, day by day (found by a newcomer: it
    # was the served lever's saving there, so the same key disagreed between the two views).
    series = await timeseries_view(store, Filter(tenant=tenant))
    assert {k: sum(v) for k, v in series.savings_by_lever.items()} == view.savings_by_lever
    assert series.simulated == view.simulated
    assert view.gross_savings_by_lever == {"routed": 650, "prompt_cache": 50}
    assert view.lever_cost_micro_usd == {"routed": 120, "semantic_cache": 40}
    assert sum(view.savings_by_lever.values()) == 1000 - (300 + 120 + 40)
    text = render_spend(view)
    (line,) = [x for x in text.splitlines() if x.split()[:1] == ["routed"]]
    assert line.split()[1] == usd(530)
    assert line.endswith(f"net: gross {usd(650)} less its own calls {usd(120)}")
    assert not any(x.split()[:1] == ["routing"] for x in text.splitlines())

    nc = await nats.connect(own_nats.url)
    try:
        js = nc.jetstream()
        await ensure_streams(js, Settings())
        for event in events:
            await js.publish(subjects.ledger(tenant), encode(event), stream=subjects.STREAM_LEDGER)
        await redis_client.flushall()
        live = LiveBudgets(redis_client, BudgetConfig.load(None))
        await rebuild(js, store, BudgetStore(redis_client, live), fresh=True)
    finally:
        await nc.close()
    assert await spend_view(store, Filter(tenant=tenant)) == view
