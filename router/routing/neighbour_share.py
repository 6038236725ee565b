"""Routing neighbours past one replica: every verdict reaches the replica that routed the
request, and what that replica files reaches the others and outlives restarts.

The quality consumer is a durable consumer shared by the replicas, so an agent's verdict
lands on one replica, seldom the one holding the request's prompt vector
(router.routing.neighbours keeps it in process, by request id). Each replica therefore also
hears every verdict on a plain NATS subscription to ``quality.>`` and files the ones on
requests it routed. Each outcome a replica files (vector, task type, model, outcome: no
prompt text) is appended to one Redis stream bounded at ``keep`` entries; every replica
reads the entries of the others every ``poll_s`` seconds, and a starting replica reads the
last ``keep`` of them before it routes. Hearing a verdict is best effort: one missed while
a replica restarts is still counted by the durable consumer (router.routing.feedback),
only not filed by prompt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import uuid
from collections import deque
from typing import Any

import numpy as np
import redis.asyncio as aioredis
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from redis.exceptions import RedisError
from redis.typing import EncodableT, FieldT

from bus import subjects
from bus.codec import decode
from bus.errors import WireError
from bus.messages import QualitySignal as SignalMessage
from router.keys import PREFIX
from router.routing.feedback import is_feedback, signal_of
from router.routing.neighbours import OutcomeMemory

log = logging.getLogger(__name__)

STREAM = f"{PREFIX}neighbours"
"""Stream of filed outcomes: r (replica), t (task type), m (model), y (outcome), v (float32s)."""
POLL_S = 1.0
"""How often a replica reads the outcomes the others filed."""
READ_BATCH = 512
MAX_SIGNAL_BYTES = 64 * 1024
"""A quality signal is a few hundred bytes; a larger message is not read here."""
MAX_NAME = 256
"""Longest task type or model name taken from the stream."""
MAX_DIMS = 4096
OUTBOX = 4096
"""Filed outcomes waiting to be written; the oldest go first while Redis is away."""


class SharedOutcomes:
    """A replica's OutcomeMemory joined to the other replicas' (module doc): a live
    consumer, started with the NATS connection and stopped with the router."""

    def __init__(
        self,
        memory: OutcomeMemory,
        redis: aioredis.Redis,
        *,
        keep: int,
        poll_s: float = POLL_S,
        replica: str | None = None,
        stream: str = STREAM,
    ) -> None:
        """keep: outcomes kept in Redis for every replica (0: this replica's own only)."""
        self.memory = memory
        self._stream = stream
        self._redis = redis
        self._keep = keep
        self._poll_s = poll_s
        self.replica = replica or uuid.uuid4().hex[:16]
        self._cursor = "0-0"
        self._outbox: deque[dict[FieldT, EncodableT]] = deque(maxlen=OUTBOX)
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._subscription: Subscription | None = None
        self._warned = False
        if keep > 0:
            memory.listen(self._filed)

    async def start(self, nc: Client) -> None:
        """Read the outcomes kept in Redis, then hear verdicts and share what is filed."""
        self._loop = asyncio.get_running_loop()
        if self._keep > 0:
            await self.load()
            self._tasks = [
                asyncio.create_task(self._write_forever(), name="neighbours-write"),
                asyncio.create_task(self._read_forever(), name="neighbours-read"),
            ]
        self._subscription = await nc.subscribe(
            subjects.QUALITY_ALL,
            cb=self._on_verdict,
            pending_msgs_limit=8192,
            pending_bytes_limit=8 * 1024 * 1024,
        )
        await nc.flush()  # the server knows the subscription before the first request

    async def stop(self) -> None:
        """Stop hearing verdicts, write what is filed, stop reading."""
        if self._subscription is not None:
            with contextlib.suppress(Exception):
                await self._subscription.unsubscribe()
            self._subscription = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        with contextlib.suppress(Exception):
            await self.flush()

    async def load(self) -> int:
        """Add the last ``keep`` outcomes kept in Redis (any replica's); returns how many."""
        try:
            newest: Any = await self._redis.xrevrange(self._stream, count=self._keep)
        except RedisError as exc:
            log.warning("routing neighbours not loaded from Redis: %s", exc)
            return 0
        if newest:
            self._cursor = _text(newest[0][0])
        return sum(self._add(fields, own_too=True) for _, fields in reversed(newest))

    async def read(self) -> int:
        """Add the outcomes the other replicas filed since the last read; returns how many."""
        added = 0
        while True:
            response: Any = await self._redis.xread({self._stream: self._cursor}, count=READ_BATCH)
            entries = response[0][1] if response else []
            for message_id, fields in entries:
                self._cursor = _text(message_id)
                added += self._add(fields, own_too=False)
            if len(entries) < READ_BATCH:
                return added

    async def flush(self) -> int:
        """Write the outcomes filed here so far to the stream; returns how many."""
        batch = [self._outbox.popleft() for _ in range(len(self._outbox))]
        if not batch:
            return 0
        await asyncio.gather(
            *(
                self._redis.xadd(self._stream, entry, maxlen=self._keep, approximate=False)
                for entry in batch
            )
        )
        return len(batch)

    def _filed(self, task_type: str, model: str, vector: np.ndarray, outcome: float) -> None:
        entry: dict[FieldT, EncodableT] = {
            "r": self.replica,
            "t": task_type,
            "m": model,
            "y": repr(outcome),
            "v": np.asarray(vector, dtype=np.float32).tobytes(),
        }
        self._outbox.append(entry)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def _on_verdict(self, msg: Msg) -> None:
        """File a verdict on a request this replica routed (ignore the rest, and bad input:
        the durable quality consumer dead-letters what it cannot read)."""
        if len(msg.data) > MAX_SIGNAL_BYTES:
            return
        try:
            message = decode(msg.data, SignalMessage)
        except WireError:
            return
        feedback = is_feedback(msg.subject)
        signal = signal_of(message, feedback=feedback)
        if signal is not None:
            kind = "feedback" if feedback else "validator"
            self.memory.observe(message.request_id, signal.model, signal.good, kind)

    async def _write_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
                self._warned = False
            except RedisError as exc:  # kept here; the others learn from later ones
                self._warn("routing neighbours not shared (Redis): %s", exc)

    async def _read_forever(self) -> None:
        while True:
            await asyncio.sleep(self._poll_s)
            try:
                await self.read()
                self._warned = False
            except RedisError as exc:
                self._warn("routing neighbours of other replicas not read (Redis): %s", exc)

    def _warn(self, message: str, exc: Exception) -> None:
        if not self._warned:  # once per outage, not once per poll
            log.warning(message, exc)
            self._warned = True

    def _add(self, fields: dict[Any, Any], *, own_too: bool) -> bool:
        entry = _entry(fields)
        if entry is None or (not own_too and entry[0] == self.replica):
            return False
        _, task_type, model, outcome, vector = entry
        return self.memory.add(task_type, model, vector, outcome)


def _entry(fields: dict[Any, Any]) -> tuple[str, str, str, float, np.ndarray] | None:
    """A stream entry's (replica, task type, model, outcome, vector), or None if malformed."""
    try:
        replica, task_type, model = (_text(fields[k]) for k in (b"r", b"t", b"m"))
        outcome = float(_text(fields[b"y"]))
        raw = fields[b"v"]
    except (KeyError, ValueError, UnicodeDecodeError, TypeError):
        return None
    names_ok = 0 < len(task_type) <= MAX_NAME and 0 < len(model) <= MAX_NAME
    if not names_ok or not (math.isfinite(outcome) and 0.0 <= outcome <= 1.0):
        return None
    if not isinstance(raw, bytes) or not raw or len(raw) % 4 or len(raw) > 4 * MAX_DIMS:
        return None
    vector = np.frombuffer(raw, dtype=np.float32)
    if not np.isfinite(vector).all():
        return None
    return replica, task_type, model, outcome, vector


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
