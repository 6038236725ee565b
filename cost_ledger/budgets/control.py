"""Run-time budget changes: the budget.control subscriber every replica runs, and publishing.

A change is published through JetStream (the LEDGER stream keeps it, so a rebuild replays
it) and also reaches every replica's plain subscription, which applies it once per change
id to the live rules in Redis and reloads its own copy.
"""

from __future__ import annotations

import logging
from typing import Any

from faststream.message import StreamMessage
from faststream.nats import NatsRouter
from nats.js import JetStreamContext
from redis.exceptions import RedisError

from bus import subjects
from bus.codec import decode, encode
from bus.consumers import Incoming, message
from bus.errors import WireError
from bus.messages import BudgetChange
from cost_ledger.budgets.errors import BudgetConfigError
from cost_ledger.budgets.live import LiveBudgets

MSG_ID = "Nats-Msg-Id"

log = logging.getLogger(__name__)


async def _whole_message(msg: StreamMessage[Any]) -> Any:
    return msg


def control_router(live: LiveBudgets) -> NatsRouter:
    """A router whose subscriber applies each BudgetChange (every replica gets every one)."""
    router = NatsRouter()

    async def on_change(incoming: Incoming) -> None:
        """Apply one change to the live rules; a bad one is logged and dropped."""
        msg = message(incoming)
        try:
            change = decode(msg.body, BudgetChange)
            applied = await live.apply(change)
        except (WireError, BudgetConfigError) as exc:
            log.warning("budget change refused: %s", exc)
            return
        except RedisError as exc:  # another replica may apply it; the rev check reloads
            log.warning("budget change %s not applied here: %s", msg.body[:80], exc)
            return
        log.info("budget change %s %s", change.change_id, "applied" if applied else "loaded")

    # no_reply: a change published through JetStream carries the publish's reply inbox, where
    # only the stream's ack belongs; an answer from here (empty) would reach the publisher
    # first now and then, and `flipsync budget set` would fail to read it as an ack.
    router.subscriber(
        subjects.BUDGET_CONTROL, decoder=_whole_message, title="budget-control", no_reply=True
    )(on_change)
    return router


async def publish_change(js: JetStreamContext, change: BudgetChange) -> int:
    """Publish a change to every replica and keep it in the LEDGER stream; its sequence."""
    ack = await js.publish(
        subjects.BUDGET_CONTROL, encode(change), headers={MSG_ID: change.change_id}
    )
    return ack.seq
