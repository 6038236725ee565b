"""A finished workflow as files: one JSON per marketplace, the whole package, a summary."""

from __future__ import annotations

import json
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

from agents.asking import PAID
from agents.limits import product_id_problem
from agents.marketplaces import Marketplace
from bus.messages import WorkflowDone
from bus.subjects import valid_token

Json = dict[str, Any]
MICRO = Decimal("0.000001")


def usd(micro_usd: int) -> Decimal:
    """Micro-dollars as Decimal dollars."""
    return Decimal(micro_usd) * MICRO


def savings_percent(done: WorkflowDone) -> Decimal:
    """How much of the naive baseline this product's workflow saved, in percent."""
    if done.baseline_micro_usd <= 0:
        return Decimal(0)
    saved = Decimal(done.baseline_micro_usd - done.cost_micro_usd) / done.baseline_micro_usd
    return (saved * 100).quantize(Decimal("0.1"))


MARKETPLACE_FILES = ("ebay", "amazon", "etsy", "shopify")
"""The marketplace files a package may hold (<market>.json): one this run does not write is
an earlier run's, and goes (a failed run left the last good run's listings beside it)."""


def write_package(out: Path, done: WorkflowDone, *, simulated: bool) -> Path:
    """Write a workflow's package under out/<tenant>/<product_id>/; return that folder.

    Raises ValueError, writing nothing, for a tenant or product id that is not one safe
    folder name (sources check ids as they read them; this holds whatever the event says).
    """
    folder = package_folder(out, done.tenant, done.product_id)
    folder.mkdir(parents=True, exist_ok=True)
    listing: Json = done.listing
    markets = listing.get("marketplaces", {})
    for market in MARKETPLACE_FILES:  # an earlier run's listing is not left beside this one
        if market not in markets:
            (folder / f"{market}.json").unlink(missing_ok=True)
    for market, body in markets.items():
        # A simulated provider's text is placeholder: each file says so itself.
        _dump(folder / f"{market}.json", {**body, "simulated": True} if simulated else body)
    _dump(
        folder / "package.json",
        {
            **listing,
            "ok": done.ok,
            "reason": done.reason,
            "cost_usd": str(usd(done.cost_micro_usd)),
            "baseline_usd": str(usd(done.baseline_micro_usd)),
            "simulated": simulated,
        },
    )
    (folder / "summary.txt").write_text(summary(done, simulated=simulated) + "\n")
    return folder


def folder_problem(folder: Path) -> str:
    """Why packages cannot be written under folder ("" when they can), found before anything
    is uploaded or paid: a file in its way, or no right to write where it would be made."""
    path = folder
    while not path.exists():
        if path.parent == path:
            return f"{folder}: no existing folder above it"
        path = path.parent
    if not path.is_dir():
        return f"{folder}: {path} is a file, not a folder"
    try:  # a trial file, gone at once: permissions alone do not say (root, /proc, read-only)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        return f"{folder}: cannot write in {path} ({exc.strerror or exc})"
    return ""


def package_folder(out: Path, tenant: str, product_id: str) -> Path:
    """out/<tenant>/<product_id>, or ValueError for a name that would lead anywhere else."""
    if not valid_token(tenant):
        raise ValueError(f"tenant {tenant!r}: not a package folder name")
    if problem := product_id_problem(product_id):
        raise ValueError(problem)
    folder = out / tenant / product_id
    if folder.parent.parent != out or folder.name != product_id:  # the checks above, again
        raise ValueError(f"product id {product_id!r} would be written outside {out}")
    return folder


def summary(done: WorkflowDone, *, simulated: bool) -> str:
    """A product's listing package in a dozen readable lines."""
    listing: Json = done.listing
    head = f"{done.product_id} (workflow {done.workflow_id[:8]})"
    if not done.ok:
        return f"{head}: FAILED: {done.reason}"
    markets: Json = listing.get("marketplaces", {})
    pricing: Json = listing.get("pricing", {})
    price: Json = pricing.get("price", {})
    margin: Json = pricing.get("margin", {})
    best = margin.get("best")
    best_profit = margin.get("marketplaces", {}).get(best, {}).get("profit_usd")
    ebay, amazon, etsy, shopify = (markets.get(str(m), {}) for m in Marketplace)
    shipping = listing.get("operations", {}).get("shipping", {}).get("recommended")
    compliance = listing.get("operations", {}).get("compliance", {})
    lines = [
        head,
        *(
            ["  SIMULATED  placeholder text from the simulated provider, not a real listing"]
            if simulated
            else []
        ),
        f"  price      ${ebay.get('price_usd')} (quick sale ${price.get('quick_sale_usd')}); "
        f"best on {best} (profit ${best_profit})",
        f"  eBay       {ebay.get('title')}",
        f"  Amazon     {amazon.get('title')} (+{len(amazon.get('bullets') or [])} bullets)",
        f"  Etsy       {etsy.get('title')} (+{len(etsy.get('tags') or [])} tags)",
        f"  Shopify    {shopify.get('title')} | SEO: {shopify.get('seo_title')}",
        f"  condition  {ebay.get('condition')}: {ebay.get('condition_note')}",
        "  shipping   "
        + (f"{shipping['service']} ${shipping['price_usd']}" if shipping else "freight quote"),
        *compliance_lines(compliance),
    ]
    for warning in margin.get("warnings") or []:
        lines.append(f"  warning    {warning}")
    if done.missing:
        lines.append(f"  missing    {', '.join(done.missing)} (optional)")
    note = " simulated" if simulated else ""
    lines.append(
        f"  cost       ${usd(done.cost_micro_usd)} vs naive ${usd(done.baseline_micro_usd)}: "
        f"saved {savings_percent(done)}%{note}{why_free(done.cost_micro_usd, done.served_by)}"
    )
    return "\n".join(lines)


def why_free(cost_micro_usd: int, served_by: dict[str, int]) -> str:
    """Why nothing was paid, for a line that says "saved 100%" (a re-run's products are
    answered from the cache): the levers that served the outputs, most first; "" otherwise."""
    if cost_micro_usd or not served_by or any(lever in PAID for lever in served_by):
        return ""  # a paid call at no cost (a free model) is no reuse
    ranked = sorted(served_by.items(), key=lambda item: (-item[1], item[0]))
    return ": no call paid, answers from " + ", ".join(f"{k} {n}" for k, n in ranked)


def compliance_lines(compliance: Json) -> list[str]:
    """The compliance check's status and every issue it found, one line each: "ok (2 issues)"
    read as a pass that hid its problems."""
    status = compliance.get("status", "n/a")
    issues = [i for i in compliance.get("issues") or [] if isinstance(i, dict)]
    if not issues:
        return [f"  compliance {status}, no issues found"]
    lines = [f"  compliance status {status}; {_count(len(issues), 'issue')} found:"]
    for issue in issues:
        market = issue.get("marketplace", "all")
        where = "all marketplaces" if market == "all" else market
        lines.append(
            f"  issue      {issue.get('severity', '?')}, {where}: {issue.get('rule', '')} "
            f"(fix: {issue.get('fix', '')})"
        )
    return lines


def _count(n: int, noun: str) -> str:
    """A count with its noun: 1 issue, 2 issues."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _dump(path: Path, body: object) -> None:
    path.write_text(json.dumps(body, indent=2, ensure_ascii=False, sort_keys=False) + "\n")
