"""Settlements: a finished request's actual cost added to its counters, once per request id.

settle() adds the cost to every counter of the request (whether a budget reads it or not)
and releases its reservation, one SETTLE script per counter group, each group once. Both the
router (right after the answer) and the ledger consumer (from the LEDGER stream) settle; the
first wins. Part of BudgetStore (store.py), which sets the attributes declared here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from redis.commands.core import AsyncScript

from bus.messages import LedgerEvent
from cost_ledger.budgets import keys
from cost_ledger.budgets.crossings import crossings
from cost_ledger.budgets.gate import Settlement
from cost_ledger.budgets.groups import grouped
from cost_ledger.budgets.policy import Charge, Subject, Unit, charges, event_messages
from cost_ledger.budgets.reserving import Reserving
from cost_ledger.budgets.waiters import WAKE_PER_RELEASE, Waiters

log = logging.getLogger(__name__)


class Settling(Reserving):
    """BudgetStore's settle, from the router's answer or from a ledger event."""

    _settle: AsyncScript
    _waiters: Waiters

    async def settle(
        self,
        request_id: str,
        subject: Subject,
        *,
        cost: int,
        messages: int,
        at_ms: int,
        final: bool = False,
        alerts: bool = True,
        reserved_by: str = "",
    ) -> Settlement:
        """Add a finished request's cost (and messages) to its counters and release its
        reservation, once per request id; at_ms (its finish) picks the periods.

        The router's settle is provisional; the ledger's is final (final=True) and corrects
        a provisional one of another amount (a request answered twice, by two replicas).
        reserved_by: the request whose reservation held this cost's room (a call booked at
        its bound under its own id); each group settling it first takes the cost off that
        reservation. A failure there leaves the room held until that request settles or its
        reservation expires: held twice for a while, never spent twice.
        """
        groups = grouped(charges(subject, at_ms))
        spent: dict[str, int] = {}
        codes: list[int] = []
        try:
            # Each group settles once, by itself, so the groups go together (one round trip).
            replies = await asyncio.gather(
                *(
                    self._settle_group(request_id, group, group_charges, final, cost, messages)
                    for group, group_charges in groups
                ),
                return_exceptions=True,
            )
        finally:
            self._groups_of.pop(request_id, None)
            self._waiters.wake(WAKE_PER_RELEASE)
        answered: list[list[Any]] = []
        for reply in replies:
            if isinstance(reply, BaseException):
                raise reply
            answered.append(reply)
        held = False
        for (_, group_charges), reply in zip(groups, answered, strict=True):
            codes.append(int(reply[0]))
            held = held or bool(int(reply[1]))
            if int(reply[0]):  # {0}: this group had it settled already
                spent.update(
                    (c.counter, int(v)) for c, v in zip(group_charges, reply[2:], strict=True)
                )
        if not any(codes):
            return Settlement(applied=False, held=held)
        first = {group for (group, _), code in zip(groups, codes, strict=True) if code == 1}
        if reserved_by and first and cost > 0:
            try:
                await self._give_back(reserved_by, subject, cost, first)
            except Exception:
                log.warning("%d micro-USD of %s's reservation not given back after %s settled"
                            " it", cost, reserved_by, request_id, exc_info=True)  # fmt: skip
        corrected = 2 in codes
        complete = all(code == 1 for code in codes)
        if not alerts or cost <= 0:
            return Settlement(applied=True, corrected=corrected, complete=complete, held=held)
        owed = crossings(self.live.rules.budgets.values(), subject, spent, at_ms)
        sent = await self._alerter.fire(owed)
        return Settlement(
            applied=True, corrected=corrected, alerts=tuple(sent), complete=complete, held=held
        )

    async def _settle_group(
        self,
        request_id: str,
        group: str,
        group_charges: list[Charge],
        final: bool,
        cost: int,
        messages: int,
    ) -> list[Any]:
        """SETTLE in one group: its reply (see scripts.SETTLE)."""
        marker_ttl_s = keys.settled_ttl_s((c.expire_at_s for c in group_charges), time.time())
        args: list[str | int] = [
            request_id, marker_ttl_s, keys.reservation_prefix(group),
            "f" if final else "p", cost, messages,
        ]  # fmt: skip
        for charge in group_charges:
            args += ["u" if charge.unit is Unit.USD else "m", charge.expire_at_s]
        reply: list[Any] = await self._settle(
            keys=[
                keys.reservations(group),
                keys.reservation(group, request_id),
                keys.settled(group, request_id),
                *(keys.counter(c.counter) for c in group_charges),
            ],
            args=args,
        )
        return reply

    async def settle_event(
        self, event: LedgerEvent, *, final: bool = True, alerts: bool = True, live: bool = True
    ) -> Settlement:
        """Settle from a ledger event (the ledger consumer, or a rebuild); idempotent.

        final: the event was just applied to the aggregates, so its cost is the one the
        ledger keeps for this request; a duplicate event is settled provisionally (a no-op
        once anything was settled). live=False (a rebuild replaying old events) leaves
        standing reservations alone: a booking's room is given back only as it happens.
        """
        messages = event_messages(event)
        subject = Subject(
            tenant=event.tenant,
            agent=event.agent,
            workflow=event.workflow_id,
            user=event.user,
            workspace=event.workspace,
            project=event.project,
        )
        at_ms = event.finished_ms or event.started_ms or self._clock()
        return await self.settle(
            event.request_id,
            subject,
            cost=event.cost_micro_usd,
            messages=messages,
            at_ms=at_ms,
            final=final,
            alerts=alerts,
            reserved_by=event.reserved_by if live else "",
        )
