"""A small fixed catalog and feature builder for the routing tests (independent of prices.toml)."""

from __future__ import annotations

from cost_ledger.catalog import PriceCatalog
from router.routing.candidates import Candidate, LatencyEstimate, candidates_from_catalog
from router.routing.features import RequestFeatures, TextCues

TEST_CATALOG = PriceCatalog.from_dict(
    {
        "version": "test",
        "batch_discount": "0.5",
        "models": {
            # Prices per 1M tokens; with 1,000 input and 250 output tokens a call costs
            # input + output / 4 micro-dollars per 1k: cheap 150, quick 550, mid 800, top 4500.
            "cheap": {"provider": "p1", "tier": "economy", "input": "0.10",
                      "cached_input": "0.05", "output": "0.20", "context_window": 16000,
                      "vision": True, "quality": 0.65},
            "quick": {"provider": "p2", "tier": "standard", "input": "0.30",
                      "cached_input": "0.10", "output": "1.00", "context_window": 32000,
                      "vision": False, "quality": 0.78},
            "mid": {"provider": "p1", "tier": "standard", "input": "0.40",
                    "cached_input": "0.10", "output": "1.60", "context_window": 128000,
                    "vision": True, "quality": 0.80},
            "top": {"provider": "p3", "tier": "premium", "input": "2.50",
                    "cached_input": "1.25", "output": "8.00", "context_window": 128000,
                    "vision": True, "quality": 0.90},
        },
    }
)  # fmt: skip

LATENCY = {
    "cheap": LatencyEstimate(first_token_ms=600.0, tokens_per_s=100.0),  # 600 + 2500 = 3100
    "quick": LatencyEstimate(first_token_ms=200.0, tokens_per_s=250.0),  # 200 + 1000 = 1200
    "mid": LatencyEstimate(first_token_ms=400.0, tokens_per_s=125.0),  # 400 + 2000 = 2400
    "top": LatencyEstimate(first_token_ms=800.0, tokens_per_s=50.0),  # 800 + 5000 = 5800
}
"""Latencies; the comments give the total for 250 output tokens."""


def candidates() -> tuple[Candidate, ...]:
    """The four test models as routing candidates."""
    return candidates_from_catalog(TEST_CATALOG, latency=LATENCY)


def features(
    complexity: float,
    *,
    task_type: str = "extraction",
    input_tokens: int = 1000,
    max_output_tokens: int = 500,
    images: int = 0,
    has_schema: bool = False,
) -> RequestFeatures:
    """Features with a given complexity; 500 max output tokens means 250 expected."""
    return RequestFeatures(
        task_type=task_type,
        input_tokens=input_tokens,
        max_output_tokens=max_output_tokens,
        images=images,
        image_tokens=85 * images,
        has_schema=has_schema,
        schema_fields=3 if has_schema else 0,
        schema_depth=1 if has_schema else 0,
        cues=TextCues(math=0.0, multi_step=0.0, code=0.0, numbers=0),
        complexity=complexity,
    )
