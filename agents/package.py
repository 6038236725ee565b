"""The listing package of a finished workflow: one JSON per marketplace, everything else by
family, and the compact facts seller chat reads. Pure: checkpoints in, dicts out."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from agents.dag import WorkflowDag
from agents.marketplaces import Marketplace, condition_names
from agents.spec import PACKAGE
from bus.messages import AgentCheckpoint, ProductUploaded

Json = dict[str, Any]


@dataclass(kw_only=True)
class Package:
    """A workflow's assembled listing and its totals."""

    listing: Json
    agents_ok: set[str] = field(default_factory=set)
    cost_micro_usd: int = 0
    baseline_micro_usd: int = 0
    call_free_baseline_micro_usd: int = 0
    """The part of baseline_micro_usd of work that made no paid call (booked on success)."""
    llm_calls: int = 0
    served_by: dict[str, int] = field(default_factory=dict)
    """How many of the agents' outputs each lever served."""
    simulated: bool = False
    """Some agent's answer came from the simulated provider."""


def build_package(
    dag: WorkflowDag, upload: ProductUploaded, checkpoints: dict[str, AgentCheckpoint]
) -> Package:
    """The package: per-marketplace listings, then every agent's output by family."""
    out = {name: dict(c.output) for name, c in checkpoints.items() if c.ok}
    families: dict[str, Json] = {}
    for name, spec in dag.specs.items():
        if name in out:
            families.setdefault(str(spec.family), {})[spec.listing_key or name] = out[name]
    listing: Json = {
        "product_id": upload.product_id,
        "workflow_id": upload.workflow_id,
        "marketplaces": {str(m): marketplace_listing(m, out) for m in Marketplace},
        **families,
        "missing": sorted(set(dag.specs) - set(out)),
    }
    return Package(
        listing=listing,
        agents_ok=set(out),
        cost_micro_usd=sum(c.cost_micro_usd for c in checkpoints.values()),
        baseline_micro_usd=sum(c.baseline_micro_usd for c in checkpoints.values()),
        call_free_baseline_micro_usd=sum(
            c.call_free_baseline_micro_usd for c in checkpoints.values()
        ),
        llm_calls=sum(c.llm_calls for c in checkpoints.values()),
        served_by=dict(Counter(str(c.lever) for c in checkpoints.values() if c.ok)),
        simulated=any(c.simulated for c in checkpoints.values()),
    )


def marketplace_listing(market: Marketplace, out: dict[str, Json]) -> Json:
    """What one marketplace's listing form needs, from the agents' outputs."""
    copy = out.get(f"{market}_listing", {})
    category = out.get("category", {})
    grade = str(out.get("condition", {}).get("grade", ""))
    fees = out.get("fees", {}).get("marketplaces", {}).get(str(market), {})
    margin = out.get("margin", {}).get("marketplaces", {}).get(str(market), {})
    listing: Json = {
        "title": copy.get("title"),
        "description": copy.get("description"),
        "category": category.get("google" if market is Marketplace.SHOPIFY else str(market)),
        "condition": condition_names(grade).get(str(market)) if grade else None,
        "condition_note": out.get("condition", {}).get("note"),
        "price_usd": out.get("fees", {}).get("price_usd"),
        "shipping_usd": out.get("fees", {}).get("shipping_usd"),
        "fee_usd": fees.get("fee_usd"),
        "profit_usd": margin.get("profit_usd"),
    }
    if market is Marketplace.EBAY:
        listing["item_specifics"] = out.get("item_specifics")
        listing["translations"] = out.get("translation")
    elif market is Marketplace.AMAZON:
        listing["bullets"] = out.get("amazon_bullets", {}).get("bullets")
    elif market is Marketplace.ETSY:
        listing["tags"] = out.get("etsy_tags", {}).get("tags")
    else:
        listing["seo_title"] = copy.get("seo_title")
        listing["meta_description"] = copy.get("meta_description")
        listing["handle"] = handle(str(copy.get("title") or ""))
    return listing


def handle(title: str) -> str:
    """A Shopify URL handle from a title: lowercase words joined by hyphens."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:80]


def package_checkpoint(package: Package, upload: ProductUploaded) -> AgentCheckpoint:
    """The compact facts of a finished package, kept per tenant for seller chat."""
    listing = package.listing
    markets = listing["marketplaces"]
    image = listing.get("image", {})
    pricing = listing.get("pricing", {})
    facts: Json = {
        "product_id": upload.product_id,
        "name": image.get("product", {}).get("name") or upload.title_hint,
        "brand": image.get("product", {}).get("brand"),
        "condition": image.get("condition", {}).get("grade"),
        "price_usd": markets["ebay"]["price_usd"],
        "quick_sale_usd": pricing.get("price", {}).get("quick_sale_usd"),
        "cost_price": upload.cost_price or None,
        "best_marketplace": pricing.get("margin", {}).get("best"),
        "profit_usd": {m: v.get("profit_usd") for m, v in markets.items()},
        "titles": {m: v.get("title") for m, v in markets.items()},
        "compliance": listing.get("operations", {}).get("compliance", {}).get("status"),
        "missing": listing["missing"],
    }
    return AgentCheckpoint(
        workflow_id=upload.workflow_id,
        tenant=upload.tenant,
        agent=PACKAGE,
        ok=True,
        output=facts,
        cost_micro_usd=package.cost_micro_usd,
        baseline_micro_usd=package.baseline_micro_usd,
        simulated=package.simulated,
        llm_calls=package.llm_calls,
    )
