"""Marketplace selling fees and margins, in Decimal: plain arithmetic no model is asked for.

The schedules are the public US seller fees for most categories (eBay final value fee, Amazon
referral fee on a professional plan, Etsy transaction, payment and listing fees, Shopify
Payments on the Basic plan), as checked on FEES_CHECKED. Category exceptions, subscriptions,
promoted listings and taxes are left out: the figures are estimates for comparing
marketplaces, not invoices.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal

from agents.marketplaces import Marketplace

CENT = Decimal("0.01")
FEES_CHECKED = "2025-06"


@dataclass(frozen=True, kw_only=True)
class FeeSchedule:
    """What one marketplace charges for one sale; amounts in USD."""

    percent: Decimal
    """Share of the order total (item plus shipping charged) taken per sale."""
    minimum: Decimal = Decimal(0)
    """Least percentage fee per sale (Amazon's referral minimum)."""
    per_order: Decimal = Decimal(0)
    """Fixed fee per order."""
    per_small_order: Decimal | None = None
    """Fixed fee per order instead of per_order when the total is at most small_order."""
    small_order: Decimal = Decimal(0)
    per_listing: Decimal = Decimal(0)
    """Fee to list the item (Etsy), paid once per sale of one item here."""


SCHEDULES: dict[Marketplace, FeeSchedule] = {
    Marketplace.EBAY: FeeSchedule(
        percent=Decimal("0.136"),
        per_order=Decimal("0.40"),
        per_small_order=Decimal("0.30"),
        small_order=Decimal("10.00"),
    ),
    Marketplace.AMAZON: FeeSchedule(percent=Decimal("0.15"), minimum=Decimal("0.30")),
    # 6.5% transaction fee plus 3% payment processing, $0.25 per order, $0.20 per listing.
    Marketplace.ETSY: FeeSchedule(
        percent=Decimal("0.095"), per_order=Decimal("0.25"), per_listing=Decimal("0.20")
    ),
    Marketplace.SHOPIFY: FeeSchedule(percent=Decimal("0.029"), per_order=Decimal("0.30")),
}


def fee(schedule: FeeSchedule, price: Decimal, shipping: Decimal = Decimal(0)) -> Decimal:
    """The fees of one sale at price with shipping charged to the buyer, rounded to cents."""
    total = price + shipping
    share = max(total * schedule.percent, schedule.minimum)
    fixed = schedule.per_order
    if schedule.per_small_order is not None and total <= schedule.small_order:
        fixed = schedule.per_small_order
    return (share + fixed + schedule.per_listing).quantize(CENT, ROUND_HALF_UP)


def breakeven(schedule: FeeSchedule, cost: Decimal, shipping: Decimal = Decimal(0)) -> Decimal:
    """The lowest price at which a sale pays its fees and the seller's cost, in cents.

    Shipping charged to the buyer is assumed to pay the label, so only its fee counts.
    """
    fixed_fees = {schedule.per_order, schedule.per_small_order or schedule.per_order}
    candidates = []
    for fixed in fixed_fees:  # solve price - percent * (price + shipping) - fixed = cost
        fixed += schedule.per_listing
        price = (cost + fixed + schedule.percent * shipping) / (1 - schedule.percent)
        if (price + shipping) * schedule.percent < schedule.minimum:
            price = cost + fixed + schedule.minimum
        candidates.append(max(price.quantize(CENT, ROUND_CEILING), CENT))
    price = min(candidates)
    for _ in range(1000):  # the other fixed fee, or rounding, may need a few cents more
        if _pays(schedule, price, shipping, cost):
            break
        price += CENT
    while price > CENT and _pays(schedule, price - CENT, shipping, cost):
        price -= CENT
    return price


def _pays(schedule: FeeSchedule, price: Decimal, shipping: Decimal, cost: Decimal) -> bool:
    return price - fee(schedule, price, shipping) >= cost


def fees_by_marketplace(price: Decimal, shipping: Decimal) -> dict[str, dict[str, str]]:
    """Fee, rate and what the seller receives, for each marketplace (amounts as text)."""
    out: dict[str, dict[str, str]] = {}
    for market, schedule in SCHEDULES.items():
        amount = fee(schedule, price, shipping)
        out[str(market)] = {
            "fee_usd": str(amount),
            "fee_percent": str((amount / (price + shipping) * 100).quantize(Decimal("0.1"))),
            "payout_usd": str(price + shipping - amount),
        }
    return out


def margins(
    price: Decimal, shipping: Decimal, cost: Decimal | None
) -> dict[str, dict[str, str | bool]]:
    """Per marketplace: profit after fees and cost, margin on the price, and break-even."""
    out: dict[str, dict[str, str | bool]] = {}
    for market, schedule in SCHEDULES.items():
        profit = price - fee(schedule, price, shipping) - (cost or Decimal(0))
        entry: dict[str, str | bool] = {
            "profit_usd": str(profit),
            "margin_percent": str((profit / price * 100).quantize(Decimal("0.1"))),
            "below_cost": profit < 0,
        }
        if cost is not None:
            entry["breakeven_usd"] = str(breakeven(schedule, cost, shipping))
        out[str(market)] = entry
    return out
