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


def allocate_within(total: int, weights: Sequence[int | Decimal], caps: Sequence[int]) -> list[int]:
    """total split in proportion to weights, no part above its cap while the caps hold total.

    A part that would pass its cap gets the cap, and the rest goes to the others in
    proportion; what passes every cap is still split (in proportion to weights), never lost.
    """
    if len(caps) != len(weights):
        raise ValueError("allocate_within needs one cap per weight")
    parts = [0] * len(weights)
    open_ = list(range(len(weights)))
    left = total
    while left > 0 and open_:
        trial = allocate(left, [weights[i] for i in open_])
        over = [i for i, part in zip(open_, trial, strict=True) if parts[i] + part > caps[i]]
        if not over:
            for i, part in zip(open_, trial, strict=True):
                parts[i] += part
            return parts
        for i in over:  # capped: the next round shares out what it could not take
            left -= max(caps[i] - parts[i], 0)
            parts[i] = max(caps[i], parts[i])
        open_ = [i for i in open_ if i not in over]
    if left > 0:
        parts = [p + extra for p, extra in zip(parts, allocate(left, weights), strict=True)]
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


def share_cost(
    total_micro_usd: int,
    price: ModelPrice,
    usages: Sequence[Usage],
    caps: Sequence[int | None] = (),
) -> list[int]:
    """The call's cost shared out in proportion to what each share's usage would cost; with
    caps (what each request reserved), no share past its cap while the caps hold the total."""
    weights = [exact_cost(price, u) for u in usages]
    held = [c for c in caps if c is not None]
    if not caps or len(held) != len(caps):
        return allocate(total_micro_usd, weights)
    return allocate_within(total_micro_usd, weights, held)
