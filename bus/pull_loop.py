"""Durable pull consumers run with nats-py directly: each message handed on as it arrives.

The hot path's consumers (the router's requests, the ledger's events) use this instead of
FastStream's per-message path, which cost more than the work it wrapped (docs/hot-path.md):
a middleware stack, a context scope and a dependency-injection call per message, and no way
to hand what arrived together to one call. It keeps what the services relied on there:

- the same durable consumer (name, filter, ack_wait, max_deliver, max_ack_pending), so
  replicas share it and a message is redelivered when its replica dies;
- a message is acked once handled; one whose handler raised is nacked and redelivered after
  bus.consumers.redelivery_delay_s (never at once), with one log line;
- trace context: each message's work runs under a "<subject> process" consumer span whose
  parent is the context in its headers (FastStream's name for it), so it joins its trace;
- the processed-messages metric per durable (bus.metrics).

It speaks JetStream's pull protocol itself: a standing pull request asks for as many
messages as there is room for (expiring after EXPIRES_S, then asked again), and each
message is handed on the moment it arrives. nats-py's fetch() waits, once a first message
came, for the batch to fill or the fetch to time out: a request arriving at a quiet moment
would wait up to that timeout. Here a batch is what arrived together.

FastStream keeps the AsyncAPI entries: a service documents the same subscriber on a
FastStream router that the document's broker carries and the live broker does not. The
handing on (handler tasks, batches, acks and nacks) is bus.handing_on's.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import time
from typing import Protocol

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import DEFAULT_PREFIX, ConsumerInfo, Header, StatusCode
from nats.js.errors import NotFoundError
from opentelemetry import trace

from bus.acks import settle
from bus.durables import Durable, consumer_config, delivered
from bus.handing_on import BatchHandler, HandingOn, MessageHandler
from bus.settings import Settings

log = logging.getLogger(__name__)

EXPIRES_S = 5.0
"""How long a pull request stands before the server ends it (and it is asked again)."""
LOST_AFTER_S = 3.0
"""How long past its expiry a pull request may go unanswered before it counts as lost (a
reconnect can drop it) and is asked again."""
DRAIN_S = 2.0
"""How long stop() waits for messages already on their way to arrive (and be handed back)."""
STOP_GRACE_S = 10.0
"""How long stop() lets messages being handled finish (and be acked) before cancelling them."""
DRAIN_POLL_S = 0.02
"""How often drain() asks the server whether the durable still holds messages for it."""


class LiveConsumer(Protocol):
    """A service's consumer that runs on nats-py directly, started once NATS is reached."""

    async def start(self, nc: Client) -> None:
        """Start consuming."""

    async def stop(self) -> None:
        """Stop consuming, finishing (and acking) what is in hand."""


class PullLoop(HandingOn):
    """Pulls from a durable consumer and hands the messages on, until stopped.

    With on_message, each message is handled in its own task as it arrives; pull requests
    ask for at most `workers` messages in hand at once. With on_batch, the messages that
    arrived while the previous batch was handled (up to fetch) go to one call, after
    linger_s more when fewer than fetch are waiting, and up to twice fetch are asked for.
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
        linger_s: float = 0.0,
    ) -> None:
        if (on_batch is None) == (on_message is None):
            raise ValueError("a PullLoop takes one of on_batch and on_message")
        config = consumer_config(where, settings, workers if on_message else fetch)
        super().__init__(
            where,
            tracer=tracer,
            on_batch=on_batch,
            on_message=on_message,
            fetch=fetch,
            linger_s=linger_s,
        )
        self._capacity = max(workers, 1) if on_message else 2 * self._fetch
        self._pull_at = max(self._capacity // 2, 1)
        self._config = config
        self._last: Msg | None = None  # the latest message that arrived (drain)
        self._delivered_before = 0
        self._asked = 0  # messages asked for and neither delivered nor expired
        self._answer_by = 0.0  # when the newest pull request should have been answered
        self._nc: Client | None = None
        self._reconnects = 0
        self._stopping = False
        self._missing = False  # the durable was deleted (or JetStream answered no one)
        self._sub: Subscription | None = None
        self._inbox = ""
        self._next = f"{DEFAULT_PREFIX}.CONSUMER.MSG.NEXT.{where.stream}.{where.durable}"
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, nc: Client) -> None:
        """Bind to (or create) the durable and start pulling."""
        info = await self._ensure_durable(nc)
        self._delivered_before = delivered(info)  # to consumers before this one (drain)
        self._nc = nc
        self._reconnects = nc.stats["reconnects"]
        self._inbox = nc.new_inbox()
        self._sub = await nc.subscribe(self._inbox, cb=self._arrived)
        self._tasks.append(asyncio.create_task(self._watch(), name=f"pull {self._where.durable}"))
        if self._on_batch is not None:
            self._tasks.append(asyncio.create_task(self._batches(self._on_batch)))
        self._pull()

    async def _ensure_durable(self, nc: Client) -> ConsumerInfo:
        """Create the durable if it is not there (first start, or deleted since)."""
        js = nc.jetstream()
        info: ConsumerInfo
        try:
            info = await js.consumer_info(self._where.stream, self._where.durable)
        except NotFoundError:
            info = await js.add_consumer(self._where.stream, config=self._config)
        return info

    async def stop(self) -> None:
        """Stop pulling; let the messages being handled finish (STOP_GRACE_S at most) and
        hand back the ones not started, and those still arriving, for another replica to
        take at once."""
        self._stopping = True
        if self._sub is not None:
            with contextlib.suppress(Exception):  # runs _arrived for what is on its way
                await asyncio.wait_for(self._sub.drain(), DRAIN_S)  # type: ignore[no-untyped-call]
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        unstarted, self._arrived_msgs = list(self._arrived_msgs), collections.deque()
        await asyncio.gather(*(settle(msg, 0.0) for msg in unstarted))
        if self._running:
            _, late = await asyncio.wait(set(self._running), timeout=STOP_GRACE_S)
            for task in late:  # unacked: JetStream redelivers them after ack_wait
                task.cancel()
            if late:  # bounded too: a handler that ignores its cancellation holds no stop
                _, stuck = await asyncio.wait(late, timeout=STOP_GRACE_S)
                if stuck:
                    log.warning("%s: %d handlers did not stop", self._where.durable, len(stuck))
        self._nc = None

    async def drain(self, within_s: float) -> bool:
        """Wait until this loop has handled every message its durable holds (within_s at
        most): none left to deliver, every one delivered arrived here, none in hand. Whether
        it got there.

        For the only consumer of its durable before a stop: stop() hands back what it has
        not started, for another replica to take at once; with none, the messages wait for
        the next consumer to start, and when the server restarts meanwhile (an embedded one,
        stopped with its process) the hand-back is forgotten and they wait for ack_wait. A
        message nacked with a delay counts as handled here."""
        nc = self._nc
        if nc is None:
            return True
        try:
            async with asyncio.timeout(within_s):
                while not await self._drained(nc.jetstream()):  # noqa: ASYNC110 - the server's state
                    await asyncio.sleep(DRAIN_POLL_S)
        except TimeoutError:
            log.warning("%s: stopping with messages not handled after %.1f s",
                        self._where.durable, within_s)  # fmt: skip
            return False
        return True

    async def _drained(self, js: JetStreamContext) -> bool:
        """Whether the durable holds nothing that this loop has not handled."""
        try:
            info = await js.consumer_info(self._where.stream, self._where.durable)
        except Exception as exc:  # NATS or JetStream away for a moment: asked again
            log.info("%s: durable not reachable: %s", self._where.durable, exc)
            return False
        if info.num_pending or self._running or self._arrived_msgs or self._in_batch:
            return False
        # Deliveries are numbered in the order they arrive: the latest that arrived here, or
        # the last before this loop started (to a consumer gone since: its messages come
        # back after ack_wait), is the latest the server made.
        arrived = self._last.metadata.sequence.consumer if self._last is not None else 0
        return delivered(info) <= max(arrived or 0, self._delivered_before)

    def _pull(self) -> None:
        """Ask for as many messages as there is room for, once the room is worth a request.
        Never while NATS is away (nats-py would buffer the requests and send them all once
        back, every one live), nor while the durable is missing (the watch re-creates it)."""
        nc = self._nc
        if nc is None or self._sub is None or self._stopping or self._missing:
            return
        if not nc.is_connected:
            return  # the watch asks once reconnected
        if nc.stats["reconnects"] != self._reconnects:  # requests of the old connection: gone
            self._reconnects = nc.stats["reconnects"]
            self._asked = 0
        in_hand = len(self._running) + len(self._arrived_msgs) + self._in_batch
        room = self._capacity - in_hand - self._asked
        if room < self._pull_at:
            return
        self._asked += room
        self._answer_by = time.monotonic() + EXPIRES_S + LOST_AFTER_S
        request = {"batch": room, "expires": int(EXPIRES_S * 1e9)}
        task = asyncio.create_task(
            nc.publish(self._next, json.dumps(request).encode(), reply=self._inbox)
        )
        task.add_done_callback(_quiet)

    async def _arrived(self, msg: Msg) -> None:
        """A delivery on the inbox: a message to hand on, or the server's word on a request."""
        status = JetStreamContext.is_status_msg(msg)
        if status is None and self._stopping:
            await settle(msg, 0.0)  # arrived as we stop: another replica takes it at once
            return
        if status is None:
            self._asked = max(self._asked - 1, 0)
            self._last = msg
            if self._on_message is not None:
                task = asyncio.create_task(self._one(msg))
                self._running.add(task)
                task.add_done_callback(self._done)
            else:
                self._arrived_msgs.append(msg)
                self._woken.set()
            return
        if status == StatusCode.CONTROL_MESSAGE:
            return  # a heartbeat
        headers = msg.headers or {}
        unfilled = headers.get("Nats-Pending-Messages")
        if status in (StatusCode.REQUEST_TIMEOUT, StatusCode.CONFLICT) and unfilled is not None:
            self._asked = max(self._asked - int(unfilled), 0)  # that request ended
            self._pull()
            return
        self._asked = 0  # no count to go by
        why = str(headers.get(Header.DESCRIPTION, ""))
        if status == StatusCode.CONFLICT and why == "Leadership Change":
            self._pull()  # the new leader takes the next request at once
            return
        # No responders (503), the durable deleted, too many waiting requests: asking again
        # at once would loop as fast as the server answers. The watch asks again (and
        # re-creates a deleted durable) after LOST_AFTER_S.
        self._missing = status == StatusCode.SERVICE_UNAVAILABLE or "Deleted" in why
        self._answer_by = time.monotonic() + LOST_AFTER_S
        log.warning("%s: pull request ended: %s %s; asking again in %.0f s",
                    self._where.durable, status, why, LOST_AFTER_S)  # fmt: skip

    async def _watch(self) -> None:
        """Ask again when a pull request went unanswered past its expiry (a reconnect), or
        was refused; re-create the durable when it went missing."""
        while True:
            await asyncio.sleep(LOST_AFTER_S / 2)
            if time.monotonic() <= self._answer_by:
                continue
            if self._missing and self._nc is not None and self._nc.is_connected:
                try:
                    await self._ensure_durable(self._nc)
                    self._missing = False
                except Exception as exc:  # JetStream not back yet: the next round tries
                    log.warning("%s: durable not reachable: %s", self._where.durable, exc)
                    self._answer_by = time.monotonic() + LOST_AFTER_S
                    continue
            if self._asked:
                log.info("%s: a pull request went unanswered; asking again", self._where.durable)
                self._asked = 0
            self._pull()


def _quiet(task: asyncio.Task[None]) -> None:
    """Log a pull request that could not be sent (NATS away): the watch asks again."""
    if not task.cancelled() and task.exception() is not None:
        log.warning("a pull request was not sent: %s", task.exception())
