"""The routing policy in the loop of bench/routing: calibrate on train, then choose() per prompt.

Per task type (gsm8k, mmlu), the complexity threshold is the one at which the out-of-fold
train scores keep 95% of the strong model's train accuracy with the fewest strong calls;
it becomes both tier boundaries of that task type (a two-model ladder has no moderate
tier). Quality estimates come from a QualityBook fed one validator signal per train prompt
and model. Then choose() decides each test prompt with the cheapest policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import MappingProxyType

from bench.routing_curve import QUALITY_TARGET, Case, fewest_strong_calls, threshold_for
from bus.messages import ChatMessage, LlmRequest
from cost_ledger.catalog import PriceCatalog
from router.routing.candidates import candidates_from_catalog
from router.routing.config import RoutingConfig
from router.routing.features import extract
from router.routing.policy import Policy, choose
from router.routing.quality import QualityBook, QualitySignal, SignalKind
from router.routing.tiers import Tiering, TierThresholds
from router.routing.training import Example


def train_thresholds(
    train: Sequence[Example], complexities: Sequence[float], datasets: Sequence[str]
) -> dict[str, float]:
    """Per dataset, the complexity threshold that keeps 95% of strong accuracy on train."""
    out: dict[str, float] = {}
    for ds in datasets:
        idx = [i for i, e in enumerate(train) if e.dataset == ds]
        cases = [
            Case(dataset=ds, weak_ok=train[i].weak_ok, strong_ok=train[i].strong_ok,
                 weak_cost=0, strong_cost=0)
            for i in idx
        ]  # fmt: skip
        scores = [complexities[i] for i in idx]
        target = QUALITY_TARGET * sum(c.strong_ok for c in cases) / len(cases)
        k = fewest_strong_calls(cases, scores, target)
        out[ds] = min(threshold_for(scores, k), 1.0)
    return out


def train_book(
    train: Sequence[Example], catalog: PriceCatalog, strong: str, weak: str
) -> QualityBook:
    """Quality beliefs from the train split: one validator signal per prompt and model."""
    book = QualityBook.from_catalog(catalog)
    for e in train:
        for model, good in ((strong, e.strong_ok), (weak, e.weak_ok)):
            book.record(
                QualitySignal(
                    model=model, task_type=e.dataset, kind=SignalKind.VALIDATOR, good=good
                )
            )
    return book


def policy_strong(
    test: Sequence[Example],
    complexities: Sequence[float],
    thresholds: dict[str, float],
    book: QualityBook,
    catalog: PriceCatalog,
    strong: str,
    weak: str,
) -> list[bool]:
    """For each test prompt, whether choose() sends it to the strong model."""
    candidates = candidates_from_catalog(catalog, only=(strong, weak))
    config = RoutingConfig(
        tiering=Tiering(
            by_task=MappingProxyType(
                {ds: TierThresholds(simple_below=t, complex_from=t) for ds, t in thresholds.items()}
            )
        )
    )
    out: list[bool] = []
    for e, complexity in zip(test, complexities, strict=True):
        request = LlmRequest(
            id="bench",
            tenant="bench",
            agent="bench",
            task_type=e.dataset,
            messages=[ChatMessage(role="user", content=e.prompt)],
        )
        decision = choose(
            extract(request, complexity=complexity),
            candidates,
            policy=Policy.CHEAPEST,
            quality_estimates=book.estimates(e.dataset, (strong, weak)),
            config=config,
        )
        out.append(decision.model == strong)
    return out
