"""Sharing one paid call out among the requests it served, to the exact micro-dollar.

Integer amounts are split by the largest-remainder method, so the shares always add up to
the whole: no micro-dollar and no token is lost or made up by rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from bus.messages import Usage
from cost_ledger.catalog import ModelPrice
from cost_ledger.pricing import exact_cost


def allocate(total: int, weights: Sequence[int | Decimal]) -> list[int]:
    """total split in proportion to weights; the parts add up to total exactly.

    Equal parts when every weight is zero; ties in the remainders go to the earlier part.
    """
    if not weights:
        return []
    if total < 0 or any(w < 0 for w in weights):
        raise ValueError("allocate needs a non-negative total and weights")
    whole = sum(weights, Decimal(0))
    if whole == 0:
        weights, whole = [1] * len(weights), Decimal(len(weights))
    exact = [Decimal(total) * Decimal(w) / whole for w in weights]
    parts = [int(x) for x in exact]  # floor: every x is non-negative
    leftover = total - sum(parts)
    by_remainder = sorted(range(len(parts)), key=lambda i: (-(exact[i] - parts[i]), i))
    for i in by_remainder[:leftover]:
        parts[i] += 1
    return parts


def share_usage(
    usage: Usage, input_weights: Sequence[int], output_weights: Sequence[int]
) -> list[Usage]:
    """The call's usage shared out: input by input weight (cached tokens in the same
    proportion), output by output weight. Each field adds up to the call's."""
    inputs = allocate(usage.input_tokens, input_weights)
    # Never more cached than input tokens in a share: cached <= input overall, and the largest
    # remainder only rounds up parts whose exact value is below their input share.
    cached = allocate(usage.cached_input_tokens, inputs)
    outputs = allocate(usage.output_tokens, output_weights)
    return [
        Usage(input_tokens=i, cached_input_tokens=c, output_tokens=o)
        for i, c, o in zip(inputs, cached, outputs, strict=True)
    ]


def share_cost(total_micro_usd: int, price: ModelPrice, usages: Sequence[Usage]) -> list[int]:
    """The call's cost shared out in proportion to what each share's usage would cost."""
    return allocate(total_micro_usd, [exact_cost(price, u) for u in usages])
