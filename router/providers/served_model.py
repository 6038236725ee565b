"""The model that answered: checked against the one asked for, and priced as served.

A provider reports the model it served (a dated snapshot id such as "gpt-4o-2024-08-06" is
the same model). When it names another model the catalog prices, the call is priced as that
model, counted in flipsync_served_model_mismatches and noted in the result's reason; a served
name the catalog does not know is priced as the asked model and counted as "unpriced".
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import Counter

from bus.metrics import REGISTRY
from cost_ledger.catalog import ModelPrice, PriceCatalog

MISMATCHES = Counter(
    "flipsync_served_model_mismatches",
    "Provider answers whose reported model is not the one asked for, by asked and served.",
    ("asked", "served"),
    registry=REGISTRY,
)
UNPRICED = "unpriced"


@dataclass(frozen=True, kw_only=True)
class Served:
    """Which catalog model to price an answer as, and what to say when it is not the asked."""

    price: ModelPrice
    note: str = ""
    """Empty when the provider served the asked model."""


def served_model(catalog: PriceCatalog, asked: str, reported: str) -> Served:
    """The price to book an answer at, given the asked model and the one the provider reported."""
    asked_price = catalog.get(asked)
    if not reported:
        return Served(price=asked_price)
    name = catalog.resolve(reported)
    if name == asked_price.name:
        return Served(price=asked_price)
    if name is None:
        MISMATCHES.labels(asked, UNPRICED).inc()
        note = f"provider reported model {reported!r}, not in the catalog: priced as {asked}"
        return Served(price=asked_price, note=note)
    MISMATCHES.labels(asked, name).inc()
    note = f"asked {asked}, provider served {reported}: priced as {name}"
    return Served(price=catalog.get(name), note=note)
