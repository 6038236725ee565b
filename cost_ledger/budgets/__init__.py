"""Budgets: reserve before dispatch, settle after, never overspend; alerts; run-time changes.

Each name is imported on first use (PEP 562), so that the budget commands' parsers
(cli_args.py) load without Redis or NATS: `flipsync budget --help` stays quick.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cost_ledger.budgets.alerts import AlertSink, JetStreamAlerts
    from cost_ledger.budgets.config import BudgetConfig, BudgetRules, EngineSettings
    from cost_ledger.budgets.errors import BudgetConfigError
    from cost_ledger.budgets.gate import BudgetGate, Reservation, Settlement
    from cost_ledger.budgets.live import LiveBudgets
    from cost_ledger.budgets.policy import Subject, Unit
    from cost_ledger.budgets.projection import LedgerView
    from cost_ledger.budgets.scripts import Code
    from cost_ledger.budgets.status import BudgetStatus, budget_status, render_status
    from cost_ledger.budgets.store import BudgetStore

_WHERE = {
    "AlertSink": "alerts",
    "JetStreamAlerts": "alerts",
    "BudgetConfig": "config",
    "BudgetRules": "config",
    "EngineSettings": "config",
    "BudgetConfigError": "errors",
    "BudgetGate": "gate",
    "Reservation": "gate",
    "Settlement": "gate",
    "LiveBudgets": "live",
    "Subject": "policy",
    "Unit": "policy",
    "LedgerView": "projection",
    "Code": "scripts",
    "BudgetStatus": "status",
    "budget_status": "status",
    "render_status": "status",
    "BudgetStore": "store",
}

__all__ = [
    "AlertSink",
    "BudgetConfig",
    "BudgetConfigError",
    "BudgetGate",
    "BudgetRules",
    "BudgetStatus",
    "BudgetStore",
    "Code",
    "EngineSettings",
    "JetStreamAlerts",
    "LedgerView",
    "LiveBudgets",
    "Reservation",
    "Settlement",
    "Subject",
    "Unit",
    "budget_status",
    "render_status",
]


def __getattr__(name: str) -> object:
    """A re-exported name, from its module on first use."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'cost_ledger.budgets' has no attribute {name!r}")
    return getattr(importlib.import_module(f"cost_ledger.budgets.{module}"), name)
