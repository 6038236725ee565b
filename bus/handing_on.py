"""How a pull loop (bus.pull_loop) hands its messages on: to a handler each in its own task,
or what arrived together to one call, under a consumer span; then acks or nacks each."""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from nats.aio.msg import Msg
from opentelemetry import trace

from bus.acks import Verdict, delivery_of, settle
from bus.consumers import redelivery_delay_s
from bus.durables import Durable
from bus.metrics import MESSAGE_LATENCY, MESSAGES
from bus.tracing import consumer_spans

log = logging.getLogger(__name__)

BatchHandler = Callable[[Sequence[Msg]], Awaitable[Sequence[Verdict]]]
"""Handles the messages that arrived together in one call; one verdict per message, in order."""
MessageHandler = Callable[[Msg], Awaitable[None]]
"""Handles one message; raising has it redelivered after a growing delay."""


class HandingOn:
    """The handing-on half of a PullLoop: runs its handler on what arrived, counts each
    message in the metrics, and acks or nacks it. The pulling half (PullLoop) fills
    _arrived_msgs or starts _one, and asks for more in _pull."""

    def __init__(
        self,
        where: Durable,
        *,
        tracer: trace.Tracer,
        on_batch: BatchHandler | None,
        on_message: MessageHandler | None,
        fetch: int,
        linger_s: float,
    ) -> None:
        self._where = where
        self._fetch = max(fetch, 1)
        self._linger_s = max(linger_s, 0.0)
        self._tracer = tracer
        self._on_batch = on_batch
        self._on_message = on_message
        self._running: set[asyncio.Task[None]] = set()
        self._arrived_msgs: collections.deque[Msg] = collections.deque()
        self._in_batch = 0
        self._woken = asyncio.Event()
        self._ok = MESSAGES.labels(where.durable, "ok")
        self._failed = MESSAGES.labels(where.durable, "error")
        self._took = MESSAGE_LATENCY.labels(where.durable)

    def _pull(self) -> None:
        """Ask for more messages, now that one left hand (PullLoop's pull request)."""
        raise NotImplementedError

    def _done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._pull()

    async def _batches(self, handle: BatchHandler) -> None:
        """Hand what arrived to handle, a batch at a time."""
        while True:
            await self._woken.wait()
            if self._linger_s and len(self._arrived_msgs) < self._fetch:
                await asyncio.sleep(self._linger_s)  # let the batch fill a little
            self._woken.clear()
            while self._arrived_msgs:
                n = min(len(self._arrived_msgs), self._fetch)
                msgs = [self._arrived_msgs.popleft() for _ in range(n)]
                self._in_batch = n
                task = asyncio.ensure_future(self._whole_batch(handle, msgs))
                self._running.add(task)  # stop() lets it finish, acks included
                task.add_done_callback(self._batch_done)
                try:
                    await asyncio.shield(task)
                except asyncio.CancelledError:
                    if _being_cancelled():
                        raise  # stop()
                except Exception:  # never ends the loop: its messages come back after ack_wait
                    log.exception("%s: a batch failed outside its handler", self._where.durable)

    def _batch_done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._in_batch = 0
        self._pull()

    async def _one(self, msg: Msg) -> None:
        assert self._on_message is not None
        started = time.perf_counter()
        try:
            with consumer_spans(self._tracer, (msg,)):
                await self._on_message(msg)
        except asyncio.CancelledError:
            if _being_cancelled():
                raise
            self._failed.inc()
            await self._nack(msg, RuntimeError("the handler was cancelled"))
            return
        except Exception as exc:
            self._failed.inc()
            await self._nack(msg, exc)
            return
        self._ok.inc()
        self._took.observe(time.perf_counter() - started)
        await settle(msg, None)

    async def _whole_batch(self, handle: BatchHandler, msgs: Sequence[Msg]) -> None:
        started = time.perf_counter()
        try:
            with consumer_spans(self._tracer, msgs):
                verdicts = await handle(msgs)
            if len(verdicts) != len(msgs):
                raise RuntimeError(f"{len(verdicts)} verdicts for {len(msgs)} messages")
        except asyncio.CancelledError:
            if _being_cancelled():
                raise  # stop() ran out of patience: JetStream redelivers after ack_wait
            self._failed.inc(len(msgs))  # the handler's own work was cancelled: tried again
            cancelled = RuntimeError("the batch handler was cancelled")
            await asyncio.gather(*(self._nack(msg, cancelled) for msg in msgs))
            return
        except Exception as exc:  # a bug in the handler: every message is tried again
            self._failed.inc(len(msgs))
            await asyncio.gather(*(self._nack(msg, exc) for msg in msgs))
            return
        took = (time.perf_counter() - started) / len(msgs)
        for verdict in verdicts:
            (self._ok if verdict is None else self._failed).inc()
            self._took.observe(took)
        await asyncio.gather(*(settle(m, v) for m, v in zip(msgs, verdicts, strict=True)))

    async def _nack(self, msg: Msg, exc: BaseException) -> None:
        delivery = delivery_of(msg)
        delay = redelivery_delay_s(delivery)
        log.warning(
            "%s: delivery %d of a message on %s failed, redelivered in %.1fs: %s: %s",
            self._where.durable, delivery, msg.subject, delay, type(exc).__name__, exc,
        )  # fmt: skip
        await settle(msg, delay)


def _being_cancelled() -> bool:
    """Whether the current task itself is being cancelled (not just something it awaited)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
