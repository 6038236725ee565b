"""Shipping estimates from weight and size: a rate table, no model.

The table is FlipSync's own indicative domestic parcel rates (USD, by billable weight), not
a carrier's quote: it is there to compare options and to price margins, and a deployment
replaces it with its carrier's table.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from typing import Any

CENT = Decimal("0.01")
PACKING_G = Decimal(150)
"""Box and padding added to an item's weight."""
DIM_DIVISOR = Decimal(5000)
"""Dimensional weight in kg is length x width x height in cm divided by this."""
PADDING_CM = Decimal(4)
"""Added to each side of the item for the box."""
DIM_FROM_CM3 = Decimal(28317)
"""Dimensional weight applies only to a box over one cubic foot, as USPS prices domestic
parcels: a mug in a small box pays for its weight, not for air."""
RATES: tuple[tuple[int, Decimal], ...] = (
    (250, Decimal("4.75")),
    (500, Decimal("5.95")),
    (1000, Decimal("8.40")),
    (2000, Decimal("11.90")),
    (5000, Decimal("17.80")),
    (10000, Decimal("27.50")),
    (20000, Decimal("44.00")),
)
"""Economy rate by billable weight in grams, up to and including each limit."""
SERVICES: tuple[tuple[str, Decimal, str], ...] = (
    ("economy", Decimal("1.00"), "5-8 business days"),
    ("standard", Decimal("1.35"), "2-5 business days"),
    ("express", Decimal("2.40"), "1-2 business days"),
)


def billable_grams(weight_g: Decimal, dims_cm: list[Decimal] | None) -> Decimal:
    """The packed weight, or the packed box's dimensional weight when that is greater and the
    box is over one cubic foot (DIM_FROM_CM3)."""
    packed = weight_g + PACKING_G
    if not dims_cm:
        return packed.to_integral_value(ROUND_CEILING)
    sides = [side + PADDING_CM for side in (dims_cm + [Decimal(5)] * 3)[:3]]
    volume = sides[0] * sides[1] * sides[2]
    if volume <= DIM_FROM_CM3:
        return packed.to_integral_value(ROUND_CEILING)
    volumetric = volume / DIM_DIVISOR * 1000
    return max(packed, volumetric).to_integral_value(ROUND_CEILING)


def estimate(weight_g: Decimal, dims_cm: list[Decimal] | None) -> dict[str, Any]:
    """Shipping options for a parcel; recommended is the standard service."""
    grams = billable_grams(weight_g, dims_cm)
    base = next((rate for limit, rate in RATES if grams <= limit), None)
    if base is None:
        return {"billable_weight_g": str(grams), "options": [], "recommended": None,
                "note": f"over {RATES[-1][0]} g: freight, ask a carrier for a quote"}  # fmt: skip
    options = [
        {"service": name, "price_usd": str((base * factor).quantize(CENT, ROUND_HALF_UP)),
         "days": days}
        for name, factor, days in SERVICES
    ]  # fmt: skip
    return {
        "billable_weight_g": str(grams),
        "options": options,
        "recommended": options[1],
        "note": "indicative domestic rates (FlipSync table), not a carrier quote",
    }
