"""Pure cost arithmetic: tokens and catalog prices in, integer micro-dollars out.

A price is USD per 1M tokens, so tokens x price is exactly micro-dollars: no scaling is
needed, and the Decimal product is exact. It is rounded once, at the end.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal

from bus.messages import Usage
from cost_ledger.catalog import ModelPrice, PriceCatalog
from cost_ledger.errors import InvalidUsageError


def exact_cost(price: ModelPrice, usage: Usage, *, batch: bool = False) -> Decimal:
    """The unrounded cost of a usage in micro-dollars; raises InvalidUsageError."""
    _check(usage)
    uncached = usage.input_tokens - usage.cached_input_tokens
    cost = (
        uncached * price.input
        + usage.cached_input_tokens * price.cached_input
        + usage.output_tokens * price.output
    )
    if batch:
        cost *= 1 - price.batch_discount
    return cost


def cost_micro_usd(price: ModelPrice, usage: Usage, *, batch: bool = False) -> int:
    """What a call cost, in micro-dollars, rounded half up once at the end."""
    return int(exact_cost(price, usage, batch=batch).to_integral_value(ROUND_HALF_UP))


def max_cost_micro_usd(price: ModelPrice, input_tokens: int, max_output_tokens: int) -> int:
    """The most a call can cost (no cache hits, no discount, every output token), rounded up.

    This is what a budget reserves before dispatch, so it must never be below the real cost.
    """
    usage = Usage(input_tokens=input_tokens, output_tokens=max_output_tokens)
    return int(exact_cost(price, usage).to_integral_value(ROUND_CEILING))


def baseline_micro_usd(catalog: PriceCatalog, baseline_model: str, usage: Usage) -> int:
    """The naive path's cost: the same tokens on the baseline model, no prompt cache, no batch."""
    naive = Usage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)
    return cost_micro_usd(catalog.get(baseline_model), naive)


def to_usd(micro_usd: int) -> Decimal:
    """Micro-dollars as exact Decimal dollars."""
    return Decimal(micro_usd).scaleb(-6)


def _check(usage: Usage) -> None:
    counts = (usage.input_tokens, usage.cached_input_tokens, usage.output_tokens)
    if min(counts) < 0 or usage.cached_input_tokens > usage.input_tokens:
        raise InvalidUsageError(*counts)
