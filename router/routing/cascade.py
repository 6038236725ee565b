"""The cascade, as pure data: cheap model first, validate, escalate a tier only on failure.

It applies to task types with a checkable output (a JSON schema, plus any validators) that
configuration lists. The ladder holds one rung per catalog tier, economy to premium: in
each tier the cheapest model that takes the request and meets the request's own quality
floor. The tier's quality requirement is not applied, since validation catches a weak
answer. A cascade is worth running only when its expected cost (every rung's cost times
the chance of reaching it) is below the cost of going straight to the top rung.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cost_ledger.catalog import Tier
from router.routing.candidates import Candidate, expected_output_tokens
from router.routing.features import RequestFeatures

TIER_ORDER = (Tier.ECONOMY, Tier.STANDARD, Tier.PREMIUM)


@dataclass(frozen=True, kw_only=True)
class Rung:
    """One step of the ladder."""

    model: str
    provider: str
    tier: Tier
    estimated_cost_micro_usd: int
    pass_rate: float
    """Estimated chance (0..1) that this model's answer validates."""


@dataclass(frozen=True, kw_only=True)
class Ladder:
    """The rungs a cascade climbs, cheapest first."""

    task_type: str
    rungs: tuple[Rung, ...]

    def expected_cost_micro_usd(self) -> int:
        """Expected cost of climbing until an answer validates (every rung pays if reached)."""
        total = 0.0
        reach = 1.0
        for rung in self.rungs:
            total += reach * rung.estimated_cost_micro_usd
            reach *= 1.0 - rung.pass_rate
        return round(total)

    def worth_it(self) -> bool:
        """Whether the cascade is expected to cost less than the top rung alone."""
        if len(self.rungs) < 2:
            return False
        return self.expected_cost_micro_usd() < self.rungs[-1].estimated_cost_micro_usd

    def first(self) -> Rung:
        """The rung to try first."""
        return self.rungs[0]

    def after(self, model: str) -> Rung | None:
        """The rung above the one that served model, or None at the top (or off the ladder)."""
        for index, rung in enumerate(self.rungs[:-1]):
            if rung.model == model:
                return self.rungs[index + 1]
        return None


@dataclass(frozen=True, kw_only=True)
class Escalation:
    """A failed answer and the rung tried next; recorded with the ESCALATED lever."""

    from_model: str
    to_model: str
    to_provider: str
    reason: str


def applies(features: RequestFeatures, cascade_task_types: frozenset[str]) -> bool:
    """Whether a request may cascade: its task type is listed and its output is checkable."""
    return features.has_schema and features.task_type in cascade_task_types


def build_ladder(
    features: RequestFeatures,
    candidates: Sequence[Candidate],
    *,
    quality_floor: float = 0.0,
    pass_rates: Mapping[str, float] | None = None,
    output_fill: float = 0.5,
) -> Ladder:
    """One rung per tier: the cheapest model that takes the request and meets the floor.

    pass_rates map a model to its recorded validation pass rate for this task type; without
    one, the candidate's quality estimate stands in.
    """
    rates = pass_rates or {}
    output_tokens = expected_output_tokens(features.max_output_tokens, output_fill)
    rungs: list[Rung] = []
    for tier in TIER_ORDER:
        options = [
            Rung(
                model=c.model,
                provider=c.provider,
                tier=tier,
                estimated_cost_micro_usd=c.cost_micro_usd(
                    features.input_tokens_on(c.price.image_rule), output_tokens
                ),
                pass_rate=rates.get(c.model, c.quality),
            )
            for c in candidates
            if c.tier is tier
            and (c.price.vision or not features.needs_vision)
            and c.fits(features.input_tokens, features.max_output_tokens)
            and rates.get(c.model, c.quality) >= quality_floor
        ]
        if options:
            rungs.append(
                min(options, key=lambda r: (r.estimated_cost_micro_usd, -r.pass_rate, r.model))
            )
    return Ladder(task_type=features.task_type, rungs=tuple(rungs))


def escalate(ladder: Ladder, failed_model: str, problem: str) -> Escalation | None:
    """The next rung after a failed validation, with the reason; None when none is left."""
    nxt = ladder.after(failed_model)
    if nxt is None:
        return None
    return Escalation(
        from_model=failed_model,
        to_model=nxt.model,
        to_provider=nxt.provider,
        reason=f"escalated from {failed_model} to {nxt.model} ({nxt.tier}): {problem}",
    )
