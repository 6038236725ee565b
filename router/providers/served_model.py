"""The model that answered: checked against the one asked for, and priced as served.

A provider reports the model it served (a dated snapshot id such as "gpt-4o-2024-08-06" is
the same model). When it names another model the catalog prices, the call is priced as that
model, counted in flipsync_served_model_mismatches and noted in the result's reason; a served
name the catalog does not know is priced as the asked model and counted as "unpriced".
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from prometheus_client import Counter

from bus.metrics import REGISTRY
from bus.subjects import shown
from cost_ledger.catalog import ModelPrice, PriceCatalog

log = logging.getLogger(__name__)

MISMATCHES = Counter(
    "flipsync_served_model_mismatches",
    "Provider answers whose reported model is not the one asked for, by asked and served.",
    ("asked", "served"),
    registry=REGISTRY,
)
UNPRICED = "unpriced"
_MODEL_ID = re.compile(r"[\x21-\x7e]{1,128}")
"""A model id as providers report them: 1 to 128 printable ASCII characters, no spaces."""


def reported_model(reported: str | None, asked: str) -> str:
    """The model a provider says it served, when it reads as a model id; else the asked
    model. The name goes into the result, the ledger's rows and the metrics' labels, so a
    provider's garbage (a megabyte, a line break) must not (it is logged, cut short)."""
    if not reported:
        return asked
    if _MODEL_ID.fullmatch(reported) is None:
        log.warning("provider reported model %s for %s: not a model id, kept as %s",
                    shown(reported), asked, asked)  # fmt: skip
        return asked
    return reported


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
        note = f"provider reported model {shown(reported)}, not in the catalog: priced as {asked}"
        return Served(price=asked_price, note=note)
    MISMATCHES.labels(asked, name).inc()
    note = f"asked {asked}, provider served {reported}: priced as {name}"
    return Served(price=catalog.get(name), note=note)
