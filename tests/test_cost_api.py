"""The cost HTTP API (cost_ledger/http.py) through an ASGI client, on a real Redis filled by
ledger events that went through the real ledger consumer on a real nats-server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Any

import httpx2
import nats
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from nats.js import JetStreamContext

from api.errors import install_error_handlers
from bus import subjects
from bus.codec import encode
from bus.embedded import EmbeddedNats
from bus.messages import LedgerEvent, Lever
from bus.settings import Settings
from bus.streams import ensure_streams
from cost_ledger import keys as lkeys
from cost_ledger.aggregates import AggregateStore
from cost_ledger.budgets.config import BudgetConfig
from cost_ledger.budgets.live import LiveBudgets
from cost_ledger.budgets.store import BudgetStore
from cost_ledger.consumer import LedgerConsumer
from cost_ledger.http import cost_api
from cost_ledger.rebuild import rebuild
from cost_ledger.recommendations import QualityEstimates
from cost_ledger.slices import MAX_RANGE_DAYS
from tests.cost_events import apply_all, as_old_deployment, ledger_event, ledger_keys
from tests.helpers import eventually


async def no_quality() -> QualityEstimates:
    """No recorded quality yet: the catalog's placeholders apply."""
    return {}


@pytest.fixture
async def api(redis_client: aioredis.Redis) -> AsyncIterator[httpx2.AsyncClient]:
    """An HTTP client of an app that mounts only the cost API, answering errors as the API
    does (api.errors)."""
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(cost_api(redis_client, Settings(), quality=no_quality))
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://cost") as client:
        yield client


@pytest.fixture
async def ledger(
    nats_server: EmbeddedNats, redis_client: aioredis.Redis
) -> AsyncIterator[JetStreamContext]:
    """JetStream, with the ledger consumer applying events to the test's Redis."""
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await ensure_streams(js, Settings())
    consumer = LedgerConsumer(AggregateStore(redis_client))
    await consumer.start(nc)
    yield js
    await consumer.stop()
    await nc.close()


async def get(api: httpx2.AsyncClient, path: str, **params: str) -> dict[str, Any]:
    """GET a cost endpoint and return its JSON body, checking it answered 200."""
    response = await api.get(f"/api/cost/{path}", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def publish(js: JetStreamContext, events: list[LedgerEvent]) -> None:
    """Publish events on their tenant's ledger subject."""
    for e in events:
        await js.publish(
            subjects.ledger(e.tenant), encode(e), headers={"Nats-Msg-Id": uuid.uuid4().hex}
        )


async def test_spend_through_the_ledger_consumer(
    api: httpx2.AsyncClient, ledger: JetStreamContext
) -> None:
    tenant = f"api-{uuid.uuid4().hex[:8]}"
    events = [
        ledger_event(at="2026-11-02T10:00:00", tenant=tenant, cost=300, baseline=1000,
                     workflow_id="wf-1"),
        ledger_event(at="2026-11-02T11:00:00", tenant=tenant, cost=0, baseline=1000,
                     lever=Lever.EXACT_CACHE, workflow_id="wf-1"),
        ledger_event(at="2026-11-03T09:00:00", tenant=tenant, agent="pricer", model="gpt-4o",
                     cost=900, baseline=900, workflow_id="wf-2"),
    ]  # fmt: skip
    await publish(ledger, events + events[:1])  # the first one redelivered: counted once

    async def consumed() -> bool:
        info = await ledger.consumer_info(subjects.STREAM_LEDGER, subjects.DURABLE_LEDGER)
        return bool(info.num_pending == 0 and info.num_ack_pending == 0)

    await eventually(consumed, timeout_s=15)
    spend = await get(api, "spend", tenant=tenant)
    assert spend["filter"]["tenant"] == tenant
    assert spend["totals"]["calls"] == 3
    assert spend["totals"]["spend_micro_usd"] == 1200
    assert spend["totals"]["savings_micro_usd"] == 1700
    assert spend["savings_by_lever"] == {"exact_cache": 1000, "routed": 700}
    assert spend["rates"]["exact_cache_hit_rate"] == pytest.approx(1 / 3)
    assert spend["products"] == {
        "products": 2, "spend_micro_usd": 1200, "baseline_micro_usd": 2900,
        "cost_per_product_micro_usd": 600,
    }  # fmt: skip
    assert [r["name"] for r in spend["by_agent"]] == ["lister", "pricer"]

    pricer = await get(api, "spend", tenant=tenant, agent="pricer")
    assert pricer["totals"]["spend_micro_usd"] == 900
    day = await get(api, "spend", tenant=tenant, start="2026-11-02", end="2026-11-02")
    assert day["totals"]["calls"] == 2
    model = await get(api, "spend", tenant=tenant, model="gpt-4o")
    assert model["totals"]["cost_per_call_micro_usd"] == 900

    series = await get(api, "timeseries", tenant=tenant)
    assert series["days"] == ["2026-11-02", "2026-11-03"]
    assert series["spend_micro_usd"] == [300, 900]
    assert series["calls_by_model"] == {"gpt-4o": [0, 1], "gpt-4o-mini": [2, 0]}

    budgets = await get(api, "budgets", tenant=tenant)
    assert isinstance(budgets["budgets"], list)
    for row in budgets["budgets"]:
        assert {"budget", "scope", "limit", "spent", "reserved", "alerts_sent"} <= set(row)

    forecast = await get(api, "forecast", tenant=tenant)
    assert forecast["status"] == "not_enough_history" and forecast["horizons"] == []
    anomalies = await get(api, "anomalies", tenant=tenant)
    assert anomalies["spend"] == [] and anomalies["cost_per_call"] == []
    recs = await get(api, "recommendations", tenant=tenant)
    assert recs["window_days"] == 2 and isinstance(recs["items"], list)


async def test_forecast_anomalies_and_recommendations_endpoints(
    api: httpx2.AsyncClient, redis_client: aioredis.Redis
) -> None:
    store = AggregateStore(redis_client)
    first = date(2026, 9, 1)
    events = []
    for d in range(30):
        day = (first + timedelta(days=d)).isoformat()
        for h in range(0, 24, 3):
            events.append(
                ledger_event(at=f"{day}T{h:02d}:00:00", agent="writer", model="gpt-4o",
                             cost=4000 + 100 * d + 10 * (h % 4), baseline=5000)
            )  # fmt: skip
    events += [
        ledger_event(at="2026-09-20T07:30:00", agent="writer", model="gpt-4o", cost=90_000)
        for _ in range(3)
    ]
    await apply_all(store, events)
    forecast = await get(api, "forecast", tenant="acme", end="2026-09-30")
    assert forecast["status"] == "ok"
    assert [h["days"] for h in forecast["horizons"]] == [30, 60, 90]
    assert len(forecast["daily"]) == 90 and forecast["daily"][0]["day"] == "2026-10-01"
    for h in forecast["horizons"]:
        assert h["lower_micro_usd"] <= h["spend_micro_usd"] <= h["upper_micro_usd"]

    anomalies = await get(api, "anomalies", tenant="acme", start="2026-09-18", end="2026-09-22")
    assert [a["hour"] for a in anomalies["spend"]] == ["2026-09-20T07"]
    assert anomalies["spend"][0]["causes"][0]["name"] == "writer"

    recs = await get(api, "recommendations", tenant="acme")
    cheaper = [r for r in recs["items"] if r["kind"] == "cheaper_tier"]
    assert cheaper and cheaper[0]["agent"] == "writer" and cheaper[0]["model"] == "gpt-4o"
    assert cheaper[0]["monthly_saving_micro_usd"] > 0


async def test_bad_filters_answer_400_with_a_reason(api: httpx2.AsyncClient) -> None:
    both = await api.get("/api/cost/spend", params={"agent": "a", "model": "m"})
    assert both.status_code == 400 and "not both" in both.json()["error"]["message"]
    tenant = await api.get("/api/cost/forecast", params={"tenant": "a.b"})
    assert tenant.status_code == 400 and "tenant" in tenant.json()["error"]["message"]
    backwards = await api.get(
        "/api/cost/anomalies", params={"start": "2026-11-05", "end": "2026-11-01"}
    )
    assert backwards.status_code == 400
    not_a_day = await api.get("/api/cost/spend", params={"start": "yesterday"})
    assert not_a_day.status_code == 422


VIEWS = ("spend", "timeseries", "hourly", "budgets", "forecast", "anomalies", "recommendations")


async def test_a_mistyped_agent_or_model_is_422_with_its_close_matches(
    api: httpx2.AsyncClient, redis_client: aioredis.Redis
) -> None:
    """Found by review: /api/cost/spend?agent=wrtier answered all zeros, as if that agent had
    simply spent nothing, where `flipsync report --agent wrtier` names the close matches.
    Every view refuses it the same way (report.unknown_name), naming only the names the
    tenant's own ledger holds (and the agent specs, the price catalog)."""
    await apply_all(
        AggregateStore(redis_client),
        [ledger_event(at="2026-11-02T10:00:00", agent="writer"),
         ledger_event(at="2026-11-02T10:00:00", tenant="other", agent="writes-secretly")],
    )  # fmt: skip
    for view in VIEWS:
        response = await api.get(f"/api/cost/{view}", params={"tenant": "acme", "agent": "wrtier"})
        assert response.status_code == 422, (view, response.text)
        error = response.json()["error"]
        assert error["code"] == "unknown_agent" and error["param"] == "agent"
        assert error["message"] == (
            "unknown agent 'wrtier': not a known agent and not in the ledger of tenant "
            "'acme'; did you mean writer?"
        )
    model = await api.get("/api/cost/spend", params={"tenant": "acme", "model": "gpt-4o-mnii"})
    assert model.status_code == 422 and model.json()["error"]["code"] == "unknown_model"
    assert "did you mean gpt-4o-mini" in model.json()["error"]["message"]
    # Another tenant's agent is neither known to this one nor offered to it.
    for agent in ("writes-secretly", "writes-secretli"):
        secret = await api.get("/api/cost/spend", params={"tenant": "acme", "agent": agent})
        assert secret.status_code == 422, secret.text
        assert "did you mean writes-secretly" not in secret.json()["error"]["message"]
    every = await api.get("/api/cost/spend", params={"agent": "writes-secretli"})  # operator
    assert "did you mean writes-secretly?" in every.json()["error"]["message"]
    # Known names read as before: an agent of the specs with no calls yet is zero spend, and
    # a catalog model, a dated snapshot of it, and another tenant's agent for every tenant.
    for params in (
        {"agent": "ebay_listing"},
        {"model": "gpt-4o-2024-08-06"},
        {"agent": "writes-secretly"},
        {"tenant": "acme", "agent": "writer"},
    ):
        assert (await api.get("/api/cost/spend", params=params)).status_code == 200, params


async def test_flush_and_rebuild_restores_every_view_exactly(
    api: httpx2.AsyncClient, ledger: JetStreamContext, redis_client: aioredis.Redis
) -> None:
    tenant = f"rb-{uuid.uuid4().hex[:8]}"
    events = [
        ledger_event(at=f"2026-10-{1 + i % 20:02d}T{i % 24:02d}:10:00", tenant=tenant,
                     agent=("lister", "pricer", "tagger")[i % 3], cost=100 + 7 * i,
                     baseline=1000, workflow_id=f"wf-{i % 5}",
                     lever=Lever.EXACT_CACHE if i % 4 == 0 else Lever.ROUTED)
        for i in range(60)
    ]  # fmt: skip
    await publish(ledger, events + events[:5])  # five redelivered: counted once

    async def consumed() -> bool:
        info = await ledger.consumer_info(subjects.STREAM_LEDGER, subjects.DURABLE_LEDGER)
        return bool(info.num_pending == 0 and info.num_ack_pending == 0)

    await eventually(consumed, timeout_s=15)

    async def snapshot() -> tuple[dict[Any, Any], list[dict[str, Any]]]:
        keys = sorted(await redis_client.keys(f"fs:ledger:cube:{lkeys.tag(lkeys.scope(tenant))}:*"))
        cube = {k: await redis_client.hgetall(k) for k in keys}
        views = [
            await get(api, path, tenant=tenant)
            for path in ("spend", "timeseries", "anomalies", "recommendations", "forecast")
        ]
        return cube, views

    before = await snapshot()
    assert before[1][0]["totals"]["calls"] == 60
    assert len(before[0]) > 40  # day and hour hashes, whole and per agent
    await redis_client.flushall()
    assert (await get(api, "spend", tenant=tenant))["totals"]["calls"] == 0
    live = LiveBudgets(redis_client, BudgetConfig.load(None))
    await rebuild(ledger, AggregateStore(redis_client), BudgetStore(redis_client, live))
    assert await snapshot() == before


async def test_unbounded_ranges_are_refused_or_clamped(
    api: httpx2.AsyncClient, redis_client: aioredis.Redis
) -> None:
    store = AggregateStore(redis_client)
    await apply_all(
        store, [ledger_event(at="2026-11-02T10:00:00"), ledger_event(at="2026-11-04T10:00:00")]
    )
    for path in ("spend", "timeseries", "forecast", "anomalies", "recommendations"):
        huge = await api.get(
            f"/api/cost/{path}", params={"start": "0001-01-01", "end": "9999-12-31"}
        )
        assert huge.status_code == 400, path
        assert f"at most {MAX_RANGE_DAYS} days" in huge.json()["error"]["message"]
    longest = date(2026, 1, 1) + timedelta(days=MAX_RANGE_DAYS - 1)
    edge = await get(api, "timeseries", start="2026-01-01", end=longest.isoformat())
    assert len(edge["days"]) == MAX_RANGE_DAYS
    over = (longest + timedelta(days=1)).isoformat()
    too_long = await api.get("/api/cost/spend", params={"start": "2026-01-01", "end": over})
    assert too_long.status_code == 400

    # An open bound is clamped to the days the ledger has seen.
    seen = ["2026-11-02", "2026-11-03", "2026-11-04"]
    for params in ({"start": "0001-01-01"}, {"end": "9999-12-31"}, {}):
        series = await get(api, "timeseries", **params)
        assert series["days"] == seen, params
        spend = await get(api, "spend", **params)
        assert spend["totals"]["calls"] == 2 and spend["filter"]["start"] == params.get("start")
    assert (await get(api, "timeseries", start="9999-01-01"))["days"] == []
    assert (await get(api, "timeseries", end="0001-12-31"))["days"] == []
    hours = await get(api, "anomalies", start="0001-01-01")
    assert hours["hours"] == 49  # 2026-11-02T10 .. 2026-11-04T10

    # A ledger longer than the limit: an open range reads the most recent MAX_RANGE_DAYS.
    await store.apply(ledger_event(at="2024-01-01T00:00:00"))
    series = await get(api, "timeseries")
    assert len(series["days"]) == MAX_RANGE_DAYS and series["days"][-1] == "2026-11-04"
    older = await get(api, "timeseries", start="2024-01-01")
    assert len(older["days"]) == MAX_RANGE_DAYS and older["days"][0] == "2024-01-01"


async def test_products_are_null_under_an_agent_or_model_filter(
    api: httpx2.AsyncClient, redis_client: aioredis.Redis
) -> None:
    await apply_all(
        AggregateStore(redis_client),
        [ledger_event(at="2026-11-02T10:00:00", workflow_id="wf-1", cost=400)],
    )
    assert (await get(api, "spend"))["products"]["cost_per_product_micro_usd"] == 400
    for params in ({"agent": "lister"}, {"model": "gpt-4o-mini"}):
        spend = await get(api, "spend", **params)
        assert spend["products"] is None and spend["totals"]["spend_micro_usd"] == 400
        series = await get(api, "timeseries", **params)
        assert series["products"] is None and series["cost_per_product_micro_usd"] is None


async def tenant_state(
    api: httpx2.AsyncClient, redis_client: aioredis.Redis, tenant: str
) -> tuple[dict[str, object], list[dict[str, Any]]]:
    """Every ledger key of a tenant's scope, and every view of the tenant through the API."""
    stored = await ledger_keys(redis_client, f"fs:ledger:*:{lkeys.tag(lkeys.scope(tenant))}:*")
    views = [
        await get(api, path, tenant=tenant)
        for path in ("spend", "timeseries", "anomalies", "recommendations", "forecast")
    ]
    return stored, views


async def test_rebuild_restores_the_cube_of_events_applied_before_it_existed(
    api: httpx2.AsyncClient, ledger: JetStreamContext, redis_client: aioredis.Redis
) -> None:
    tenant = f"old-{uuid.uuid4().hex[:8]}"
    events = [
        ledger_event(at=f"2026-10-{1 + i % 9:02d}T{i % 24:02d}:10:00", tenant=tenant,
                     agent=("lister", "pricer")[i % 2], cost=100 + 3 * i, workflow_id=f"wf-{i % 4}",
                     lever=Lever.SEMANTIC_CACHE if i % 5 == 0 else Lever.ROUTED)
        for i in range(30)
    ]  # fmt: skip
    await publish(ledger, events + events[:3])  # three redelivered: counted once

    async def consumed() -> bool:
        info = await ledger.consumer_info(subjects.STREAM_LEDGER, subjects.DURABLE_LEDGER)
        return bool(info.num_pending == 0 and info.num_ack_pending == 0)

    await eventually(consumed, timeout_s=15)
    fresh = await tenant_state(api, redis_client, tenant)
    assert fresh[1][0]["totals"]["calls"] == 30
    live = LiveBudgets(redis_client, BudgetConfig.load(None))
    budgets = BudgetStore(redis_client, live)

    # A Redis that applied the events before the cube: markers at version 1, no cube rows.
    assert await as_old_deployment(redis_client) > 0
    assert (await get(api, "spend", tenant=tenant))["totals"]["calls"] == 0  # understated
    report = await rebuild(ledger, AggregateStore(redis_client), budgets)
    assert report.completed == 30  # (other tests' events in the stream are applied anew)
    assert await tenant_state(api, redis_client, tenant) == fresh
    again = await rebuild(ledger, AggregateStore(redis_client), budgets)
    assert again.applied == 0 and again.completed == 0
    assert await tenant_state(api, redis_client, tenant) == fresh

    # Any derived keys lost or wrong (the cube deleted, markers kept): a fresh rebuild.
    cube = await redis_client.keys("fs:ledger:cube:*")
    await redis_client.delete(*cube)
    total_key = lkeys.aggregate(lkeys.scope(tenant), lkeys.Dimension.TOTAL, lkeys.TOTAL_MEMBER)
    await redis_client.hincrby(total_key, "calls", 5)
    report = await rebuild(ledger, AggregateStore(redis_client), budgets, fresh=True)
    assert report.cleared > 0 and report.applied >= 30 and report.completed == 0
    assert await tenant_state(api, redis_client, tenant) == fresh


async def test_a_huge_or_control_char_name_is_400_without_echoing_it(
    api: httpx2.AsyncClient,
) -> None:
    for params in ({"model": "m\x00\n" + "x" * 5000}, {"agent": "a" * 10_000}):
        response = await api.get("/api/cost/spend", params=params)
        assert response.status_code == 400, response.text
        assert len(response.json()["error"]["message"]) < 200, response.text
