"""One router replica's live copy of the feature flags: read from memory per request,
reloaded from Redis when a flags.control message says they changed (or every refresh_s, in
case one was missed). The optimizer writes the flags (optimizer.flag_store)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from faststream.message import StreamMessage
from faststream.nats import NatsRouter
from redis.exceptions import RedisError

from bus import subjects
from bus.codec import decode
from bus.consumers import Incoming
from bus.errors import WireError
from bus.messages import FlagRule
from router import keys
from router.flags.decide import FlagSet

REFRESH_S = 5.0
"""How often a replica checks the rev key, in case it missed a control message."""
log = logging.getLogger(__name__)


async def read_rules(redis: aioredis.Redis) -> list[FlagRule]:
    """Every stored rule (unreadable ones are logged and skipped)."""
    raw = await redis.hgetall(keys.FLAGS)
    found: list[FlagRule] = []
    for name, value in raw.items():
        try:
            found.append(decode(value if isinstance(value, bytes) else value.encode(), FlagRule))
        except WireError as exc:
            log.warning("skipping unreadable flag %r: %s", name, exc)
    return found


async def read_rev(redis: aioredis.Redis) -> int:
    """The revision of the rules: bumped by every change."""
    return int(await redis.get(keys.FLAGS_REV) or 0)


async def _whole_message(msg: StreamMessage[Any]) -> Any:
    return msg


class LiveFlags:
    """One replica's copy of the flags: read from memory per request, reloaded on change."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        on_reload: Callable[[], Awaitable[object]] | None = None,
        refresh_s: float = REFRESH_S,
    ) -> None:
        """on_reload runs with each reload, before the rules are swapped in (the composition
        loads fine-tuned models registered at run time with it)."""
        self._redis = redis
        self._on_reload = on_reload
        self._refresh_s = refresh_s
        self.flags = FlagSet()
        self.rev = -1
        self._next_check = 0.0
        self._lock = asyncio.Lock()
        self._refreshing: asyncio.Task[None] | None = None

    async def current(self) -> FlagSet:
        """The flags; loaded on first use, then re-checked in the background every refresh_s."""
        now = time.monotonic()
        if now < self._next_check:
            return self.flags
        if self.rev < 0:
            await self.reload()
        elif self._refreshing is None or self._refreshing.done():
            self._next_check = now + self._refresh_s
            self._refreshing = asyncio.create_task(self._check())
        return self.flags

    async def _check(self) -> None:
        """Reload if the flags changed; a failure is logged, and the next check tries again."""
        try:
            if await read_rev(self._redis) != self.rev:
                await self.reload()
        except RedisError as exc:
            log.warning("flags not checked, keeping the last ones: %s", exc)
        except Exception:  # a background task: an exception raised here would be lost
            log.exception("flags not reloaded, keeping the last ones")

    async def reload(self) -> None:
        """Read the rules (and fine-tuned models) from Redis; keep the old ones if it is down."""
        async with self._lock:
            self._next_check = time.monotonic() + self._refresh_s
            try:
                rev = await read_rev(self._redis)
                rules = await read_rules(self._redis)
                if self._on_reload is not None:
                    await self._on_reload()
            except RedisError as exc:
                log.warning("flags not reloaded, keeping the last ones: %s", exc)
                return
            self.flags, self.rev = FlagSet(rules), rev
            log.info("flags reloaded: rev %s, %s rules", rev, len(rules))

    def control_router(self) -> NatsRouter:
        """The flags.control subscriber (no queue group: every replica reloads)."""
        router = NatsRouter()

        async def on_change(incoming: Incoming) -> None:
            """Reload the flags from Redis."""
            await self.reload()

        router.subscriber(subjects.FLAGS_CONTROL, decoder=_whole_message, title="flags-control")(
            on_change
        )
        return router
