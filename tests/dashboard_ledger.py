"""A ledger for the dashboard tests: three weeks of events, a burst, budgets and alerts."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import redis.asyncio as aioredis
from faststream.nats import NatsBroker

from bus.messages import LedgerEvent, Lever, Usage
from bus.settings import Settings
from cost_ledger.aggregates import AggregateStore
from cost_ledger.budgets.alerts import JetStreamAlerts
from cost_ledger.budgets.config import BudgetConfig
from cost_ledger.budgets.live import LiveBudgets
from cost_ledger.budgets.store import BudgetStore

OPERATOR_KEY = "fs-dashboard-test-operator"
ACME_KEY = "fs-dashboard-test-acme"
"""A tenant's key: the page shows that tenant only."""
DAYS = 21
SPIKE_AGO = timedelta(hours=5)
"""When a burst of escalated photo calls on the premium model happened: an anomaly."""
MODELS = {"lister": "gpt-4o-mini", "pricer": "gpt-4.1-nano", "photo": "gpt-4o"}
LEVERS = (
    [Lever.ROUTED] * 5
    + [Lever.EXACT_CACHE] * 2
    + [Lever.SEMANTIC_CACHE, Lever.DEDUP, Lever.PACKED, Lever.ESCALATED, Lever.PATTERN]
)
FREE_LEVERS = {Lever.EXACT_CACHE, Lever.SEMANTIC_CACHE, Lever.DEDUP, Lever.PATTERN}


@dataclass(frozen=True, kw_only=True)
class Ledger:
    """The events a test put in Redis, and the budget limits picked to land in each alert state."""

    now: datetime
    events: list[LedgerEvent]
    acme_daily_limit: int
    """85% used today: the 50% and 80% alerts were sent."""
    pricer_daily_limit: int
    """Exceeded today: the 100% alert was sent."""


def ledger_events(now: datetime) -> list[LedgerEvent]:
    """Three weeks of growing traffic of two tenants, plus a spike of costly calls 5 hours ago."""
    rng = random.Random(7)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    events: list[LedgerEvent] = []

    def add(
        at: datetime, *, tenant: str, agent: str, lever: Lever, workflow: str, scale: int = 1
    ) -> None:
        baseline = rng.randint(1_500, 4_000) * scale
        if lever in FREE_LEVERS:
            cost = 0
        elif lever is Lever.ESCALATED:
            cost = baseline * 3 // 5
        elif lever is Lever.PACKED:
            cost = baseline // 4
        else:
            cost = baseline // rng.randint(4, 8)
        n = len(events)
        events.append(
            LedgerEvent(
                event_id=f"ev-{n}",
                request_id=f"req-{n}",
                tenant=tenant,
                agent=agent,
                workflow_id=workflow,
                task_type="listing_copy" if agent == "lister" else agent,
                model=MODELS[agent],
                provider="simulated",
                usage=Usage(input_tokens=400, cached_input_tokens=100, output_tokens=80),
                cost_micro_usd=cost,
                baseline_micro_usd=baseline,
                lever=lever,
                catalog_version="2026-11-01",
                paid_call=cost > 0,
                simulated=True,
                started_ms=int(at.timestamp() * 1000) - 400,
                finished_ms=int(at.timestamp() * 1000),
                pack_size=4 if lever is Lever.PACKED else 0,
                workspace=("eu", "us")[n % 2],
                project=("spring", "fall", "summer")[n % 3],
            )
        )

    for ago in range(DAYS, -1, -1):
        day = today - timedelta(days=ago)
        # Today's traffic is spread over the hours elapsed so far; none is in the future.
        span = (now - today) if ago == 0 else timedelta(days=1)
        n = 24 + 2 * (DAYS - ago)
        for i in range(n):
            at = day + span * ((i % 24) + rng.random()) / 24
            add(
                at,
                tenant="acme" if i % 4 else "beta",
                agent=("lister", "pricer", "photo")[i % 3],
                lever=rng.choice(LEVERS),
                workflow=f"wf-{ago}-{i // 6}",
            )
    spike = now - SPIKE_AGO
    for i in range(30):
        add(
            spike + timedelta(seconds=i),
            tenant="acme",
            agent="photo",
            lever=Lever.ESCALATED,
            workflow=f"wf-spike-{i // 10}",
            scale=5,  # large photos: far above any ordinary hour, even a busy first hour of a day
        )
    return events


def budgets_file(path: Path, *, acme_daily: int, pricer_daily: int) -> Path:
    """A budgets file with one budget in each alert state (limits in micro-dollars)."""

    def usd(micro: int) -> str:
        return str(Decimal(micro) / 1_000_000)

    path.write_text(
        f"""
[budgets.acme-daily]
scope = "tenant"
period = "day"
tenant = "acme"
limit_usd = "{usd(acme_daily)}"

[budgets.pricer-daily]
scope = "agent"
period = "day"
tenant = "acme"
agent = "pricer"
limit_usd = "{usd(pricer_daily)}"

[budgets.all-monthly]
scope = "global"
period = "month"
limit_usd = "1000.00"
policy = "downgrade"
""",
        encoding="utf-8",
    )
    return path


async def fill_ledger(
    redis: aioredis.Redis, broker: NatsBroker, settings_dir: Path
) -> tuple[Ledger, Settings]:
    """Apply the events to the aggregates and settle them against the budgets, as the ledger
    service does (alerts go out through JetStream); returns them and the API's settings."""
    now = datetime.now(UTC)
    events = ledger_events(now)
    today = now.strftime("%Y-%m-%d")

    def spent_today(tenant: str, agent: str | None = None) -> int:
        return sum(
            e.cost_micro_usd
            for e in events
            if e.tenant == tenant
            and (agent is None or e.agent == agent)
            and datetime.fromtimestamp(e.finished_ms / 1000, UTC).strftime("%Y-%m-%d") == today
        )

    acme, pricer = spent_today("acme"), spent_today("acme", "pricer")
    assert acme > 0 and pricer > 0, "the generated ledger must spend today"
    ledger = Ledger(
        now=now,
        events=events,
        acme_daily_limit=math.ceil(acme / Decimal("0.85")),
        pricer_daily_limit=pricer * 9 // 10,
    )
    path = budgets_file(
        settings_dir / "budgets.toml",
        acme_daily=ledger.acme_daily_limit,
        pricer_daily=ledger.pricer_daily_limit,
    )
    settings = Settings(budget_config=path, api_keys={OPERATOR_KEY: "*", ACME_KEY: "acme"})
    live = LiveBudgets(redis, BudgetConfig.load(path))
    await live.ensure_seeded()
    await live.load()
    budgets = BudgetStore(redis, live, alerts=JetStreamAlerts(broker))
    await budgets.mark_ready()
    store = AggregateStore(redis)
    for event in events:
        assert await store.apply(event)
        await budgets.settle_event(event)
    return ledger, settings


SHORT_HOURS = 6
"""The short ledger's span: a first afternoon of use, far less than two days."""
ZERO_CALL_LEVERS = {
    Lever.EXACT_CACHE: 5,
    Lever.SEMANTIC_CACHE: 2,
    Lever.DEDUP: 3,
    Lever.PATTERN: 4,
    Lever.PHOTO_DEDUP: 1,
    Lever.ZERO_CALL: 6,
}
"""Work served without a provider call in the short ledger, and how many events of each."""


def short_ledger_events(now: datetime) -> list[LedgerEvent]:
    """A few hours of one new tenant's traffic: paid calls every hour, and zero-call work
    (caches, dedup, pattern responder, photo reuse, zero-call agents) in some of them."""
    rng = random.Random(11)
    levers = [Lever.ROUTED] * (2 * SHORT_HOURS) + [
        lever for lever, count in ZERO_CALL_LEVERS.items() for _ in range(count)
    ]
    events: list[LedgerEvent] = []
    for n, lever in enumerate(levers):
        # Paid calls spread over the span (one or two an hour), zero-call work over the span.
        at = now - timedelta(hours=(n * 7) % SHORT_HOURS, minutes=rng.randint(0, 50))
        baseline = rng.randint(1_500, 4_000)
        cost = baseline // 5 if lever is Lever.ROUTED else 0
        events.append(
            LedgerEvent(
                event_id=f"short-{n}",
                request_id=f"short-req-{n}",
                tenant="newco",
                agent="lister",
                workflow_id=f"short-wf-{n // 4}",
                task_type="listing_copy",
                model=MODELS["lister"],
                provider="simulated",
                usage=Usage(input_tokens=400, cached_input_tokens=0, output_tokens=80),
                cost_micro_usd=cost,
                baseline_micro_usd=baseline,
                lever=lever,
                catalog_version="2026-11-01",
                paid_call=cost > 0,
                simulated=True,
                started_ms=int(at.timestamp() * 1000) - 400,
                finished_ms=int(at.timestamp() * 1000),
            )
        )
    return events
