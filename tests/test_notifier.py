"""Budget alerts reach people: a webhook and an email, each alert once per target, across
replicas, redeliveries and a receiver that fails first."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bus import subjects
from bus.codec import decode
from bus.embedded import EmbeddedNats, EmbeddedRedis
from bus.llm_client import LlmClient
from bus.messages import BudgetAlert
from bus.settings import Settings
from bus.settings_sections import NotifySettings
from cost_ledger.aggregates import AggregateStore
from cost_ledger.budgets import keys as budget_keys
from cost_ledger.budgets.alerts import JetStreamAlerts
from cost_ledger.budgets.config import BudgetConfig
from cost_ledger.budgets.crossings import crossing_of
from cost_ledger.budgets.errors import BudgetConfigError
from flipsync.stack import Service, Stack, start_stack
from notifier import NotifierService
from notifier.errors import TargetError
from notifier.once import Delivery
from notifier.render import Notice
from notifier.senders import Senders
from notifier.targets import Mailbox, Webhook, parse_target
from tests.cost_events import apply_all, ledger_event
from tests.helpers import eventually, make_request
from tests.notify_receivers import SmtpReceiver, WebhookReceiver
from tests.test_anomalies import SPIKE, steady_hours

FAST_RETRIES = NotifySettings(attempts=2, backoff_base_s=0.01, backoff_max_s=0.2)


def budgets_file(tmp_path: Path, name: str, limit_usd: str, notify: list[str]) -> Path:
    """A budgets file with one tenant-daily budget notifying these targets."""
    path = tmp_path / "budgets.toml"
    targets = ", ".join(f'"{t}"' for t in notify)
    path.write_text(
        f'[budgets.{name}]\nscope = "tenant"\nperiod = "day"\nlimit_usd = "{limit_usd}"\n'
        f'policy = "refuse"\nnotify = [{targets}]\n'
    )
    return path


@pytest.fixture
async def webhook() -> AsyncIterator[WebhookReceiver]:
    """A webhook that answers 503 to its first three POSTs."""
    receiver = WebhookReceiver(fail_first=3)
    await receiver.start()
    yield receiver
    await receiver.stop()


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    """A local SMTP server."""
    receiver = SmtpReceiver()
    receiver.start()
    yield receiver
    receiver.stop()


def handled(stacks: list[Stack]) -> dict[Delivery, int]:
    """Deliveries by outcome, summed over the notifier replicas."""
    total = dict.fromkeys(Delivery, 0)
    for stack in stacks:
        assert stack.notifier is not None
        for outcome, n in stack.notifier.delivered.items():
            total[outcome] += n
    return total


async def test_a_budget_alert_reaches_a_webhook_once_across_two_replicas(
    own_nats: EmbeddedNats,
    redis_server: EmbeddedRedis,
    redis_client: aioredis.Redis,
    webhook: WebhookReceiver,
    tmp_path: Path,
) -> None:
    name = f"ops-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        nats_url=own_nats.url,
        redis_url=redis_server.url,
        budget_config=budgets_file(tmp_path, name, "2.00", [webhook.url]),
        notify=FAST_RETRIES,
    )
    replicas = [await start_stack(settings, [Service.NOTIFIER]) for _ in range(2)]
    try:
        alert = BudgetAlert(
            scope="tenant:shop1",
            period="day",
            threshold=0.8,
            limit_micro_usd=2_000_000,
            spent_micro_usd=1_650_000,
            budget=name,
            tenant="shop1",
            period_key="d2026-12-04",
        )
        alert_id = crossing_of(alert).marker.removeprefix(budget_keys.ALERT_PREFIX)
        publish = JetStreamAlerts(replicas[0].broker)
        # Two copies in the stream (say, two ledger replicas that both published it): each
        # replica may get one, and the first answers of the webhook are 503s.
        await publish(alert, f"{alert_id}-a")
        await publish(alert, f"{alert_id}-b")

        async def settled() -> bool:  # each copy ended sent, or found sent already
            done = handled(replicas)
            return done[Delivery.SENT] + done[Delivery.ALREADY_SENT] >= 2

        await eventually(settled, timeout_s=30)
        outcomes = handled(replicas)
    finally:
        for stack in replicas:
            await stack.stop()

    assert webhook.refused == 3  # it failed first, and was retried until it took the alert
    assert len(webhook.accepted) == 1, [p.body for p in webhook.accepted]
    post = webhook.accepted[0]
    assert post.body["flipsync"]["id"] == alert_id
    assert post.body["flipsync"]["spent_micro_usd"] == 1_650_000
    assert name in post.body["text"] and "80%" in post.body["text"]
    assert post.headers["Idempotency-Key"] == alert_id
    assert outcomes[Delivery.SENT] == 1 and outcomes[Delivery.ALREADY_SENT] == 1, outcomes


async def stored_alerts(stack: Stack, tenant: str) -> list[BudgetAlert]:
    """The tenant's budget alerts kept in the LEDGER stream."""
    js = stack.broker.connection.jetstream()
    info = await js.stream_info(
        subjects.STREAM_LEDGER, subjects_filter=subjects.budget_alert(tenant)
    )
    count = (info.state.subjects or {}).get(subjects.budget_alert(tenant), 0)
    if not count:
        return []
    sub = await js.subscribe(subjects.budget_alert(tenant), ordered_consumer=True)
    try:
        return [decode((await sub.next_msg(timeout=5)).data, BudgetAlert) for _ in range(count)]
    finally:
        await sub.unsubscribe()


async def test_spend_crossing_a_budget_sends_each_alert_once_by_email(
    smtp: SmtpReceiver, tmp_path: Path
) -> None:
    tenant = f"e{uuid.uuid4().hex[:8]}"
    name = "tiny"
    settings = Settings(
        sim_latency_ms=0,
        extra_agents=frozenset({"listing"}),
        budget_config=budgets_file(tmp_path, name, "0.000400", ["mailto:ops@shop.example"]),
        notify=NotifySettings(smtp_port=smtp.port, smtp_from="alerts@flipsync.example"),
    )
    services = [Service.PROVIDER, Service.ROUTER, Service.LEDGER, Service.NOTIFIER]
    stack = await start_stack(settings, services)
    try:
        client = LlmClient(stack.broker)
        results = []
        for batch in range(15):  # until refused: the reservation is a request's maximum cost
            texts = [f"Write a title for a teal mug, number {batch}-{i}." for i in range(10)]
            requests = [make_request(tenant=tenant, agent="listing", text=t) for t in texts]
            results += await asyncio.gather(*(client.request(r, timeout_s=30) for r in requests))
        assert any(r.ok for r in results) and any(not r.ok for r in results)  # used up

        async def mailed() -> bool:  # every stored alert mailed (50%, 80%, 100%)
            alerts = await stored_alerts(stack, tenant)
            return len(alerts) == 3 and len(smtp.messages) >= 3

        await eventually(mailed, timeout_s=30)
        alerts = await stored_alerts(stack, tenant)
    finally:
        await stack.stop()

    assert sorted(a.threshold for a in alerts) == [0.5, 0.8, 1.0]
    ids = {crossing_of(a).marker.removeprefix(budget_keys.ALERT_PREFIX) for a in alerts}
    assert len(smtp.messages) == 3, [m["Subject"] for m in smtp.messages]
    for mail in smtp.messages:
        assert mail["To"] == "ops@shop.example" and mail["From"] == "alerts@flipsync.example"
        assert mail["Subject"].startswith(f"[FlipSync] Budget {name} at ")
    bodies = [str(m.get_payload()) for m in smtp.messages]
    assert {i for i in ids for b in bodies if f"Alert id: {i}" in b} == ids  # one mail each


async def test_anomalies_reach_the_anomaly_webhook_once_across_scans_and_replicas(
    redis_client: aioredis.Redis, webhook: WebhookReceiver
) -> None:
    spike = [
        ledger_event(at=f"{SPIKE}:40:00", agent="pricer", model="gpt-4o", cost=3000)
        for _ in range(10)
    ]
    await apply_all(AggregateStore(redis_client), steady_hours() + spike)
    notify = FAST_RETRIES.model_copy(update={"anomaly_targets": (webhook.url,)})
    replicas = [NotifierService(Settings(notify=notify), redis_client) for _ in range(2)]
    try:
        found: list[Notice] = []
        for round_ in range(6):  # the webhook fails first: scans go on until it took them all
            found = await replicas[round_ % 2].anomalies.scan()
            if {p.body["flipsync"]["id"] for p in webhook.accepted} >= {n.id for n in found}:
                break
        for replica in replicas:  # later scans find them all sent
            assert [n.id for n in await replica.anomalies.scan()] == [n.id for n in found]
    finally:
        for replica in replicas:
            await replica.close()
    assert f"anomaly:spend:{SPIKE}" in {n.id for n in found}
    ids = [p.body["flipsync"]["id"] for p in webhook.accepted]
    assert sorted(ids) == sorted(n.id for n in found)  # each anomaly once
    spend = next(p.body for p in webhook.accepted if p.body["flipsync"]["kind"] == "spend_anomaly")
    assert SPIKE in spend["text"] and spend["flipsync"]["spend_micro_usd"] > 30_000


def test_notify_targets_are_webhook_urls_or_mail_addresses(tmp_path: Path) -> None:
    assert parse_target("https://hooks.slack.com/services/T/B/x") == Webhook(
        url="https://hooks.slack.com/services/T/B/x"
    )
    assert parse_target("mailto:ops@shop.example") == Mailbox(address="ops@shop.example")
    for bad in ("ftp://x", "hooks.slack.com", "mailto:", "mailto:a@b, c@d", "mailto:a\r\n@b"):
        with pytest.raises(TargetError):
            parse_target(bad)
    with pytest.raises(BudgetConfigError, match="notify target"):
        BudgetConfig.load(budgets_file(tmp_path, "x", "1.00", ["file:///etc/passwd"]))
    loaded = BudgetConfig.load(budgets_file(tmp_path, "x", "1.00", ["mailto:a@b.example"]))
    assert loaded.rules.budgets["x"].notify == ["mailto:a@b.example"]


async def test_a_line_break_in_an_alert_title_adds_no_header_and_the_email_still_goes(
    smtp: SmtpReceiver,
) -> None:
    """Header injection: the title's text is one subject line; the mail is sent, not lost."""
    senders = Senders(NotifySettings(smtp_port=smtp.port, smtp_from="alerts@flipsync.example"))
    notice = Notice(
        id="n1", title="Budget x at 80%\r\nBcc: thief@evil.example", lines=("l",), fields={}
    )
    try:
        await senders(notice, Mailbox(address="ops@shop.example"))
    finally:
        await senders.close()
    (mail,) = smtp.messages
    assert mail["Bcc"] is None and "\n" not in str(mail["Subject"])
    assert str(mail["Subject"]).startswith("[FlipSync] Budget x at 80%")
