"""Pricing the RouteLLM test prompts on catalog models, for bench/routing.

The strong model is priced as gpt-4o and the weak one as gpt-4o-mini. Tokens come from
router.tokens: the prompt as one user message in, the logged response out (GSM8K); MMLU has
no logged responses and its answer is one letter, so one output token.
"""

from __future__ import annotations

from collections.abc import Sequence

from bench.routing_curve import Case
from bus.messages import Usage
from cost_ledger.catalog import ModelPrice, PriceCatalog
from cost_ledger.pricing import cost_micro_usd
from router.routing.learned import PromptScore
from router.routing.training import Example
from router.tokens import count_messages_tokens, count_text_tokens

STRONG_MODEL = "gpt-4o"
WEAK_MODEL = "gpt-4o-mini"
MMLU_OUTPUT_TOKENS = 1
DATASETS = ("gsm8k", "mmlu")


def cases_of(examples: Sequence[Example], catalog: PriceCatalog) -> list[Case]:
    """Each example priced on the strong and the weak catalog model."""
    strong, weak = catalog.get(STRONG_MODEL), catalog.get(WEAK_MODEL)
    out: list[Case] = []
    for e in examples:
        tokens_in = count_messages_tokens([{"role": "user", "content": e.prompt}])
        if e.dataset == "gsm8k":
            out_strong = count_text_tokens(e.strong_response)
            out_weak = count_text_tokens(e.weak_response)
        else:
            out_strong = out_weak = MMLU_OUTPUT_TOKENS
        out.append(
            Case(
                dataset=e.dataset,
                weak_ok=e.weak_ok,
                strong_ok=e.strong_ok,
                strong_cost=_cost(strong, tokens_in, out_strong),
                weak_cost=_cost(weak, tokens_in, out_weak),
            )
        )
    return out


def per_dollar(
    train: Sequence[Example],
    test: Sequence[Example],
    judged: Sequence[PromptScore],
    catalog: PriceCatalog,
) -> list[float]:
    """Expected gain per micro-dollar that going strong adds, from request-time knowledge.

    The prompt's tokens are known; its answer's are not, so each model's mean output tokens
    on the task type's train prompts stand in (what a router can learn per task type).
    """
    strong, weak = catalog.get(STRONG_MODEL), catalog.get(WEAK_MODEL)
    mean_out: dict[tuple[str, str], float] = {}
    for ds in DATASETS:
        rows = [e for e in train if e.dataset == ds]
        for model, attr in ((STRONG_MODEL, "strong_response"), (WEAK_MODEL, "weak_response")):
            counts = [count_text_tokens(getattr(e, attr)) for e in rows if getattr(e, attr)]
            mean_out[(ds, model)] = sum(counts) / len(counts) if counts else MMLU_OUTPUT_TOKENS
    out: list[float] = []
    for e, j in zip(test, judged, strict=True):
        tokens_in = count_messages_tokens([{"role": "user", "content": e.prompt}])
        extra = _cost(strong, tokens_in, round(mean_out[(e.dataset, STRONG_MODEL)])) - _cost(
            weak, tokens_in, round(mean_out[(e.dataset, WEAK_MODEL)])
        )
        out.append(j.gain / max(extra, 1))
    return out


def _cost(price: ModelPrice, tokens_in: int, tokens_out: int) -> int:
    return cost_micro_usd(price, Usage(input_tokens=tokens_in, output_tokens=tokens_out))
