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
    written = usage.cache_write_input_tokens
    uncached = usage.input_tokens - usage.cached_input_tokens - written
    cost = (
        uncached * price.input
        + usage.cached_input_tokens * price.cached_input
        + written * price.cache_write_price
        + usage.output_tokens * price.output
    )
    if batch:
        cost *= 1 - price.batch_discount
    return cost


def cost_micro_usd(price: ModelPrice, usage: Usage, *, batch: bool = False) -> int:
    """What a call cost, in micro-dollars, rounded half up once at the end."""
    return int(exact_cost(price, usage, batch=batch).to_integral_value(ROUND_HALF_UP))


def plain_cost_micro_usd(price: ModelPrice, input_tokens: int, output_tokens: int) -> int:
    """cost_micro_usd of a usage with no cached or cache-written tokens, without building a
    Usage (routing prices every candidate of every request this way); raises
    InvalidUsageError on a negative count."""
    if input_tokens < 0 or output_tokens < 0:
        raise InvalidUsageError(input_tokens, 0, output_tokens)
    cost = input_tokens * price.input + output_tokens * price.output
    return int(cost.to_integral_value(ROUND_HALF_UP))


def max_cost_micro_usd(price: ModelPrice, input_tokens: int, max_output_tokens: int) -> int:
    """The most a call can cost, rounded up: no cache hits, no discount, every input token at
    the dearer of input and cache-write prices, every output token plus the model's reasoning
    budget. This is what a budget reserves before dispatch: never below the real cost."""
    output = max_output_tokens + price.reasoning_budget
    input_price = max(price.input, price.cache_write_price)
    cost = input_tokens * input_price + output * price.output
    return int(cost.to_integral_value(ROUND_CEILING))


def baseline_micro_usd(catalog: PriceCatalog, baseline_model: str, usage: Usage) -> int:
    """The naive path's cost: the same tokens on the baseline model, no prompt cache, no batch."""
    naive = Usage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)
    return cost_micro_usd(catalog.get(baseline_model), naive)


def to_usd(micro_usd: int) -> Decimal:
    """Micro-dollars as exact Decimal dollars."""
    return Decimal(micro_usd).scaleb(-6)


def _check(usage: Usage) -> None:
    counts = (usage.input_tokens, usage.cached_input_tokens, usage.output_tokens)
    cached = usage.cached_input_tokens + usage.cache_write_input_tokens
    if min(*counts, usage.cache_write_input_tokens) < 0 or cached > usage.input_tokens:
        raise InvalidUsageError(*counts)
