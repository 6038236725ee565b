"""Grade alerts end to end: agents' verdicts on the bus take an agent's running quality
average under its target; the router publishes one GradeAlert on grade.alert.<tenant> and
the notifier delivers it to a webhook once, as it does budget alerts."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from bus import subjects
from bus.codec import decode, encode
from bus.embedded import EmbeddedNats, EmbeddedRedis
from bus.messages import GradeAlert, Lever, QualitySignal
from bus.settings import Settings
from bus.settings_sections import NotifySettings
from flipsync.stack import Service, Stack, start_stack
from notifier.once import Delivery
from notifier.render import grade_notice
from router.routing.grade_alerts import alert_id
from router.routing.grades import FLOOR, MIN_ANSWERS, TARGET, grade_key
from tests.helpers import eventually
from tests.notify_receivers import WebhookReceiver


@pytest.fixture
async def webhook() -> AsyncIterator[WebhookReceiver]:
    """A webhook that answers 503 to its first POST."""
    receiver = WebhookReceiver(fail_first=1)
    await receiver.start()
    yield receiver
    await receiver.stop()


def verdict(tenant: str, n: int, *, valid: bool) -> QualitySignal:
    """An agent's verdict on one routed answer."""
    return QualitySignal(
        request_id=f"req-{n}", tenant=tenant, agent="ebay_listing", task_type="listing_copy",
        model="gpt-4o-mini", lever=Lever.ROUTED, valid=valid, problems=["too short"],
    )  # fmt: skip


async def stored(stack: Stack, tenant: str) -> list[GradeAlert]:
    """The tenant's grade alerts kept in the WORKFLOW stream."""
    js = stack.broker.connection.jetstream()
    subject = subjects.grade_alert(tenant)
    info = await js.stream_info(subjects.STREAM_WORKFLOW, subjects_filter=subject)
    count = (info.state.subjects or {}).get(subject, 0)
    if not count:
        return []
    sub = await js.subscribe(subject, ordered_consumer=True)
    try:
        return [decode((await sub.next_msg(timeout=5)).data, GradeAlert) for _ in range(count)]
    finally:
        await sub.unsubscribe()


async def test_verdicts_under_target_alert_once_and_reach_a_webhook_once(
    own_nats: EmbeddedNats,
    redis_server: EmbeddedRedis,
    redis_client: aioredis.Redis,
    webhook: WebhookReceiver,
) -> None:
    tenant = f"shop-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        nats_url=own_nats.url,
        redis_url=redis_server.url,
        sim_latency_ms=0,
        notify=NotifySettings(
            quality_targets=(webhook.url,), attempts=2, backoff_base_s=0.01, backoff_max_s=0.2
        ),
    )
    stack = await start_stack(settings, [Service.PROVIDER, Service.ROUTER, Service.NOTIFIER])
    try:
        js = stack.broker.connection.jetstream()
        # 15 valid of 25: the consumer's workers fold them in any order, and in every order
        # the average is under 0.88 from the twentieth on (at most 15 + 5 x 0.4 of 20).
        total = MIN_ANSWERS + 5
        for n in range(total):
            signal = verdict(tenant, n, valid=n % 5 in (1, 2, 3))
            await js.publish(subjects.quality(tenant), encode(signal))
        key = grade_key(tenant, "ebay_listing")

        async def graded() -> bool:  # every verdict folded, and the notice delivered
            answers = await redis_client.hget(key, "n")
            return answers is not None and int(answers) == total and bool(webhook.accepted)

        await eventually(graded, timeout_s=30)
        alerts = await stored(stack, tenant)
        assert stack.notifier is not None
        await eventually(lambda: _sent(stack), timeout_s=10)
    finally:
        await stack.stop()

    (alert,) = alerts  # one crossing, one alert, however many verdicts stayed under
    assert (alert.tenant, alert.agent, alert.task_type, alert.model) == (
        tenant, "ebay_listing", "listing_copy", "gpt-4o-mini",
    )  # fmt: skip
    assert alert.average <= 0.85 and alert.answers == MIN_ANSWERS and alert.crossing == 1
    assert (alert.target, alert.floor) == (TARGET, FLOOR)
    assert webhook.refused == 1 and len(webhook.accepted) == 1
    post = webhook.accepted[0].body
    facts = post["flipsync"]
    assert facts["kind"] == "grade_alert" and facts["agent"] == "ebay_listing"
    assert facts["id"] == alert_id(alert) == grade_notice(alert).id
    assert facts["average"] == alert.average and facts["model"] == "gpt-4o-mini"
    text = post["text"]
    assert "ebay_listing" in text and f"{alert.average:.1%}" in text and "88%" in text


async def _sent(stack: Stack) -> bool:
    assert stack.notifier is not None
    return stack.notifier.delivered[Delivery.SENT] == 1
