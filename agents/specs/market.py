"""Market-research agents: comparable items, demand, trend and seasonality.

They answer from the model's knowledge of the market (task type market_data, which the
router caches for a short time only: markets move).
"""

from __future__ import annotations

from typing import Any

from agents.marketplaces import GRADES
from agents.spec import UPLOAD, AgentSpec, Family
from agents.specs.schema import array, boolean, choice, integer, money, number, obj, text
from agents.validators import item_count
from bus.messages import TaskType

_VALIDATORS = {"comparables": (item_count("comparables", low=3, high=6),)}
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")


def researcher(
    name: str, instructions: str, schema: dict[str, Any], optional: tuple[str, ...] = ()
) -> AgentSpec:
    """An optional market-research agent working from the identified product."""
    return AgentSpec(
        name=name,
        family=Family.MARKET,
        consumes=(UPLOAD, "identify", "category"),
        optional=optional,
        task_type=TaskType.MARKET_DATA,
        required=False,
        upload_fields=("title_hint",),
        instructions=instructions,
        output_schema=schema,
        max_output_tokens=450,
        validators=_VALIDATORS.get(name, ()),
    )


COMPARABLES = researcher(
    "comparables",
    "List 3-6 comparable items recently listed or sold on the marketplaces: a title, "
    "marketplace, condition, price in USD and whether it sold; then a one-line summary.",
    obj(
        comparables=array(
            obj(
                title=text(120),
                marketplace=choice("ebay", "amazon", "etsy", "shopify"),
                condition=choice(*GRADES),
                price_usd=money(),
                sold=boolean(),
            ),
            3,
            6,
        ),
        summary=text(300),
    ),
)

DEMAND = researcher(
    "demand",
    "Judge buyer demand for this product: low, medium or high, the typical days to sell at "
    "a fair price, who buys it, and why.",
    obj(
        level=choice("low", "medium", "high"),
        days_to_sell=integer(1, 365),
        buyers=array(text(60), 1, 4),
        rationale=text(300),
    ),
    optional=("comparables",),
)

TREND = researcher(
    "trend",
    "Say whether interest in this kind of product is rising, stable or declining, how "
    "strongly, and what drives it.",
    obj(
        direction=choice("rising", "stable", "declining"),
        strength=number(0, 1),
        drivers=array(text(80), 1, 4),
        rationale=text(300),
    ),
)

SEASONALITY = researcher(
    "seasonality",
    "Give the months when this product sells best (none if it sells evenly), the best "
    "month to list it, and why.",
    obj(
        peak_months=array(choice(*MONTHS), 0, 6, unique=True),
        best_month_to_list=choice(*MONTHS),
        rationale=text(300),
    ),
)

SPECS = (COMPARABLES, DEMAND, TREND, SEASONALITY)
"""The market-research family."""
