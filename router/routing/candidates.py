"""Candidate models for routing: a catalog price plus a provider, a latency and a quality."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cost_ledger.catalog import ModelPrice, PriceCatalog, Tier
from cost_ledger.pricing import plain_cost_micro_usd


@dataclass(frozen=True, kw_only=True)
class LatencyEstimate:
    """How long a model takes: time to the first token, then output tokens per second."""

    first_token_ms: float
    tokens_per_s: float

    def total_ms(self, output_tokens: int) -> float:
        """Estimated milliseconds for a call that writes output_tokens."""
        return self.first_token_ms + 1000.0 * output_tokens / max(self.tokens_per_s, 1e-9)


DEFAULT_LATENCY: Mapping[Tier, LatencyEstimate] = {
    # Rough public medians; provider health (EWMA of real calls) replaces them when known.
    Tier.PREMIUM: LatencyEstimate(first_token_ms=700.0, tokens_per_s=60.0),
    Tier.STANDARD: LatencyEstimate(first_token_ms=450.0, tokens_per_s=110.0),
    Tier.ECONOMY: LatencyEstimate(first_token_ms=350.0, tokens_per_s=150.0),
}
"""Latency assumed for a model with no measured latency, by catalog tier."""


@dataclass(frozen=True, kw_only=True)
class Candidate:
    """One model the router may pick, at the provider that would serve it."""

    model: str
    provider: str
    price: ModelPrice
    latency: LatencyEstimate
    quality: float
    """Prior quality estimate (0..1): the catalog's, until recorded quality replaces it."""

    @property
    def tier(self) -> Tier:
        """The catalog tier of the model."""
        return self.price.tier

    def cost_micro_usd(self, input_tokens: int, output_tokens: int) -> int:
        """Estimated cost of one call, from cost_ledger.pricing at list prices."""
        return plain_cost_micro_usd(self.price, input_tokens, output_tokens)

    def fits(self, input_tokens: int, max_output_tokens: int) -> bool:
        """Whether the prompt plus the longest answer fits the model's context window."""
        return self.price.fits(input_tokens, max_output_tokens)


def candidates_from_catalog(
    catalog: PriceCatalog,
    *,
    offered: Mapping[str, str] | None = None,
    latency: Mapping[str, LatencyEstimate] | None = None,
    only: Iterable[str] | None = None,
) -> tuple[Candidate, ...]:
    """Candidates for every catalog model (or those in only), in catalog order.

    offered maps a model to the configured provider that serves it; when given, models no
    provider offers are left out. Models the catalog marks not routable enter only by name.
    latency overrides the tier default per model.
    """
    wanted = set(only) if only is not None else None
    out: list[Candidate] = []
    for price in catalog.models():
        if wanted is not None and price.name not in wanted:
            continue
        if wanted is None and not price.routable:  # priced, but routing leaves it alone
            continue
        if offered is not None and price.name not in offered:
            continue
        provider = offered[price.name] if offered is not None else price.provider
        measured = latency.get(price.name) if latency is not None else None
        out.append(
            Candidate(
                model=price.name,
                provider=provider,
                price=price,
                latency=measured or DEFAULT_LATENCY[price.tier],
                quality=price.quality,
            )
        )
    return tuple(out)


def expected_output_tokens(max_output_tokens: int, fill: float) -> int:
    """Output tokens to expect from a cap: fill (0..1) of it, at least one."""
    return max(1, math.ceil(max_output_tokens * fill))
