"""A short-lived command's ledger events are in the ledger when it exits.

`flipsync chat` (and `upload`, `demo`) start the stack on an embedded nats-server that stops
with them. The router publishes a call's ledger event beside its result, so the command can
be stopping while the event waits in the ledger's batch. The ledger then handed it back (a
nack, for another replica), but there was none: the nack died with the server, and the event
was redelivered only ack_wait (120 s) after its delivery, by whichever ledger ran then;
`flipsync report` left the call out while the budgets (settled by the router) counted it.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import redis.asyncio as aioredis

from bus import subjects
from bus.codec import encode
from bus.embedded import EmbeddedRedis
from bus.messages import LedgerEvent, Lever, Usage, now_ms
from bus.settings import Settings
from cost_ledger.aggregates import AggregateStore
from flipsync.stack import Service, Stack, start_stack
from tests.helpers import eventually


def _event(tenant: str, cost_micro_usd: int) -> LedgerEvent:
    at = now_ms()
    return LedgerEvent(
        event_id=uuid.uuid4().hex,
        request_id=uuid.uuid4().hex,
        tenant=tenant,
        agent="seller_chat",
        workflow_id="",
        task_type="seller_chat",
        model="gpt-4o-mini",
        provider="openai",
        usage=Usage(input_tokens=100, output_tokens=20),
        cost_micro_usd=cost_micro_usd,
        baseline_micro_usd=10 * cost_micro_usd,
        lever=Lever.ROUTED,
        catalog_version="test",
        paid_call=True,
        started_ms=at,
        finished_ms=at,
    )


async def _publish(stack: Stack, event: LedgerEvent) -> None:
    js = stack.broker.connection.jetstream()
    ack = await js.publish(
        subjects.ledger(event.tenant), encode(event), headers={"Nats-Msg-Id": event.event_id}
    )
    assert not ack.duplicate


async def test_a_stack_on_its_own_nats_applies_its_ledger_events_before_it_stops(
    tmp_path: Path, redis_server: EmbeddedRedis, redis_client: aioredis.Redis
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:12]}"
    totals = AggregateStore(redis_client).totals
    # NATS embedded, kept in tmp_path between the commands, as `flipsync chat` runs it. A
    # linger of 1 s holds the events in the ledger's batch when the stop begins (stop_grace_s
    # leaves the stop time to apply them).
    settings = Settings(
        data_dir=tmp_path, redis_url=redis_server.url, ledger_linger_ms=1000, stop_grace_s=10
    )

    # Published while no ledger runs (`flipsync upload` against a deployment's NATS without
    # one): the next ledger that starts applies it.
    quiet = await start_stack(settings, [])
    try:
        await _publish(quiet, _event(tenant, 300))
    finally:
        await quiet.stop()

    stack = await start_stack(settings, [Service.LEDGER])
    try:

        async def earlier_applied() -> bool:
            return (await totals(tenant)).calls == 1

        await eventually(earlier_applied)
        # The command's own calls, published just before it exits.
        await _publish(stack, _event(tenant, 20))
        await _publish(stack, _event(tenant, 1))
    finally:
        await stack.stop()

    applied = await totals(tenant)
    assert (applied.calls, applied.spend_micro_usd) == (3, 321)  # 1 and 300 before the fix
