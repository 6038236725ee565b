"""Downgrade under budget pressure, pure: the cheapest usable model of the next lower tier."""

from __future__ import annotations

from collections.abc import Callable

from cost_ledger.catalog import ModelPrice, PriceCatalog, Tier
from cost_ledger.pricing import max_cost_micro_usd

TIER_RANK = {Tier.ECONOMY: 0, Tier.STANDARD: 1, Tier.PREMIUM: 2}


def downgrade_choice(
    catalog: PriceCatalog,
    current: str,
    *,
    input_tokens: int,
    max_output_tokens: int,
    offered: Callable[[str], bool],
    needs_vision: bool = False,
    quality_floor: float = 0.0,
) -> ModelPrice | None:
    """The cheapest usable model of the next lower tier that has one, or None.

    Usable: a configured provider offers it, it sees images if the request has some, its
    quality estimate is at or above the floor, and the request fits its context window.
    Cheapest by this request's maximum cost; ties go to the name, to stay deterministic.
    """
    rank = TIER_RANK[catalog.get(current).tier]
    for lower in sorted((r for r in TIER_RANK.values() if r < rank), reverse=True):
        usable = [
            m
            for m in catalog.models()
            if TIER_RANK[m.tier] == lower
            and m.routable
            and offered(m.name)
            and (m.vision or not needs_vision)
            and m.quality >= quality_floor
            and m.context_window >= input_tokens + max_output_tokens
        ]
        if usable:
            return min(
                usable,
                key=lambda m: (max_cost_micro_usd(m, input_tokens, max_output_tokens), m.name),
            )
    return None
