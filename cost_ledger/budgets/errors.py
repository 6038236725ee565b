"""Errors of the budgets.

LedgerError (cost_ledger.errors)
└── BudgetConfigError      a budgets file or change is invalid (carries where and why)

A request a budget cannot take is not an error here: the router raises
router.errors.OverBudgetError, whose error result names scope, limit and spent.
"""

from __future__ import annotations

from cost_ledger.errors import LedgerError


class BudgetConfigError(LedgerError, ValueError):
    """A budgets file or a run-time change that cannot be used."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason
