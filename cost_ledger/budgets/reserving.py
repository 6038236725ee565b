"""Reservations: a request's maximum cost held in every counter a budget reads, all or none.

reserve() holds it (and its user's message quota) in one Lua script per counter group. A
counter refuses when settled spend plus the amount would pass its limit; it says "wait" when
only in-flight reservations are in the way. extend() grows a standing reservation the same
way. Part of BudgetStore (store.py), which sets the attributes declared here.

Each script touches one counter group (a tenant's counters, or the global ones: one Redis
Cluster slot each, see keys.py). A request whose counters span groups reserves in each, in a
fixed order (its tenant's, then the global one); when a later group refuses, what the earlier
ones reserved is released again (compensation). docs/scaling.md argues why no budget can be
overspent this way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from cost_ledger.budgets import keys
from cost_ledger.budgets.alerts import Alerter
from cost_ledger.budgets.crossings import used_up
from cost_ledger.budgets.gate import Reservation
from cost_ledger.budgets.groups import grouped
from cost_ledger.budgets.live import LiveBudgets
from cost_ledger.budgets.policy import Check, Subject, Unit, checks
from cost_ledger.budgets.scripts import Code

_MEMO_MAX = 100_000


class Reserving:
    """BudgetStore's reserve and extend, and the giving back of reserved room."""

    redis: aioredis.Redis
    live: LiveBudgets
    _clock: Callable[[], int]
    _alerter: Alerter
    _reserve: AsyncScript
    _extend: AsyncScript
    _release: AsyncScript
    _shrink: AsyncScript
    _give_back_script: AsyncScript
    _suspect: bool
    _known_groups: set[str]
    _groups_of: dict[str, list[str]]

    async def reserve(self, request_id: str, subject: Subject, max_cost: int) -> Reservation:
        """Hold max_cost (and one message of a user's quota) in every counter a budget reads,
        all or none: group by group in a fixed order, undoing earlier groups on a refusal."""
        found = await self._checks(subject, max_cost)
        if not found:
            return Reservation(code=Code.RESERVED, none_needed=True)
        groups = grouped(found)
        await self._register(g for g, _ in groups)
        self._remember(request_id, [g for g, _ in groups])
        done: list[str] = []
        held = False
        for group, group_checks in groups:
            reply = await self._reserve(
                keys=[
                    keys.reservations(group),
                    keys.reservation(group, request_id),
                    keys.settled(group, request_id),
                    keys.ready(group),
                    *(keys.counter(c.counter) for c in group_checks),
                ],
                args=self._reservation_args(request_id, group, group_checks),
            )
            code = Code(int(reply[0]))
            if code is Code.RESERVED:
                done.append(group)
                continue
            if code is Code.HELD:  # a redelivery: an earlier delivery holds this group
                held = True
                continue
            await self._undo(request_id, done)  # compensation: nothing held for a refusal
            if code is Code.NOT_READY:
                self._suspect = True  # a slot lost its marker: the watch checks every slot
            if code not in (Code.DENIED, Code.WAIT):
                return Reservation(code=code)
            check = group_checks[int(reply[1]) - 1]
            got = Reservation(code=code, check=check, spent=int(reply[2]), reserved=int(reply[3]))
            full = used_up(check, got.spent) if code is Code.DENIED else None
            if full is not None and check.unit is Unit.USD:
                await self._alerter.fire([full])
            return got
        return Reservation(code=Code.HELD if held else Code.RESERVED)

    async def extend(self, request_id: str, subject: Subject, extra_cost: int) -> Reservation:
        """Add extra_cost to a standing reservation in every money counter, all or none."""
        found = await self._money_checks(subject, extra_cost)
        if not found or extra_cost <= 0:
            return Reservation(code=Code.RESERVED)
        grown: list[tuple[str, list[Check]]] = []
        for group, group_checks in grouped(found):
            reply = await self._extend(
                keys=[
                    keys.reservations(group),
                    keys.reservation(group, request_id),
                    *(keys.counter(c.counter) for c in group_checks),
                ],
                args=self._reservation_args(request_id, group, group_checks),
            )
            code = Code(int(reply[0]))
            if code is Code.RESERVED:
                grown.append((group, group_checks))
                continue
            for undo_group, undo_checks in grown:  # compensation: all groups or none
                await self._shrink(
                    keys=[
                        keys.reservation(undo_group, request_id),
                        *(keys.counter(c.counter) for c in undo_checks),
                    ],
                    args=[c.amount for c in undo_checks],
                )
            if code is not Code.DENIED:
                return Reservation(code=code)
            check = group_checks[int(reply[1]) - 1]
            return Reservation(code=code, check=check, spent=int(reply[2]), reserved=int(reply[3]))
        return Reservation(code=Code.RESERVED)

    async def _give_back(self, holder: str, subject: Subject, amount: int, only: set[str]) -> None:
        """Take amount off holder's standing reservation in the money counters of the groups
        in only: a booking under another id, settled there first, spent that room (a call of
        holder booked at its bound). Never below what holder holds in a counter."""
        found = await self._money_checks(subject, amount)
        await asyncio.gather(
            *(
                self._give_back_script(
                    keys=[
                        keys.reservation(group, holder),
                        *(keys.counter(c.counter) for c in group_checks),
                    ],
                    args=[amount],
                )
                for group, group_checks in grouped(found)
                if group in only
            )
        )

    async def _undo(self, request_id: str, groups: Sequence[str]) -> None:
        """Release what this request reserved in groups (a later group refused it)."""
        for group in reversed(groups):
            await self._release(
                keys=[keys.reservations(group), keys.reservation(group, request_id)],
                args=[request_id, keys.reservation_prefix(group)],
            )

    async def _register(self, groups: Iterable[str]) -> None:
        new = [g for g in groups if g not in self._known_groups]
        if new:
            await self.redis.sadd(keys.GROUPS, *new)
            self._known_groups.update(new)

    def _remember(self, request_id: str, groups: list[str]) -> None:
        if len(self._groups_of) > _MEMO_MAX:
            self._groups_of.clear()
        self._groups_of[request_id] = groups

    async def _money_checks(self, subject: Subject, amount: int) -> list[Check]:
        """The money counters (not message quotas) a request of subject holding amount is in."""
        return [c for c in await self._checks(subject, amount) if c.unit is Unit.USD]

    async def _checks(self, subject: Subject, amount: int) -> list[Check]:
        """The counters a request of subject holding amount must fit in, under the live rules."""
        rules = await self.live.current()
        engine = self.live.engine
        return checks(
            rules.budgets.values(),
            rules.tiers,
            subject,
            max_cost=amount,
            at_ms=self._clock(),
            overlap_ms=engine.period_overlap_s * 1000,
            default_tier=engine.default_tier,
        )

    def _reservation_args(self, request_id: str, group: str, found: list[Check]) -> list[str | int]:
        """RESERVE's and EXTEND's arguments: id, ttl, prefix, then each counter's triple."""
        args: list[str | int] = [
            request_id,
            int(self.live.engine.reservation_ttl_s * 1000),
            keys.reservation_prefix(group),
        ]
        for check in found:
            args += [check.limit, check.amount, check.expire_at_s]
        return args
