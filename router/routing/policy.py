"""The routing policy: a pure function from a request's features to a model and a reason.

How ``choose`` decides, in order:

1. Budget pressure (0..1) lowers the complexity score by up to ``budget_shift``, so a tenant
   near its limit is served from cheaper tiers. The request's own quality floor is never
   lowered.
2. The (lowered) score gives the tier, and the tier a quality requirement; the requirement
   is the higher of that and the request's quality floor.
3. Models that cannot take the request (no vision for images, too small a context window)
   are out; none left raises NoCandidateError.
4. With a deadline, models whose estimated latency exceeds it are out; if none is fast
   enough, the fastest model is chosen and the reason says so.
5. Models below the quality requirement are out; if none is good enough, the best one is
   chosen and the reason says so.
6. Among the rest: cheapest takes the lowest estimated cost, fastest the lowest estimated
   latency, and balanced the best log-ratio blend of the two, weighting latency by priority
   (interactive most, bulk not at all) and less as budget pressure grows.

Value mode (``RoutingConfig.value_weight`` set, with per-prompt success chances from
router.routing.difficulty as the quality estimates): the tier no longer sets a requirement,
only the request's (or task type's) floor does, and steps 5 and 6 become:

5'. If no model reaches the floor, cost still counts: the pick maximises quality minus
    ``shortfall_weight`` per doubling of cost over the cheapest, so a model 28 times dearer
    must promise about 0.1 more quality to be chosen.
6'. Among models that reach it, cheapest and balanced take the best expected value,
    quality - value_weight * cost / (cost of the dearest usable model): value_weight is the
    quality one would give up to pay nothing instead of the dearest model's price (calibrated
    to a quality target, router/routing/defaults.json). Balanced also loses
    ``LATENCY_VALUE`` x its latency weight per doubling of latency over the fastest.

Ties go to the higher quality, then the model name, so the same input always gives the
same decision.
"""

from __future__ import annotations

import enum
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from bus.messages import Priority
from router.routing.candidates import Candidate, expected_output_tokens
from router.routing.config import RoutingConfig
from router.routing.errors import NoCandidateError
from router.routing.features import RequestFeatures
from router.routing.tiers import ComplexityTier

_EPS = 1e-9
LATENCY_VALUE = 0.05
"""Value mode, balanced policy: quality given up per doubling of latency at full weight."""


class Policy(enum.StrEnum):
    """What the router optimises once quality is assured."""

    CHEAPEST = "cheapest"
    FASTEST = "fastest"
    BALANCED = "balanced"


@dataclass(frozen=True, kw_only=True)
class RouteDecision:
    """The model chosen for a request, what it should cost, and why."""

    model: str
    provider: str
    estimated_cost_micro_usd: int
    """List-price cost of the prompt plus the expected output (cost_ledger.pricing)."""
    reason: str
    """One human line, recorded in the result, the ledger and the trace."""
    tier: ComplexityTier
    complexity: float
    """The complexity score after budget pressure, which gave the tier."""
    required_quality: float
    quality: float
    """The chosen model's quality estimate."""
    estimated_latency_ms: float
    best_quality: float = 0.0
    """The best quality estimate among the candidates that could take the request."""


@dataclass(frozen=True, kw_only=True)
class _Option:
    candidate: Candidate
    quality: float
    cost: int
    latency_ms: float


def choose(
    features: RequestFeatures,
    candidates: Sequence[Candidate],
    *,
    policy: Policy,
    quality_floor: float = 0.0,
    deadline_ms: float | None = None,
    priority: Priority = Priority.STANDARD,
    budget_pressure: float = 0.0,
    quality_estimates: Mapping[str, float] | None = None,
    config: RoutingConfig | None = None,
) -> RouteDecision:
    """Choose a model for a request (see the module docstring); raises NoCandidateError.

    deadline_ms is the time left before the requester's deadline (None: no deadline);
    quality_estimates map a model to its recorded quality for this task type, overriding
    the candidate's prior.
    """
    return rank(
        features,
        candidates,
        policy=policy,
        quality_floor=quality_floor,
        deadline_ms=deadline_ms,
        priority=priority,
        budget_pressure=budget_pressure,
        quality_estimates=quality_estimates,
        config=config,
        count=1,
    )[0]


def rank(
    features: RequestFeatures,
    candidates: Sequence[Candidate],
    *,
    policy: Policy,
    quality_floor: float = 0.0,
    deadline_ms: float | None = None,
    priority: Priority = Priority.STANDARD,
    budget_pressure: float = 0.0,
    quality_estimates: Mapping[str, float] | None = None,
    config: RoutingConfig | None = None,
    count: int = 3,
) -> list[RouteDecision]:
    """Up to count decisions, best first: choose's pick, then what choose would pick with
    the earlier picks removed (the fallback chain). Prices every candidate once; raises
    NoCandidateError when no candidate can take the request."""
    config = config or RoutingConfig()
    pressure = min(max(budget_pressure, 0.0), 1.0)
    score = max(features.complexity - pressure * config.budget_shift, 0.0)
    tier = config.tiering.classify(score, features.task_type)
    value_mode = config.value_weight is not None
    required = quality_floor if value_mode else max(quality_floor, config.tier_quality.of(tier))
    head = f"{tier} ({features.complexity:.2f}) on {features.task_type}"
    if score < features.complexity:
        head += f", lowered to {score:.2f} by budget pressure {pressure:.2f}"

    output_tokens = expected_output_tokens(features.max_output_tokens, config.output_fill)
    estimates = quality_estimates or {}
    options = [
        _Option(
            candidate=c,
            quality=estimates.get(c.model, c.quality),
            cost=c.cost_micro_usd(features.input_tokens_on(c.price.image_rule), output_tokens),
            latency_ms=c.latency.total_ms(output_tokens),
        )
        for c in candidates
    ]
    remaining = _usable(features, options)
    best = max((o.quality for o in remaining), default=0.0)

    def decide(option: _Option, why: str) -> RouteDecision:
        return RouteDecision(
            model=option.candidate.model,
            provider=option.candidate.provider,
            estimated_cost_micro_usd=option.cost,
            reason=f"{head}: {why}",
            tier=tier,
            complexity=score,
            required_quality=required,
            quality=option.quality,
            estimated_latency_ms=option.latency_ms,
            best_quality=best,
        )

    floor = f"quality >= {required:.2f}"
    if value_mode:
        floor = f"predicted quality >= {required:.2f}"
    elif quality_floor > config.tier_quality.of(tier):
        floor += " (the request's floor)"
    weight = config.latency_weight.get(priority, 0.0) * (1.0 - pressure)
    if value_mode:
        picks = _ranked_by_value(
            remaining,
            lambda left: _value_order(left, policy, required, floor, deadline_ms, weight, config),
            lambda left: _pick(left, policy, required, floor, deadline_ms, weight),
            count,
        )
        return [decide(pick, why) for pick, why in picks]
    out: list[RouteDecision] = []
    while remaining and len(out) < count:
        pick, why = _pick(remaining, policy, required, floor, deadline_ms, weight)
        out.append(decide(pick, why))
        remaining = [o for o in remaining if o is not pick]
    return out


def _pick(
    usable: list[_Option],
    policy: Policy,
    required: float,
    floor: str,
    deadline_ms: float | None,
    weight: float,
) -> tuple[_Option, str]:
    """The best usable option under the policy, and why (steps 4 to 6 of the docstring)."""
    timely = usable
    if deadline_ms is not None:
        timely = [o for o in usable if o.latency_ms <= deadline_ms]
        if not timely:
            fastest = min(usable, key=_by(lambda o: o.latency_ms))
            return fastest, (
                f"no candidate meets the {deadline_ms:.0f} ms deadline; "
                f"{fastest.candidate.model} is the fastest (est. {fastest.latency_ms:.0f} ms)"
            )
    good = [o for o in timely if o.quality >= required - _EPS]
    if not good:
        best = min(timely, key=lambda o: (-o.quality, o.cost, o.candidate.model))
        return best, (
            f"no candidate reaches quality {required:.2f}; "
            f"{best.candidate.model} is the best ({best.quality:.2f})"
        )
    if policy is Policy.CHEAPEST:
        pick = min(good, key=_by(lambda o: o.cost))
        return pick, f"{pick.candidate.model} is the cheapest with {floor}"
    if policy is Policy.FASTEST:
        pick = min(good, key=_by(lambda o: o.latency_ms))
        return pick, (
            f"{pick.candidate.model} is the fastest with {floor} (est. {pick.latency_ms:.0f} ms)"
        )
    pick = _balanced(good, weight)
    return pick, (
        f"{pick.candidate.model} balances cost and latency "
        f"(latency weight {weight:.2f}) with {floor}"
    )


@dataclass(frozen=True)
class _ValueOrder:
    """How value mode orders the options it may pick from (good ones, else timely ones), and
    everything that order depends on besides each option itself (norms): while the norms
    stay the same, removing the best leaves the others in the same order."""

    options: list[_Option]
    shortfall: bool
    norms: tuple[float, ...]
    key: Callable[[_Option], tuple[float, float, tuple[int, ...]]]
    required: float
    floor: str
    weight: float

    def ranked(self) -> list[_Option]:
        """The options, best first (stable: equal keys keep their order, as max() would)."""
        return sorted(self.options, key=self.key, reverse=True)

    def why(self, pick: _Option) -> str:
        """Why pick is the choice."""
        model = pick.candidate.model
        if self.shortfall:
            return (
                f"no candidate is predicted to reach {self.required:.2f}; {model} "
                f"({pick.quality:.2f}) is the best value at {self.weight:.2f} quality per "
                "doubling of cost"
            )
        return (
            f"{model} has the best expected value (predicted quality {pick.quality:.2f}, "
            f"value weight {self.weight:.3f}) with {self.floor}"
        )


def _value_order(
    usable: list[_Option],
    policy: Policy,
    required: float,
    floor: str,
    deadline_ms: float | None,
    latency_weight: float,
    config: RoutingConfig,
) -> _ValueOrder | None:
    """Value mode's order over usable; None where the plain rules pick instead (the fastest
    policy, or no option meets the deadline: step 4)."""
    if policy is Policy.FASTEST:
        return None
    timely = usable
    if deadline_ms is not None:
        timely = [o for o in usable if o.latency_ms <= deadline_ms]
        if not timely:
            return None
    least_cost = min(o.cost for o in timely)
    good = [o for o in timely if o.quality >= required - _EPS]
    if not good:
        shortfall = config.shortfall_weight

        def short(o: _Option) -> tuple[float, float, tuple[int, ...]]:
            value = o.quality - shortfall * math.log2((o.cost + 1) / (least_cost + 1))
            return round(value, 12), o.quality, _neg(o.candidate.model)

        norms: tuple[float, ...] = (1.0, float(least_cost))
        return _ValueOrder(timely, True, norms, short, required, floor, shortfall)
    top_cost = max(o.cost for o in timely) or 1
    lam = config.value_weight or 0.0
    least_latency = min(o.latency_ms for o in good)
    lat = latency_weight * LATENCY_VALUE if policy is Policy.BALANCED else 0.0

    def value(o: _Option) -> tuple[float, float, tuple[int, ...]]:
        slower = math.log2(max(o.latency_ms, _EPS) / max(least_latency, _EPS))
        worth = o.quality - lam * o.cost / top_cost - lat * slower
        return round(worth, 12), o.quality, _neg(o.candidate.model)

    norms = (0.0, float(top_cost), least_latency)
    return _ValueOrder(good, False, norms, value, required, floor, lam)


def _ranked_by_value(
    usable: list[_Option],
    order_of: Callable[[list[_Option]], _ValueOrder | None],
    plain: Callable[[list[_Option]], tuple[_Option, str]],
    count: int,
) -> list[tuple[_Option, str]]:
    """Up to count value-mode picks (steps 5' and 6' of the module docstring), each the best
    of _value_order among what the earlier picks left; the remaining options are sorted once
    and re-sorted only when a pick changed the norms their order depends on (a full scan per
    pick over every candidate, ranking them all, was up to 12% of the router's CPU)."""
    out: list[tuple[_Option, str]] = []
    remaining = usable
    ranked: list[_Option] = []
    norms: tuple[float, ...] | None = None
    while remaining and len(out) < count:
        order = order_of(remaining)
        if order is None:  # the plain rules pick (step 4, or the fastest policy)
            pick, why = plain(remaining)
            norms = None
        else:
            if order.norms != norms or not ranked:
                ranked, norms = order.ranked(), order.norms
            pick = ranked.pop(0)
            why = order.why(pick)
        out.append((pick, why))
        remaining = [o for o in remaining if o is not pick]
        ranked = [o for o in ranked if o is not pick]
    return out


@functools.lru_cache(maxsize=1024)  # the catalog's few names, keyed for every pick
def _neg(name: str) -> tuple[int, ...]:
    """A key that orders names in reverse, so max() breaks ties toward the first name."""
    return tuple(-ord(ch) for ch in name)


def _usable(features: RequestFeatures, options: list[_Option]) -> list[_Option]:
    rejected: dict[str, str] = {}
    usable: list[_Option] = []
    for option in options:
        candidate = option.candidate
        if features.needs_vision and not candidate.price.vision:
            rejected[candidate.model] = "no image input"
        elif not candidate.fits(features.input_tokens, features.max_output_tokens):
            rejected[candidate.model] = (
                f"{features.input_tokens}+{features.max_output_tokens} tokens exceed "
                f"its {candidate.price.context_window} context window"
            )
        else:
            usable.append(option)
    if not usable:
        raise NoCandidateError(features.task_type, rejected)
    return usable


def _by(metric: Callable[[_Option], float]) -> Callable[[_Option], tuple[float, float, str]]:
    return lambda o: (metric(o), -o.quality, o.candidate.model)


def _balanced(options: list[_Option], latency_weight: float) -> _Option:
    # Ratios to the best option on each axis, on a log scale: 2x dearer weighs like 2x slower.
    least_cost = min(o.cost for o in options)
    least_latency = min(o.latency_ms for o in options)

    def objective(o: _Option) -> float:
        cost = math.log((o.cost + 1) / (least_cost + 1))
        latency = math.log(max(o.latency_ms, _EPS) / max(least_latency, _EPS))
        return (1.0 - latency_weight) * cost + latency_weight * latency

    return min(
        options, key=lambda o: (round(objective(o), 12), o.cost, -o.quality, o.candidate.model)
    )
