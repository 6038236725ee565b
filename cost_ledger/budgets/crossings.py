"""Which alerts a budget owes, pure: thresholds reached by settled spend, or used up.

100% fires when settled spend reaches the limit, or when the budget, past 80%, refuses (or
downgrades) a request because its settled spend plus the request's maximum would pass it:
spend itself never passes the limit, so "used up" is what 100% means.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bus.messages import BudgetAlert, BudgetPeriod, BudgetSpec
from cost_ledger.budgets import keys
from cost_ledger.budgets.periods import period_key
from cost_ledger.budgets.policy import Check, Subject, applies, scope_id, thresholds_reached


@dataclass(frozen=True, kw_only=True)
class Crossing:
    """A budget at or past a threshold in one period."""

    budget: str
    scope: str
    period: BudgetPeriod
    period_key: str
    limit: int
    spent: int
    percent: int

    @property
    def counter(self) -> str:
        """The counter id of the scope in the period."""
        return f"{self.scope}:{self.period_key}"

    @property
    def marker(self) -> str:
        """The Redis key that says this alert was sent."""
        return keys.alert(self.budget, self.counter, self.limit, self.percent)

    def alert(self) -> BudgetAlert:
        """The alert message."""
        return BudgetAlert(
            scope=self.scope,
            period=self.period.value,
            threshold=self.percent / 100,
            limit_micro_usd=self.limit,
            spent_micro_usd=self.spent,
            budget=self.budget,
            tenant=scope_tenant(self.scope),
            period_key=self.period_key,
        )


def scope_tenant(scope: str) -> str:
    """The tenant of a scope id; empty for the global scope."""
    parts = scope.split(":")
    return parts[1] if len(parts) > 1 else ""


def crossing_of(alert: BudgetAlert) -> Crossing:
    """The crossing a stored alert reports (to restore its marker)."""
    return Crossing(
        budget=alert.budget,
        scope=alert.scope,
        period=BudgetPeriod(alert.period),
        period_key=alert.period_key,
        limit=alert.limit_micro_usd,
        spent=alert.spent_micro_usd,
        percent=round(alert.threshold * 100),
    )


def crossings(
    budgets: Iterable[BudgetSpec], subject: Subject, spent: Mapping[str, int], at_ms: int
) -> list[Crossing]:
    """Every threshold reached by the budgets of a subject, from its counters' spent."""
    out: list[Crossing] = []
    for spec in budgets:
        scope = scope_id(spec.scope, subject)
        if scope is None or not applies(spec, subject):
            continue
        key = period_key(spec.period, at_ms)
        amount = spent.get(f"{scope}:{key}")
        if amount is None:
            continue
        out.extend(
            Crossing(
                budget=spec.name,
                scope=scope,
                period=spec.period,
                period_key=key,
                limit=spec.limit_micro_usd,
                spent=amount,
                percent=percent,
            )
            for percent in thresholds_reached(amount, spec.limit_micro_usd)
        )
    return out


def used_up(check: Check, spent: int) -> Crossing | None:
    """The 100% crossing of a budget that refused a request, if it is past 80%; before that
    the refusal is one request too large for what is left, said in its own error result."""
    if 80 not in thresholds_reached(spent, check.limit):
        return None
    return Crossing(
        budget=check.budget,
        scope=check.scope,
        period=check.period,
        period_key=check.period_key,
        limit=check.limit,
        spent=spent,
        percent=100,
    )
