"""Cost ledger: price catalog, pricing, ledger consumer, aggregates and reports."""

from cost_ledger.aggregates import AggregateStore, Totals
from cost_ledger.catalog import ModelPrice, PriceCatalog, Tier
from cost_ledger.errors import CatalogError, InvalidUsageError, LedgerError, UnknownModelError
from cost_ledger.keys import Dimension
from cost_ledger.pricing import baseline_micro_usd, cost_micro_usd, max_cost_micro_usd, to_usd
from cost_ledger.report import Report, build_report, render_report

__all__ = [
    "AggregateStore",
    "CatalogError",
    "Dimension",
    "InvalidUsageError",
    "LedgerError",
    "ModelPrice",
    "PriceCatalog",
    "Report",
    "Tier",
    "Totals",
    "UnknownModelError",
    "baseline_micro_usd",
    "build_report",
    "cost_micro_usd",
    "ledger_router",
    "max_cost_micro_usd",
    "render_report",
    "to_usd",
]


def __getattr__(name: str) -> object:
    """ledger_router on first use: the consumer imports FastStream, which the commands that
    only read this package (and their --help) do not need."""
    if name == "ledger_router":
        from cost_ledger.consumer import ledger_router

        return ledger_router
    raise AttributeError(f"module 'cost_ledger' has no attribute {name!r}")
