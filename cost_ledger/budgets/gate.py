"""The seam between the router's budget stage and the budgets: what reserve and settle answer,
and the Protocol the stage is written against (BudgetStore implements it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bus.messages import BudgetAlert
from cost_ledger.budgets.config import BudgetRules, EngineSettings
from cost_ledger.budgets.policy import Check, Subject
from cost_ledger.budgets.scripts import Code


@dataclass(frozen=True, kw_only=True)
class Reservation:
    """What reserve() answered."""

    code: Code
    check: Check | None = None
    """The counter that refused or made the request wait."""
    spent: int = 0
    """Settled spend of that counter."""
    reserved: int = 0
    """Amount held by in-flight requests in that counter."""
    none_needed: bool = False
    """No budget reads the request's counters: it goes on with nothing reserved."""

    @property
    def holds(self) -> bool:
        """Whether the request may go on: it holds a reservation, or needs none."""
        return self.code in (Code.RESERVED, Code.HELD, Code.SETTLED)


@dataclass(frozen=True, kw_only=True)
class Settlement:
    """What settle() did."""

    applied: bool
    """False when the request id was settled before, with nothing to correct."""
    corrected: bool = False
    """A final settle replaced an earlier provisional one of another amount."""
    alerts: tuple[BudgetAlert, ...] = ()
    """Alerts this settle sent."""
    complete: bool = False
    """Every budget group took this settle as its first: the counters hold exactly this
    cost and these messages for the request (the ledger need not settle it again)."""
    held: bool = False
    """The request's reservation still stood when it settled. A first settle without it (the
    reservation expired while the request ran: its replica stalled past reservation_ttl_s,
    and its room went to other requests) charged spend no room was held for."""


class BudgetGate(Protocol):
    """What the router's budget stage needs of the budgets (BudgetStore is one)."""

    async def rules(self) -> BudgetRules:
        """The live rules."""
        ...

    @property
    def engine(self) -> EngineSettings:
        """Reservation settings."""
        ...

    async def reserve(self, request_id: str, subject: Subject, max_cost: int) -> Reservation:
        """Hold max_cost in every applicable budget, all or none."""
        ...

    async def extend(self, request_id: str, subject: Subject, extra_cost: int) -> Reservation:
        """Grow a standing reservation by extra_cost, all or none, without waiting."""
        ...

    async def settle(
        self, request_id: str, subject: Subject, *, cost: int, messages: int, at_ms: int
    ) -> Settlement:
        """Charge the actual cost and release the reservation, once per request id."""
        ...

    async def release(self, request_id: str, subject: Subject | None = None) -> bool:
        """Release the reservation without charging."""
        ...

    def hold(self, request_id: str, subject: Subject) -> list[int]:
        """Keep a live request's reservation from expiring until unhold(returned keys)."""
        ...

    def unhold(self, held: list[int]) -> None:
        """Stop keeping a reservation alive (its request settled or released it)."""
        ...

    async def wait_for_release(self, timeout_s: float) -> None:
        """Return when room may have been freed, or after timeout_s."""
        ...
