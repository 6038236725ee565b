"""Budget alerts at 50%, 80% and 100%: once each per period, across replicas, kept in JetStream."""

from __future__ import annotations

import asyncio
import uuid

import redis.asyncio as aioredis
from faststream.nats import NatsBroker

from bus import subjects
from bus.codec import decode
from bus.messages import BudgetAlert, BudgetPeriod, BudgetScope, BudgetSpec, now_ms
from cost_ledger.budgets.alerts import JetStreamAlerts
from cost_ledger.budgets.config import BudgetConfig, BudgetRules, EngineSettings
from cost_ledger.budgets.live import LiveBudgets
from cost_ledger.budgets.policy import Subject
from cost_ledger.budgets.scripts import Code
from cost_ledger.budgets.status import render_status
from cost_ledger.budgets.store import BudgetStore


class Collected:
    """An alert sink that keeps what it is given."""

    def __init__(self) -> None:
        self.alerts: list[tuple[BudgetAlert, str]] = []

    async def __call__(self, alert: BudgetAlert, msg_id: str) -> None:
        """Keep the alert."""
        await asyncio.sleep(0)
        self.alerts.append((alert, msg_id))


def rules(tenant: str, limit: int) -> BudgetRules:
    """One daily budget of a tenant."""
    spec = BudgetSpec(
        name="daily",
        scope=BudgetScope.TENANT,
        period=BudgetPeriod.DAY,
        limit_micro_usd=limit,
        tenant=tenant,
    )
    return BudgetRules(budgets={"daily": spec})


async def stores(
    redis: aioredis.Redis, budget: BudgetRules, sinks: list[Collected | JetStreamAlerts]
) -> list[BudgetStore]:
    """One store per sink (each a replica), sharing the live rules in Redis."""
    engine = EngineSettings(period_overlap_s=0)
    out = []
    for sink in sinks:
        live = LiveBudgets(redis, BudgetConfig(rules=budget, engine=engine))
        await live.ensure_seeded()
        await live.load()
        out.append(BudgetStore(redis, live, alerts=sink))
    await out[0].mark_ready()
    return out


async def test_each_threshold_fires_once_across_replicas(redis_client: aioredis.Redis) -> None:
    sinks = [Collected(), Collected()]
    a, b = await stores(redis_client, rules("acme", 1000), list(sinks))
    acme = Subject(tenant="acme", agent="copy")
    now = now_ms()
    # Two replicas settle concurrently, crossing 50% and 80% several times over.
    await asyncio.gather(
        *(
            (a if i % 2 else b).settle(f"r{i}", acme, cost=45, messages=0, at_ms=now)
            for i in range(20)
        )
    )  # 900 spent: 50% and 80% reached
    for i in range(5):  # more settles past 80% send nothing new
        await a.settle(f"x{i}", acme, cost=10, messages=0, at_ms=now)
    assert (await a.reserve("big", acme, 100)).code is Code.DENIED  # 950 + 100 > 1000
    assert (await b.reserve("big2", acme, 200)).code is Code.DENIED
    sent = [alert for sink in sinks for alert, _ in sink.alerts]
    assert sorted(alert.threshold for alert in sent) == [0.5, 0.8, 1.0]
    assert {alert.budget for alert in sent} == {"daily"}
    assert all(alert.tenant == "acme" and alert.scope == "tenant:acme" for alert in sent)
    assert all(alert.limit_micro_usd == 1000 for alert in sent)
    [row] = await a.status("acme")
    assert row.alerts_sent == (50, 80, 100)
    assert "50% 80% 100%" in render_status([row])  # shown in reports


async def test_a_refusal_far_from_the_limit_is_not_a_100_percent_alert(
    redis_client: aioredis.Redis,
) -> None:
    sink = Collected()
    [store] = await stores(redis_client, rules("acme", 1000), [sink])
    acme = Subject(tenant="acme", agent="copy")
    assert (await store.reserve("huge", acme, 5000)).code is Code.DENIED
    assert sink.alerts == []


async def test_raising_the_limit_arms_the_alerts_again(redis_client: aioredis.Redis) -> None:
    sink = Collected()
    [store] = await stores(redis_client, rules("acme", 100), [sink])
    acme = Subject(tenant="acme", agent="copy")
    await store.settle("r1", acme, cost=60, messages=0, at_ms=now_ms())
    assert [a.threshold for a, _ in sink.alerts] == [0.5]
    await store.live.apply(rules("acme", 1000).as_change("raise"))
    await store.settle("r2", acme, cost=450, messages=0, at_ms=now_ms())  # 510 of 1000
    assert [(a.threshold, a.limit_micro_usd) for a, _ in sink.alerts] == [(0.5, 100), (0.5, 1000)]


async def test_alerts_go_through_jetstream_once_each(
    redis_client: aioredis.Redis, broker: NatsBroker
) -> None:
    tenant = f"a{uuid.uuid4().hex[:8]}"
    replicas = await stores(
        redis_client, rules(tenant, 1000), [JetStreamAlerts(broker), JetStreamAlerts(broker)]
    )
    subject = Subject(tenant=tenant, agent="copy")
    await asyncio.gather(
        *(
            replicas[i % 2].settle(f"r{i}", subject, cost=100, messages=0, at_ms=now_ms())
            for i in range(10)
        )
    )  # 1000 of 1000: 50%, 80% and 100%
    js = broker.connection.jetstream()
    info = await js.stream_info(
        subjects.STREAM_LEDGER, subjects_filter=subjects.budget_alert(tenant)
    )
    # Counted on the alert subject: other tests share this server's LEDGER stream.
    assert (info.state.subjects or {}).get(subjects.budget_alert(tenant)) == 3
    kept = []
    sub = await js.subscribe(subjects.budget_alert(tenant), ordered_consumer=True)
    for _ in range(3):
        kept.append(decode((await sub.next_msg(timeout=5)).data, BudgetAlert))
    await sub.unsubscribe()
    assert sorted(a.threshold for a in kept) == [0.5, 0.8, 1.0]
    assert all(
        a.spent_micro_usd * 100 >= round(a.threshold * 100) * a.limit_micro_usd for a in kept
    )
