"""The ledger consumer: every LedgerEvent on the LEDGER stream, applied once to the aggregates.

The live consumer (LedgerConsumer) runs with nats-py a fetched batch at a time
(bus.pull_loop): the batch's events are applied to Redis in one script call per scope with
the sums per key computed in Python (cost_ledger.batch_apply), then their budgets are
settled and their savings split; each message is still acked, nacked or dead-lettered on
its own. ledger_doc_router documents the same subscriber for the AsyncAPI document.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from faststream.nats import NatsRouter
from nats.aio.client import Client
from nats.aio.msg import Msg
from opentelemetry import trace
from redis import exceptions as redis_errors

from bus import subjects
from bus.acks import Verdict
from bus.codec import decode
from bus.consumers import Incoming, durable_consumer, is_permanent
from bus.dead_letters import DeadLetters
from bus.durables import Durable
from bus.errors import WireError
from bus.messages import ErrorCode, LedgerEvent
from bus.pull_loop import PullLoop
from bus.settings import Settings
from cost_ledger.aggregates import AggregateStore, Applied
from cost_ledger.batch_apply import BatchApplier
from cost_ledger.event_check import check_event
from cost_ledger.split_store import SplitStore

DLQ_SOURCE = "ledger"
RETRY_DELAY_S = 1.0
"""How long a message waits for redelivery after Redis failed to take it."""
FETCH_BATCH = 64
WHERE = Durable(subjects.LEDGER_ALL, subjects.STREAM_LEDGER, subjects.DURABLE_LEDGER)

log = logging.getLogger(__name__)


class LedgerConsumer:
    """Applies ledger events to a store a fetched batch at a time, and dead-letters bad ones.

    It reads the shared durable, so any number of replicas split the stream. A message is
    acked only after the store took it; a Redis failure redelivers it later.

    drain_s: when this is the only ledger its NATS server will ever have before it stops (the
    embedded one of a short-lived command: `flipsync chat`, `upload`, `demo`), stop() first
    applies every event the stream holds for the ledger, for drain_s at most. Handed back
    instead, they would wait for the next ledger, and past the server's restart for ack_wait
    (JetStream forgets a nack when it restarts): `flipsync report` left them out meanwhile.
    """

    def __init__(
        self,
        store: AggregateStore,
        *,
        settings: Settings | None = None,
        tracer: trace.Tracer | None = None,
        drain_s: float = 0.0,
    ) -> None:
        self._store = store
        self._drain_s = drain_s
        self._applier = BatchApplier(store)
        self._splits = SplitStore(store.redis)  # savings by lever from each event's split
        self._dead: DeadLetters | None = None
        settings = settings or Settings()
        self._loop = PullLoop(
            WHERE,
            settings,
            tracer=tracer or trace.get_tracer("flipsync.ledger"),
            on_batch=self.apply_batch,
            fetch=FETCH_BATCH,
            linger_s=settings.ledger_linger_ms / 1000,
        )

    async def start(self, nc: Client) -> None:
        """Start consuming the LEDGER stream."""
        self._dead = DeadLetters(nc.jetstream(), DLQ_SOURCE)
        await self._loop.start(nc)

    async def stop(self) -> None:
        """Stop consuming; the batch being applied is finished and acked first (with drain_s,
        every event the stream holds for the ledger: see the class docstring)."""
        if self._drain_s > 0:
            await self._loop.drain(self._drain_s)
        await self._loop.stop()

    async def apply_batch(self, msgs: Sequence[Msg]) -> list[Verdict]:
        """Apply a batch of ledger event messages; one verdict per message (None: ack)."""
        verdicts: list[Verdict] = [None] * len(msgs)
        events: list[LedgerEvent] = []
        where: list[int] = []
        for i, msg in enumerate(msgs):
            try:
                event = decode(msg.data, LedgerEvent)
                _check_subject(event, msg.subject)
                check_event(event)  # no negative money, nothing past 64 bits or year 9999
            except WireError as exc:
                verdicts[i] = await self._give_up(msg, exc.code, exc.reason)
                continue
            events.append(event)
            where.append(i)
        if not events:
            return verdicts
        try:
            outcomes = await self._applier.outcomes(events)  # once per event id
        except redis_errors.RedisError as exc:  # Redis away: every event is tried again
            log.warning("%d ledger events not applied, retrying: %s", len(events), exc)
            for i in where:
                verdicts[i] = RETRY_DELAY_S
            return verdicts
        applied: list[tuple[int, LedgerEvent, bool]] = []
        for i, event, outcome in zip(where, events, outcomes, strict=True):
            if isinstance(outcome, Exception):  # a sum beyond 64 bits: never applicable
                reason = f"{type(outcome).__name__}: {outcome}"
                verdicts[i] = await self._give_up(msgs[i], ErrorCode.MALFORMED, reason)
            else:
                applied.append((i, event, outcome is Applied.NEW))
        settles = await asyncio.gather(
            *(self._store.settle_applied([event], [new]) for _, event, new in applied),
            return_exceptions=True,
        )
        split: list[tuple[int, LedgerEvent]] = []
        for (i, event, _), failure in zip(applied, settles, strict=True):
            if failure is None:
                split.append((i, event))
            else:
                verdicts[i] = await self._failed(msgs[i], failure)
        try:  # savings by lever: one script call per scope for the whole batch
            await self._splits.apply_many([event for _, event in split])
        except redis_errors.RedisError as exc:
            if not is_permanent(exc):
                for i, _ in split:
                    verdicts[i] = await self._failed(msgs[i], exc)
                return verdicts
            for i, event in split:  # a reply error: find the event it belongs to
                try:
                    await self._splits.apply(event)
                except Exception as one:
                    verdicts[i] = await self._failed(msgs[i], one)
        return verdicts

    async def _failed(self, msg: Msg, failure: BaseException) -> Verdict:
        """The verdict on a message whose settle or split raised failure: dead-lettered if
        it can never succeed, else tried again."""
        if not isinstance(failure, Exception):  # its own work was cancelled: tried again
            log.warning("ledger event not settled (%s), retrying", type(failure).__name__)
            return RETRY_DELAY_S
        if isinstance(failure, (WireError, ValueError, redis_errors.RedisError)) and (
            is_permanent(failure)
        ):
            reason = f"{type(failure).__name__}: {failure}"
            return await self._give_up(msg, ErrorCode.MALFORMED, reason)
        log.warning("ledger event not settled, retrying: %s: %s", type(failure).__name__, failure)
        return RETRY_DELAY_S

    async def _give_up(self, msg: Msg, code: ErrorCode, reason: str) -> Verdict:
        """Dead-letter a message that can never be applied (then it is acked); if NATS did
        not take the dead letter, the message is tried again instead."""
        log.warning("message on %s to the dead-letter queue: %s", msg.subject, reason)
        assert self._dead is not None, "LedgerConsumer.start was not called"
        try:
            await self._dead.keep(msg, code, reason)
        except Exception as exc:
            log.warning("dead letter not kept, retrying: %s: %s", type(exc).__name__, exc)
            return RETRY_DELAY_S
        return None


def ledger_doc_router(settings: Settings | None = None) -> NatsRouter:
    """The ledger's subscriber as FastStream documents it (the AsyncAPI document); the live
    consumer is LedgerConsumer, which this router is never started in place of."""
    router = NatsRouter()

    async def on_ledger_event(incoming: Incoming) -> None:
        """Apply a LedgerEvent to the aggregates once per event id, settle its budgets and
        split its savings by lever; bad events go to dlq.ledger."""
        raise RuntimeError("documentation only: the live ledger consumer is LedgerConsumer")

    durable_consumer(
        router,
        on_ledger_event,
        subject=WHERE.subject,
        stream=WHERE.stream,
        durable=WHERE.durable,
        settings=settings or Settings(),
        workers=FETCH_BATCH,
        title="ledger-events",
    )
    return router


def _check_subject(event: LedgerEvent, subject: str) -> None:
    """Check that an event came on its own tenant's subject; raises WireError."""
    try:
        own = subjects.is_ledger_of(subject, event.tenant)
    except ValueError as exc:
        raise WireError(ErrorCode.MALFORMED, f"LedgerEvent has a bad tenant: {exc}") from None
    # One tenant must not be able to book spend on another's account.
    if not own:
        raise WireError(
            ErrorCode.MALFORMED,
            f"LedgerEvent of tenant {event.tenant!r} was published on {subject}",
        )
