"""The live budget rules, kept in Redis so that every replica, and a restarted one, sees them.

The budgets file seeds them once; BudgetChange messages change them. A change is applied to
Redis once per change id (whoever sees it first: the CLI or any replica), and each replica
reloads its copy when the rev key says the rules moved on.
"""

from __future__ import annotations

import logging
import time
import uuid

import redis.asyncio as aioredis

from bus.messages import BudgetChange
from cost_ledger.budgets import keys, scripts
from cost_ledger.budgets.config import BudgetConfig, BudgetRules, EngineSettings, check_change

log = logging.getLogger(__name__)


class LiveBudgets:
    """This replica's copy of the live rules, and the way to change them for everyone."""

    def __init__(self, redis: aioredis.Redis, seed: BudgetConfig) -> None:
        self._redis = redis
        self._seed = seed
        self._rules = seed.rules
        self._rev: bytes | None = None
        self._checked = 0.0
        self._apply = redis.register_script(scripts.APPLY_CONFIG)

    @property
    def engine(self) -> EngineSettings:
        """The engine settings of the budgets file."""
        return self._seed.engine

    @property
    def rules(self) -> BudgetRules:
        """The rules as last loaded (see current() for a checked copy)."""
        return self._rules

    async def current(self) -> BudgetRules:
        """The rules, reloaded first if another replica changed them (checked every refresh_s)."""
        now = time.monotonic()
        if now - self._checked >= self.engine.refresh_s:
            self._checked = now
            rev = await self._redis.get(keys.CONFIG_REV)
            if rev is not None and rev != self._rev:
                await self.load()
        return self._rules

    async def ensure_seeded(self) -> bool:
        """Write the file's rules as the live ones if there are none yet; returns whether."""
        seeded = await self._write("seed", self._seed.rules.as_change("seed"), "")
        if seeded:
            log.info("budgets seeded from the budgets file")
        return seeded

    async def load(self) -> BudgetRules:
        """Read the live rules from Redis (the file's, if none are stored)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(keys.CONFIG_REV)
            pipe.hgetall(keys.CONFIG)
            rev, raw = await pipe.execute()
        self._rev = rev
        self._rules = BudgetRules.from_fields(raw) if rev is not None else self._seed.rules
        self._checked = time.monotonic()
        return self._rules

    async def apply(self, change: BudgetChange) -> bool:
        """Apply a change to the live rules once per change id, then reload; returns whether
        this call applied it. Raises BudgetConfigError if the change is invalid."""
        check_change(change)
        await self.ensure_seeded()
        applied = await self._write("change", change, keys.applied(change.change_id))
        await self.load()
        return applied

    async def _write(self, mode: str, change: BudgetChange, marker: str) -> bool:
        sets = BudgetRules().apply(change).fields() if change.replace_all else _sets(change)
        deletes = [f"budget:{n}" for n in change.remove_budgets]
        deletes += [f"tier:{n}" for n in change.remove_tiers]
        if change.remove_request_cap and change.request_cap is None:
            deletes.append("cap")
        pairs: list[bytes | str] = []
        for name, value in sets.items():
            pairs += [name, value]
        args: list[bytes | str | int] = [
            mode, uuid.uuid4().hex, "1" if change.replace_all else "0", len(sets)
        ]  # fmt: skip
        done = await self._apply(
            keys=[keys.CONFIG, keys.CONFIG_REV, marker or keys.CONFIG_REV],
            args=[*args, *pairs, *deletes],
        )
        return bool(done)


def _sets(change: BudgetChange) -> dict[str, bytes]:
    """The hash fields a (partial) change sets."""
    rules = BudgetRules(
        budgets={b.name: b for b in change.set_budgets},
        tiers={t.tier: t for t in change.set_tiers},
        request_cap=change.request_cap,
    )
    return rules.fields()
