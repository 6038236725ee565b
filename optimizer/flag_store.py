"""The flags in Redis and how they change: check, write, bump the rev, tell every replica.
Each router replica's live copy is router.flags.live.LiveFlags."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import redis.asyncio as aioredis
from nats.aio.client import Client as NatsClient

from bus import subjects
from bus.codec import encode
from bus.messages import FlagChange, FlagRule
from optimizer import keys
from optimizer.flags import check_rule
from router.flags.live import read_rev, read_rules


class FlagStore:
    """The flag rules every replica shares, in one Redis hash with a revision counter."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis

    async def rules(self) -> list[FlagRule]:
        """Every stored rule (unreadable ones are logged and skipped)."""
        return await read_rules(self._redis)

    async def rev(self) -> int:
        """The revision of the rules: bumped by every change."""
        return await read_rev(self._redis)

    async def change(
        self, set_rules: Iterable[FlagRule] = (), removed: Iterable[str] = (), by: str = ""
    ) -> FlagChange:
        """Check and write a change; raises FlagError before writing anything invalid."""
        change = FlagChange(
            change_id=uuid.uuid4().hex, set_rules=list(set_rules), removed=list(removed), by=by
        )
        for rule in change.set_rules:
            check_rule(rule)
        # The rules, then the rev: two slots on a Redis Cluster, so not one MULTI. A replica
        # that reads the new rules before the rev moves reloads once more; one that sees the
        # new rev finds the new rules; a failure between leaves the rules written and says so.
        async with self._redis.pipeline(transaction=True) as pipe:
            for rule in change.set_rules:
                pipe.hset(keys.FLAGS, rule.name, encode(rule))
            if change.removed:
                pipe.hdel(keys.FLAGS, *change.removed)
            if len(pipe):
                await pipe.execute()
        await self._redis.incr(keys.FLAGS_REV)
        return change


async def publish_change(nc: NatsClient, change: FlagChange) -> None:
    """Tell every router replica that the flags changed (core NATS: Redis holds the truth)."""
    await nc.publish(subjects.FLAGS_CONTROL, encode(change))
    await nc.flush()
