"""bench/routing: the learned router's cost/quality curve on the RouteLLM test split.

Data: ../shared/data/routellm (lm-sys/RouteLLM @0b64fdaf, routellm/evals/, Apache-2.0):
per-prompt correctness of gpt-4-1106-preview (strong) and Mixtral-8x7B (weak) on GSM8K and
MMLU. The train/test split is router.routing.training's (BLAKE2b of the prompt, ~20% test).
The router is trained on the train split only, exactly as the shipped weights are.

Prices: the strong model is priced as gpt-4o and the weak one as gpt-4o-mini, from the
catalog. Tokens come from router.tokens: the prompt as one user message in, the logged
response out (GSM8K); MMLU has no logged responses and its answer is one letter, so one
output token.

Strategies: always-strong; always-weak; the router with its complexity threshold set for 20%
to 70% strong calls, each beside random routing at the same strong-call share; the fewest
strong calls that keep 95% of the strong model's accuracy, for the router (ranked by expected
gain, and by expected gain per estimated dollar), random routing, the hand-set heuristic cues
and, as a ceiling, an oracle; and the routing policy itself (router.routing.policy.choose
with bandit quality estimates and per-task thresholds calibrated on out-of-fold train
scores, so the only strategy whose threshold never saw the test split). The 95% points of
router, random and heuristic are picked on the test split, as RouteLLM's CPT figures are.

Run: `.venv/bin/python -m bench.routing` (about 30 s).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.report import write
from bench.routing_costs import DATASETS, STRONG_MODEL, WEAK_MODEL, cases_of, per_dollar
from bench.routing_curve import (
    QUALITY_TARGET,
    Case,
    Point,
    apgr,
    by_threshold,
    fewest_strong_calls,
    random_at,
    random_strong_calls,
    routed,
    threshold_for,
)
from bench.routing_policy import policy_strong, train_book, train_thresholds
from bus.messages import ChatMessage, LlmRequest
from cost_ledger.catalog import PriceCatalog
from cost_ledger.pricing import to_usd
from router.routing.features import extract, heuristic_complexity
from router.routing.learned import PromptRouter
from router.routing.training import Example, fit_with_oof, load_routellm, split

OPERATING_SHARES = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
"""Strong-call shares at which the router's threshold is set, for the curve."""


@dataclass(frozen=True, kw_only=True)
class Scores:
    """Per test prompt, what each strategy ranks by (higher: strong sooner)."""

    learned: list[float]
    """The learned router's complexity (rank of its expected gain)."""
    per_dollar: list[float]
    """The learned router's expected gain per estimated micro-dollar of going strong."""
    heuristic: list[float]
    """Hand-set complexity from content cues (router.routing.features)."""
    policy: list[bool]
    """Whether choose() sends the prompt to the strong model."""

    def subset(self, idx: Sequence[int]) -> Scores:
        """The scores of some prompts."""
        return Scores(
            learned=[self.learned[i] for i in idx],
            per_dollar=[self.per_dollar[i] for i in idx],
            heuristic=[self.heuristic[i] for i in idx],
            policy=[self.policy[i] for i in idx],
        )


def evaluate(cases: Sequence[Case], scores: Scores) -> dict[str, Any]:
    """Every strategy's figures on one set of test prompts."""
    n = len(cases)
    full = routed(f"always-strong ({STRONG_MODEL})", cases, [True] * n)
    points: list[Point] = [full, routed(f"always-weak ({WEAK_MODEL})", cases, [False] * n)]
    for share in OPERATING_SHARES:
        t = threshold_for(scores.learned, round(share * n))
        mine = routed(f"router (complexity >= {t:.3f})", cases, by_threshold(scores.learned, t))
        calls = round(mine.strong_share * n)
        points += [mine, random_at(f"random ({calls} strong calls)", cases, calls)]
    target = QUALITY_TARGET * full.accuracy
    at_target = {
        "router": _fewest("router", cases, scores.learned, target),
        "router_cost_aware": _fewest("router, gain per dollar,", cases, scores.per_dollar, target),
        "random": random_at("random at 95% quality", cases, random_strong_calls(cases, target)),
        "heuristic": _fewest("heuristic cues", cases, scores.heuristic, target),
    }
    oracle = [c.strong_ok and not c.weak_ok for c in cases]
    points += [
        *at_target.values(),
        routed("oracle (strong only where it alone is right)", cases, oracle),
        routed("policy.choose (train-calibrated thresholds)", cases, scores.policy),
    ]
    at95 = {
        name: {
            "strong_share": round(p.strong_share, 4),
            "accuracy": round(p.accuracy, 4),
            "cost_saving_vs_strong": round(1 - p.cost / full.cost, 4),
        }
        for name, p in at_target.items()
    }
    return {
        "test_prompts": n,
        "strategies": [p.as_dict(full.cost) for p in points],
        "quality_target": round(target, 4),
        "at_95_percent_quality": at95,
        "apgr": {
            "router": round(apgr(cases, scores.learned), 4),
            "heuristic": round(apgr(cases, scores.heuristic), 4),
            "random": 0.5,
        },
    }


def _fewest(name: str, cases: Sequence[Case], scores: Sequence[float], target: float) -> Point:
    k = fewest_strong_calls(cases, scores, target)
    strong = by_threshold(scores, threshold_for(scores, k))
    return routed(f"{name} at 95% quality", cases, strong)


def print_table(title: str, figures: dict[str, Any]) -> None:
    """The strategies as a text table."""
    print(f"\n{title} ({figures['test_prompts']} test prompts)")
    print(f"{'strategy':<46} {'accuracy':>8} {'cost $':>9} {'vs strong':>9} {'strong':>7}")
    for s in figures["strategies"]:
        usd = to_usd(s["cost"]).quantize(to_usd(1000))
        print(
            f"{s['name']:<46} {s['accuracy']:>8.4f} {usd!s:>9} "
            f"{s['cost_vs_strong']:>9.3f} {s['strong_share']:>7.3f}"
        )
    at95 = figures["at_95_percent_quality"]
    print(
        f"95% of strong accuracy ({figures['quality_target']:.4f}): "
        + ", ".join(
            f"{name} {p['strong_share']:.1%} strong, {p['cost_saving_vs_strong']:.1%} saved"
            for name, p in at95.items()
        )
    )
    print(f"APGR: router {figures['apgr']['router']:.3f}, heuristic "
          f"{figures['apgr']['heuristic']:.3f}, random 0.500")  # fmt: skip


def main() -> None:
    """Train, evaluate on the test split, write bench/results/routing.json, print tables."""
    started = time.perf_counter()
    catalog = PriceCatalog.load()
    train, test = split(load_routellm())
    fresh, oof_gains = fit_with_oof(train)
    router = PromptRouter.from_dict(fresh.to_dict())  # exactly what the shipped file holds
    try:
        shipped = PromptRouter.load().to_dict() == fresh.to_dict()
    except (OSError, ValueError):
        shipped = False
    judged = [router.score(e.prompt) for e in test]
    learned = [j.complexity for j in judged]
    cases = cases_of(test, catalog)
    thresholds = train_thresholds(train, [router.rank(g) for g in oof_gains], DATASETS)
    book = train_book(train, catalog, STRONG_MODEL, WEAK_MODEL)
    scores = Scores(
        learned=learned,
        per_dollar=per_dollar(train, test, judged, catalog),
        heuristic=[heuristic_complexity(extract(_request(e))) for e in test],
        policy=policy_strong(test, learned, thresholds, book, catalog, STRONG_MODEL, WEAK_MODEL),
    )
    figures = evaluate(cases, scores)
    per_dataset = {}
    for ds in DATASETS:
        idx = [i for i, c in enumerate(cases) if c.dataset == ds]
        per_dataset[ds] = evaluate([cases[i] for i in idx], scores.subset(idx))
    result = {
        **figures,
        "train_prompts": len(train),
        "cost_unit": "micro_usd, summed over the test prompts",
        "mapping": {
            "strong": f"gpt-4-1106-preview priced as {STRONG_MODEL}",
            "weak": f"Mixtral-8x7B-Instruct priced as {WEAK_MODEL}",
            "catalog": catalog.version,
        },
        "policy_thresholds": thresholds,
        "shipped_router_matches": shipped,
        "datasets": per_dataset,
        "seconds": round(time.perf_counter() - started, 1),
    }
    path = write("routing", result)
    print_table("gsm8k + mmlu", figures)
    for ds in DATASETS:
        print_table(ds, per_dataset[ds])
    print(f"\nwrote {path} in {result['seconds']} s")


def _request(example: Example) -> LlmRequest:
    return LlmRequest(
        id="bench",
        tenant="bench",
        agent="bench",
        task_type=example.dataset,
        messages=[ChatMessage(role="user", content=example.prompt)],
    )


if __name__ == "__main__":
    main()
