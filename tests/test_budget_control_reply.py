"""`flipsync budget set` gets the stream's ack every time, while routers listen on the subject:
the routers' plain subscription on budget.control must never answer the publish's inbox."""

from __future__ import annotations

import uuid

from nats.aio.msg import Msg

from bus import subjects
from bus.codec import encode
from bus.messages import BudgetChange, BudgetPeriod, BudgetScope, BudgetSpec
from cost_ledger.budgets.control import publish_change
from tests.helpers import eventually, router_stack


def _change(i: int) -> BudgetChange:
    spec = BudgetSpec(name=f"ctl{i}", scope=BudgetScope.TENANT, period=BudgetPeriod.DAY,
                      limit_micro_usd=1_000_000 + i, tenant=f"ctl{i}")  # fmt: skip
    return BudgetChange(change_id=uuid.uuid4().hex, set_budgets=[spec])


async def test_only_the_stream_answers_a_budget_change() -> None:
    async with router_stack() as stack:
        nc = stack.broker.connection
        inbox = nc.new_inbox()
        replies: list[bytes] = []

        async def on_reply(msg: Msg) -> None:
            replies.append(msg.data)

        await nc.subscribe(inbox, cb=on_reply)
        changes = [_change(i) for i in range(5)]
        for change in changes:
            await nc.publish(subjects.BUDGET_CONTROL, encode(change), reply=inbox)
        assert stack.budgets is not None
        live = stack.budgets.live

        async def applied() -> bool:
            budgets = (await live.load()).budgets
            return all(f"ctl{i}" in budgets for i in range(5))

        await eventually(applied)
        for _ in range(3):  # every reply sent by now has reached this connection
            await nc.flush()
        assert len(replies) == 5, replies  # the stream's acks only, no empty answers
        assert all(b'"seq"' in reply for reply in replies)
        js = nc.jetstream()
        for i in range(5, 25):
            assert await publish_change(js, _change(i)) > 0  # raised JSONDecodeError
