"""`flipsync ledger rebuild`: the Redis view of the money, replayed from the LEDGER stream.

The LEDGER stream is the source of truth: ledger events, budget changes (budget.control) and
the budget alerts that were sent. Replaying it from the first message into Redis gives back
the aggregates, the budgets' spent counters of the current periods, the live budget rules and
the alert markers. Every write is idempotent (by event id, request id, change id, alert), so a
rebuild into the keys in use is safe while the ledger consumer and the routers run, and a
second rebuild changes nothing. After a flush, reservations wait (NOT_READY) until a rebuild
marks the counters complete again.

Events applied by an older apply script (before the per-day/per-hour cube) get the parts they
lack (aggregates.MARKER_VERSION), so the cube is restored without counting them twice. A fresh
rebuild (``fresh=True``) first deletes every derived ledger key (seen markers, aggregates,
member sets, cube) and replays into nothing: every view comes back exactly whatever state the
keys were in (e.g. a deleted cube, or seen markers expired after keys.SEEN_TTL_S, which would
otherwise let an old event count twice). Run it with the ledger consumers stopped. Budget
counters are not deleted: their settle markers keep a replayed event from counting twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from bus import subjects
from bus.codec import decode
from bus.errors import WireError
from bus.messages import (
    BudgetAlert,
    BudgetChange,
    BudgetPeriod,
    ErrorCode,
    LedgerEvent,
    now_ms,
)
from cost_ledger.aggregates import AggregateStore, Applied
from cost_ledger.budgets.errors import BudgetConfigError
from cost_ledger.budgets.periods import period_key
from cost_ledger.budgets.store import BudgetStore
from cost_ledger.event_check import check_event
from cost_ledger.split_store import SplitStore

BATCH = 256
CONCURRENCY = 32
"""Redis calls in flight at once while replaying."""

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class RebuildReport:
    """What a rebuild read and wrote."""

    messages: int = 0
    """Stream messages read."""
    events: int = 0
    """Ledger events read."""
    applied: int = 0
    """Events added to the aggregates (the others were there already)."""
    completed: int = 0
    """Events applied before by an older script, whose missing cube rows were added."""
    cleared: int = 0
    """Derived ledger keys deleted first (a fresh rebuild)."""
    settled: int = 0
    """Events added to budget counters of the current periods."""
    changes: int = 0
    """Budget changes applied to the live rules (the others were applied already)."""
    alerts: int = 0
    """Alerts whose sent-markers were restored."""
    malformed: int = 0
    """Messages that could not be read, or were on another tenant's subject (skipped)."""
    seconds: float = 0.0


EventReplayer = Callable[[LedgerEvent], Awaitable[object]]
"""Another view built from ledger events (e.g. experiment arms), fed each replayed event."""


async def rebuild(
    js: JetStreamContext,
    aggregates: AggregateStore,
    budgets: BudgetStore,
    *,
    fresh: bool = False,
    also: Sequence[EventReplayer] = (),
) -> RebuildReport:
    """Replay the whole LEDGER stream into Redis, idempotently; then mark budgets ready.

    fresh: delete the ledger's derived keys first (with the ledger consumers stopped).
    also: other idempotent views of ledger events, each given every replayed event.
    """
    started = time.perf_counter()
    report = RebuildReport()
    splits = SplitStore(aggregates.redis)  # savings by lever: rebuilt with the aggregates
    also = [*also, splits.apply]
    if fresh:
        report.cleared = await aggregates.clear() + await splits.clear()
    await budgets.live.ensure_seeded()
    info = await js.stream_info(subjects.STREAM_LEDGER)
    if info.state.messages:
        await _replay(js, aggregates, budgets, report, also)
    await budgets.mark_ready()
    await budgets.live.load()
    report.seconds = time.perf_counter() - started
    return report


async def _replay(
    js: JetStreamContext,
    aggregates: AggregateStore,
    budgets: BudgetStore,
    report: RebuildReport,
    also: Sequence[EventReplayer],
) -> None:
    config = ConsumerConfig(
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.NONE,
        filter_subjects=list(subjects.STREAM_SUBJECTS[subjects.STREAM_LEDGER]),
        inactive_threshold=60.0,
        max_waiting=1,
    )
    sub = await js.pull_subscribe(subjects.LEDGER_ALL, stream=subjects.STREAM_LEDGER, config=config)
    month = period_key(BudgetPeriod.MONTH, now_ms())
    limit = asyncio.Semaphore(CONCURRENCY)
    try:
        while True:
            try:
                batch = await sub.fetch(BATCH, timeout=2.0)
            except nats.errors.TimeoutError:
                break
            report.messages += len(batch)
            changes = [m for m in batch if m.subject == subjects.BUDGET_CONTROL]
            for msg in changes:  # in stream order: later changes win
                await _change(msg, budgets, report)
            others = [m for m in batch if m.subject != subjects.BUDGET_CONTROL]
            await asyncio.gather(
                *(_one(m, aggregates, budgets, month, limit, report, also) for m in others)
            )
            if batch[-1].metadata.num_pending == 0:
                break
    finally:
        await sub.unsubscribe()


async def _change(msg: Msg, budgets: BudgetStore, report: RebuildReport) -> None:
    try:
        change = decode(msg.data, BudgetChange)
        if await budgets.live.apply(change):
            report.changes += 1
    except (WireError, BudgetConfigError) as exc:
        log.warning("budget change at %s skipped: %s", msg.metadata.sequence.stream, exc)
        report.malformed += 1


async def _one(
    msg: Msg,
    aggregates: AggregateStore,
    budgets: BudgetStore,
    month: str,
    limit: asyncio.Semaphore,
    report: RebuildReport,
    also: Sequence[EventReplayer] = (),
) -> None:
    async with limit:
        try:
            if msg.subject.startswith("budget.alert."):
                alert = decode(msg.data, BudgetAlert)
                if alert.budget and alert.period_key:
                    await budgets.alerter.restore(alert)
                    report.alerts += 1
                return
            event = decode(msg.data, LedgerEvent)
            if not subjects.is_ledger_of(msg.subject, event.tenant):
                reason = f"event of tenant {event.tenant!r} on {msg.subject}"
                raise WireError(ErrorCode.MALFORMED, reason)
            check_event(event)  # as the live consumer: never applied there, skipped here
        except (WireError, ValueError) as exc:
            log.warning("ledger message %s skipped: %s", msg.metadata.sequence.stream, exc)
            report.malformed += 1
            return
        report.events += 1
        result = await aggregates.apply_event(event)
        for view in also:
            await view(event)
        applied = result is Applied.NEW
        report.applied += int(applied)
        report.completed += int(result is Applied.COMPLETED)
        at_ms = event.finished_ms or event.started_ms
        if period_key(BudgetPeriod.MONTH, at_ms) == month:
            settled = await budgets.settle_event(event, final=applied, alerts=False, live=False)
            report.settled += int(settled.applied)
