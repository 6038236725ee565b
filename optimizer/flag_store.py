"""The live flags in Redis, how they change (check, write, bump the rev, tell every replica),
and how a replica keeps its in-memory copy current without a restart."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterable
from typing import Any

import redis.asyncio as aioredis
from faststream.message import StreamMessage
from faststream.nats import NatsRouter
from nats.aio.client import Client as NatsClient
from redis.exceptions import RedisError

from bus import subjects
from bus.codec import decode, encode
from bus.consumers import Incoming
from bus.errors import WireError
from bus.messages import FlagChange, FlagRule
from cost_ledger.catalog import PriceCatalog
from optimizer import keys, models
from optimizer.flags import FlagSet, check_rule
from router.providers.registry import ProviderRegistry

REFRESH_S = 5.0
"""How often a replica checks the rev key, in case it missed a control message."""
log = logging.getLogger(__name__)


class FlagStore:
    """The flag rules every replica shares, in one Redis hash with a revision counter."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis

    async def rules(self) -> list[FlagRule]:
        """Every stored rule (unreadable ones are logged and skipped)."""
        raw = await self._redis.hgetall(keys.FLAGS)
        found: list[FlagRule] = []
        for name, value in raw.items():
            try:
                found.append(decode(keys.raw(value), FlagRule))
            except WireError as exc:
                log.warning("skipping unreadable flag %r: %s", name, exc)
        return found

    async def rev(self) -> int:
        """The revision of the rules: bumped by every change."""
        return int(await self._redis.get(keys.FLAGS_REV) or 0)

    async def change(
        self, set_rules: Iterable[FlagRule] = (), removed: Iterable[str] = (), by: str = ""
    ) -> FlagChange:
        """Check and write a change; raises FlagError before writing anything invalid."""
        change = FlagChange(
            change_id=uuid.uuid4().hex, set_rules=list(set_rules), removed=list(removed), by=by
        )
        for rule in change.set_rules:
            check_rule(rule)
        async with self._redis.pipeline(transaction=True) as pipe:
            for rule in change.set_rules:
                pipe.hset(keys.FLAGS, rule.name, encode(rule))
            if change.removed:
                pipe.hdel(keys.FLAGS, *change.removed)
            pipe.incr(keys.FLAGS_REV)
            await pipe.execute()
        return change


async def publish_change(nc: NatsClient, change: FlagChange) -> None:
    """Tell every router replica that the flags changed (core NATS: Redis holds the truth)."""
    await nc.publish(subjects.FLAGS_CONTROL, encode(change))
    await nc.flush()


async def _whole_message(msg: StreamMessage[Any]) -> Any:
    return msg


class LiveFlags:
    """One replica's copy of the flags: read from memory per request, reloaded on change."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        catalog: PriceCatalog | None = None,
        registry: ProviderRegistry | None = None,
        refresh_s: float = REFRESH_S,
    ) -> None:
        self._store = FlagStore(redis)
        self._redis = redis
        self._catalog = catalog
        self._registry = registry
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
            if await self._store.rev() != self.rev:
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
                rev = await self._store.rev()
                rules = await self._store.rules()
                if self._catalog is not None:
                    await models.load_registered(self._redis, self._catalog, self._registry)
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
