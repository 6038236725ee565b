"""Durable pull consumers run with nats-py directly: a fetched batch at a time.

The hot path's consumers (the router's requests, the ledger's events) use this instead of
FastStream's per-message path, which cost more than the work it wrapped (docs/hot-path.md):
a middleware stack, a context scope and a dependency-injection call per message, and no way
to hand a fetched batch to one call. It keeps what the services relied on there:

- the same durable consumer (name, filter, ack_wait, max_deliver, max_ack_pending), so
  replicas share it and a message is redelivered when its replica dies;
- a message is acked once handled; one whose handler raised is nacked and redelivered after
  bus.consumers.redelivery_delay_s (never at once), with one log line;
- trace context: each message's work runs under a "<subject> process" consumer span whose
  parent is the context in its headers (FastStream's name for it), so it joins its trace;
- the processed-messages metric per durable (bus.metrics).

FastStream keeps the AsyncAPI entries: a service documents the same subscriber on a
FastStream router that the document's broker carries and the live broker does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig
from opentelemetry import propagate, trace

from bus.consumers import redelivery_delay_s
from bus.metrics import MESSAGE_LATENCY, MESSAGES
from bus.settings import Settings

log = logging.getLogger(__name__)

FETCH_TIMEOUT_S = 1.0
"""How long one fetch waits for a first message before the loop asks again."""
RETRY_S = 0.5
"""How long the loop waits after a fetch failed for another reason (NATS reconnecting)."""
STOP_GRACE_S = 10.0
"""How long stop() lets messages being handled finish (and be acked) before cancelling them."""

Verdict = float | None
"""What became of a message: None to ack it, a number of seconds to nack it and have it
redelivered after that long."""
BatchHandler = Callable[[Sequence[Msg]], Awaitable[Sequence[Verdict]]]
"""Handles a fetched batch in one call; one verdict per message, in order."""
MessageHandler = Callable[[Msg], Awaitable[None]]
"""Handles one message; raising has it redelivered after a growing delay."""


class LiveConsumer(Protocol):
    """A service's consumer that runs on nats-py directly, started once NATS is reached."""

    async def start(self, js: JetStreamContext) -> None:
        """Start consuming."""

    async def stop(self) -> None:
        """Stop consuming, finishing (and acking) what is in hand."""


@dataclass(frozen=True)
class Durable:
    """Where a pull consumer reads: its subject filter, stream and shared durable name."""

    subject: str
    stream: str
    durable: str


def consumer_config(settings: Settings, workers: int) -> ConsumerConfig:
    """The durable's settings, the same as bus.consumers.durable_consumer gives it."""
    return ConsumerConfig(
        ack_wait=settings.ack_wait_s,
        max_deliver=settings.max_deliver,
        max_ack_pending=max(workers * 4, 64),
    )


class PullLoop:
    """Fetches from a durable pull consumer and hands the messages on, until stopped.

    With on_batch, each fetched batch (up to fetch messages) goes to one call, and the next
    fetch waits for it. With on_message, each message is handled in its own task, at most
    workers at a time, and a fetch asks only for as many as there are free workers (a
    message never waits unheard-of in this process while its ack_wait runs).
    """

    def __init__(
        self,
        where: Durable,
        settings: Settings,
        *,
        tracer: trace.Tracer,
        on_batch: BatchHandler | None = None,
        on_message: MessageHandler | None = None,
        fetch: int = 64,
        workers: int = 1,
    ) -> None:
        if (on_batch is None) == (on_message is None):
            raise ValueError("a PullLoop takes one of on_batch and on_message")
        self._where = where
        self._config = consumer_config(settings, workers if on_message else fetch)
        self._tracer = tracer
        self._on_batch = on_batch
        self._on_message = on_message
        self._fetch = max(fetch, 1)
        self._workers = max(workers, 1)
        self._running: set[asyncio.Task[None]] = set()
        self._free = asyncio.Event()
        self._sub: JetStreamContext.PullSubscription | None = None
        self._loop: asyncio.Task[None] | None = None
        self._ok = MESSAGES.labels(where.durable, "ok")
        self._failed = MESSAGES.labels(where.durable, "error")
        self._took = MESSAGE_LATENCY.labels(where.durable)

    async def start(self, js: JetStreamContext) -> None:
        """Bind to (or create) the durable and start fetching."""
        where = self._where
        self._sub = await js.pull_subscribe(
            where.subject, durable=where.durable, stream=where.stream, config=self._config
        )
        self._loop = asyncio.create_task(self._run(self._sub), name=f"pull {where.durable}")

    async def stop(self) -> None:
        """Stop fetching; let the messages being handled finish (STOP_GRACE_S at most)."""
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
            self._loop = None
        if self._running:
            _, late = await asyncio.wait(set(self._running), timeout=STOP_GRACE_S)
            for task in late:  # unacked: JetStream redelivers them after ack_wait
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()  # the durable itself stays, for the others
            self._sub = None

    async def _run(self, sub: JetStreamContext.PullSubscription) -> None:
        while True:
            want = self._fetch
            if self._on_message is not None:
                while len(self._running) >= self._workers:
                    self._free.clear()
                    await self._free.wait()
                want = min(self._fetch, self._workers - len(self._running))
            try:
                msgs = await sub.fetch(want, timeout=FETCH_TIMEOUT_S)
            except (TimeoutError, nats.errors.TimeoutError):
                continue  # nothing came: ask again
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # NATS away or reconnecting: nothing was taken
                log.warning("%s: fetch failed, retrying: %s: %s", self._where.durable,
                            type(exc).__name__, exc)  # fmt: skip
                await asyncio.sleep(RETRY_S)
                continue
            if not msgs:  # nats-py can end a fetch with nothing in it
                continue
            if self._on_batch is not None:
                await self._batch(self._on_batch, msgs)
            else:
                for msg in msgs:
                    self._spawn(msg)

    def _spawn(self, msg: Msg) -> None:
        task = asyncio.create_task(self._one(msg))
        self._running.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._free.set()

    async def _one(self, msg: Msg) -> None:
        assert self._on_message is not None
        started = time.perf_counter()
        try:
            with self._spans((msg,)):
                await self._on_message(msg)
        except Exception as exc:
            self._failed.inc()
            await self._nack(msg, exc)
            return
        self._ok.inc()
        self._took.observe(time.perf_counter() - started)
        await _settle(msg, None)

    async def _batch(self, handle: BatchHandler, msgs: Sequence[Msg]) -> None:
        task = asyncio.ensure_future(self._whole_batch(handle, msgs))
        self._running.add(task)  # stop() lets it finish, acks included
        task.add_done_callback(self._running.discard)
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            raise
        except Exception:  # never ends the loop: its messages come back after ack_wait
            log.exception("%s: a batch failed outside its handler", self._where.durable)

    async def _whole_batch(self, handle: BatchHandler, msgs: Sequence[Msg]) -> None:
        started = time.perf_counter()
        try:
            with self._spans(msgs):
                verdicts = await handle(msgs)
            if len(verdicts) != len(msgs):
                raise RuntimeError(f"{len(verdicts)} verdicts for {len(msgs)} messages")
        except Exception as exc:  # a bug in the handler: every message is tried again
            self._failed.inc(len(msgs))
            await asyncio.gather(*(self._nack(msg, exc) for msg in msgs))
            return
        took = (time.perf_counter() - started) / len(msgs)
        for verdict in verdicts:
            (self._ok if verdict is None else self._failed).inc()
            self._took.observe(took)
        await asyncio.gather(*(_settle(m, v) for m, v in zip(msgs, verdicts, strict=True)))

    async def _nack(self, msg: Msg, exc: BaseException) -> None:
        delivery = delivery_of(msg)
        delay = redelivery_delay_s(delivery)
        log.warning(
            "%s: delivery %d of a message on %s failed, redelivered in %.1fs: %s: %s",
            self._where.durable, delivery, msg.subject, delay, type(exc).__name__, exc,
        )  # fmt: skip
        await _settle(msg, delay)

    @contextlib.contextmanager
    def _spans(self, msgs: Sequence[Msg]) -> Iterator[None]:
        """A consumer span per message whose headers carry a sampled trace; the first of
        them is current while the messages are handled (a batch has one current span)."""
        spans: list[trace.Span] = []
        for msg in msgs:
            if not msg.headers:
                continue
            parent = propagate.extract(msg.headers)
            if not trace.get_current_span(parent).get_span_context().trace_flags.sampled:
                continue  # nothing would record it: no span at all
            spans.append(
                self._tracer.start_span(
                    f"{msg.subject} process", context=parent, kind=trace.SpanKind.CONSUMER
                )
            )
        if len(msgs) == 1 and not spans and msgs[0].headers:
            # Not sampled: the trace id still travels on, as FastStream's span carried it.
            parent = propagate.extract(msgs[0].headers)
            with trace.use_span(trace.get_current_span(parent), end_on_exit=False):
                yield
            return
        try:
            if spans:
                with trace.use_span(spans[0], end_on_exit=False):
                    yield
            else:
                yield
        finally:
            for span in spans:
                span.end()


def delivery_of(msg: Msg) -> int:
    """How many times JetStream has delivered msg, this time included."""
    return msg.metadata.num_delivered or 1


async def _settle(msg: Msg, verdict: Verdict) -> None:
    """Ack msg, or nack it for redelivery after verdict seconds; a NATS failure here only
    means JetStream redelivers it after ack_wait (handlers are idempotent)."""
    try:
        if verdict is None:
            await msg.ack()
        else:
            await msg.nak(delay=verdict)
    except Exception as exc:
        log.warning("could not %s a message on %s: %s: %s", "ack" if verdict is None else
                    "nack", msg.subject, type(exc).__name__, exc)  # fmt: skip
