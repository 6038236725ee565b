"""Per-model, per-task-type quality estimates, learned from quality signals (no I/O).

Each (model, task type) pair keeps a Beta(alpha, beta) belief about the chance that the
model's answer is good. It starts from the catalog's quality placeholder, worth
``prior_strength`` observations, and every signal adds its weight to alpha (good) or beta
(bad): a schema check and a validator count once, explicit feedback counts more, since a
person looked. The policy reads the posterior mean; ``sample`` draws from the posterior
(Thompson sampling) for a router that should keep exploring.

Forgetting: with ``discount`` below 1, each new signal on a pair first multiplies that pair's
counts by the discount, so evidence n signals old weighs discount**n and the recorded
weight never exceeds 1 / (1 - discount). A model that starts failing loses its good name
within a bounded number of its own calls (about 15 at 0.98 for a model recorded at 0.9
falling under a 0.7 floor), instead of after as many failures as it once had successes.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from cost_ledger.catalog import PriceCatalog
from router.routing.offset import shifted, task_offset

DEFAULT_PRIOR = 0.5
"""Prior mean for a model the book has no prior for."""


class SignalKind(enum.StrEnum):
    """Where a quality signal came from."""

    SCHEMA = "schema"  # the answer did or did not validate against the output schema
    VALIDATOR = "validator"  # a task-specific check passed or failed
    FEEDBACK = "feedback"  # explicit feedback, published on the feedback subject


@dataclass(frozen=True, kw_only=True)
class QualitySignal:
    """One observation of an answer's quality."""

    model: str
    task_type: str
    kind: SignalKind
    good: bool


@dataclass(frozen=True, kw_only=True)
class SignalWeights:
    """How many observations one signal of each kind is worth."""

    schema: float = 1.0
    validator: float = 1.0
    feedback: float = 3.0

    def of(self, kind: SignalKind) -> float:
        """The weight of a kind of signal."""
        return {
            SignalKind.SCHEMA: self.schema,
            SignalKind.VALIDATOR: self.validator,
            SignalKind.FEEDBACK: self.feedback,
        }[kind]


@dataclass(frozen=True, kw_only=True)
class BetaEstimate:
    """A Beta(alpha, beta) belief about a success probability."""

    alpha: float
    beta: float
    observations: float = 0.0
    """Signal weight recorded on top of the prior."""

    @property
    def mean(self) -> float:
        """The posterior mean."""
        return self.alpha / (self.alpha + self.beta)

    @property
    def n(self) -> float:
        """Signal weight recorded on top of the prior (observations)."""
        return self.observations

    @property
    def variance(self) -> float:
        """The posterior variance."""
        total = self.alpha + self.beta
        return self.alpha * self.beta / (total * total * (total + 1.0))

    def sample(self, rng: random.Random) -> float:
        """One draw from the posterior (Thompson sampling)."""
        return rng.betavariate(self.alpha, self.beta)


@dataclass
class QualityBook:
    """Quality beliefs per (model, task type), updated by signals."""

    priors: Mapping[str, float] = field(default_factory=dict)
    """Prior mean quality by model, e.g. the catalog's placeholders."""
    prior_strength: float = 10.0
    weights: SignalWeights = field(default_factory=SignalWeights)
    discount: float = 1.0
    """Factor applied to a pair's counts before each new signal on it (1: never forget)."""
    offset_sd: float = 0.0
    """Above 0: every model's prior on a task type moves by the task's shared offset learned
    from all its models' counts (router.routing.offset), with this prior spread in logits."""
    _offsets: dict[str, float] = field(default_factory=dict, init=False, repr=False)
    _counts: dict[tuple[str, str], tuple[float, float]] = field(
        default_factory=dict, init=False, repr=False
    )

    def __post_init__(self) -> None:
        if self.prior_strength <= 0:
            raise ValueError("prior_strength must be positive")
        if not all(0.0 <= q <= 1.0 for q in self.priors.values()):
            raise ValueError("prior qualities must lie in 0..1")
        if not 0.0 < self.discount <= 1.0:
            raise ValueError("discount must lie in (0, 1]")

    @classmethod
    def from_catalog(
        cls, catalog: PriceCatalog, prior_strength: float = 10.0, discount: float = 1.0
    ) -> QualityBook:
        """A book whose priors are the catalog's quality placeholders."""
        return cls(
            priors={m.name: m.quality for m in catalog.models()},
            prior_strength=prior_strength,
            discount=discount,
        )

    def record(self, signal: QualitySignal) -> BetaEstimate:
        """Add one signal; returns the updated estimate."""
        key = (signal.model, signal.task_type)
        good, bad = self._counts.get(key, (0.0, 0.0))
        good, bad = good * self.discount, bad * self.discount
        weight = self.weights.of(signal.kind)
        self._counts[key] = (good + weight, bad) if signal.good else (good, bad + weight)
        self._offsets.pop(signal.task_type, None)
        return self.estimate(signal.model, signal.task_type)

    def record_all(self, signals: Iterable[QualitySignal]) -> None:
        """Add many signals."""
        for signal in signals:
            self.record(signal)

    def estimate(self, model: str, task_type: str) -> BetaEstimate:
        """The current belief about a model on a task type."""
        prior = min(max(self.priors.get(model, DEFAULT_PRIOR), 1e-3), 1.0 - 1e-3)
        if self.offset_sd > 0:
            prior = min(max(shifted(prior, self.offset(task_type)), 1e-3), 1.0 - 1e-3)
        good, bad = self._counts.get((model, task_type), (0.0, 0.0))
        return BetaEstimate(
            alpha=prior * self.prior_strength + good,
            beta=(1.0 - prior) * self.prior_strength + bad,
            observations=good + bad,
        )

    def offset(self, task_type: str) -> float:
        """The task type's shared offset in logits (0 with offset_sd 0 or no counts)."""
        if self.offset_sd <= 0:
            return 0.0
        known = self._offsets.get(task_type)
        if known is None:
            rows = [
                (self.priors.get(model, DEFAULT_PRIOR), good, bad)
                for (model, task), (good, bad) in self._counts.items()
                if task == task_type
            ]
            known = self._offsets[task_type] = task_offset(rows, self.offset_sd)
        return known

    def estimates(self, task_type: str, models: Iterable[str]) -> dict[str, float]:
        """Posterior mean quality of each model on a task type (the policy's input)."""
        return {model: self.estimate(model, task_type).mean for model in models}

    def sample(self, task_type: str, models: Iterable[str], rng: random.Random) -> dict[str, float]:
        """One posterior draw per model (Thompson sampling), for exploring routers."""
        return {model: self.estimate(model, task_type).sample(rng) for model in models}

    def snapshot(self) -> dict[str, dict[str, list[float]]]:
        """The recorded counts as plain data: {task_type: {model: [good, bad]}}."""
        out: dict[str, dict[str, list[float]]] = {}
        for (model, task_type), (good, bad) in sorted(self._counts.items()):
            out.setdefault(task_type, {})[model] = [good, bad]
        return out

    def restore(self, snapshot: Mapping[str, Mapping[str, Iterable[float]]]) -> None:
        """Replace the recorded counts with those of a snapshot."""
        counts: dict[tuple[str, str], tuple[float, float]] = {}
        for task_type, models in snapshot.items():
            for model, pair in models.items():
                good, bad = (float(x) for x in pair)
                counts[(model, task_type)] = (good, bad)
        self._counts = counts
        self._offsets = {}
