"""Cost ledger: price catalog, pricing, ledger consumer, aggregates and reports.

Each name is imported on first use (PEP 562): the commands' parsers live in this package
(cli_args.py), and `flipsync cost --help` must not import Redis, rich or FastStream.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cost_ledger.aggregates import AggregateStore, Totals
    from cost_ledger.catalog import ModelPrice, PriceCatalog, Tier
    from cost_ledger.consumer import LedgerConsumer
    from cost_ledger.errors import (
        CatalogError,
        InvalidUsageError,
        LedgerError,
        UnknownModelError,
    )
    from cost_ledger.keys import Dimension
    from cost_ledger.pricing import (
        baseline_micro_usd,
        cost_micro_usd,
        max_cost_micro_usd,
        to_usd,
    )
    from cost_ledger.report import Report, build_report, render_report

_WHERE = {
    "AggregateStore": "aggregates",
    "Totals": "aggregates",
    "ModelPrice": "catalog",
    "PriceCatalog": "catalog",
    "Tier": "catalog",
    "LedgerConsumer": "consumer",
    "CatalogError": "errors",
    "InvalidUsageError": "errors",
    "LedgerError": "errors",
    "UnknownModelError": "errors",
    "Dimension": "keys",
    "baseline_micro_usd": "pricing",
    "cost_micro_usd": "pricing",
    "max_cost_micro_usd": "pricing",
    "to_usd": "pricing",
    "Report": "report",
    "build_report": "report",
    "render_report": "report",
}

__all__ = [
    "AggregateStore",
    "CatalogError",
    "Dimension",
    "InvalidUsageError",
    "LedgerConsumer",
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
    "max_cost_micro_usd",
    "render_report",
    "to_usd",
]


def __getattr__(name: str) -> object:
    """A re-exported name, from its module on first use."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'cost_ledger' has no attribute {name!r}")
    return getattr(importlib.import_module(f"cost_ledger.{module}"), name)
