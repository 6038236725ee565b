"""Budgets: reserve before dispatch, settle after, never overspend; alerts; run-time changes."""

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
