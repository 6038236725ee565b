"""bench/routing's --write-shipped: the difficulty model and default value weight the router
ships, trained and calibrated on every dataset."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.routing_calibration import TARGET
from bench.routing_data import Suite
from bench.routing_folds import RIDGE_ALPHA, centred
from router.routing.defaults import ShippedDefaults
from router.routing.difficulty import DifficultyModel, fit_rasch

ROUTER_DIR = Path(__file__).resolve().parents[1] / "router" / "routing"


def ship(
    suites: Sequence[Suite],
    vectors: Sequence[np.ndarray],
    slope: float,
    weight: float,
    result: dict[str, Any],
) -> None:
    """Train the difficulty model on every prompt and write the shipped files."""
    ys = [centred(s, fit_rasch(s.quality)[0]) for s in suites]
    meta = {
        "data": {s.name: {"prompts": len(s), "models": list(s.models)} for s in suites},
        "sources": "lm-sys/RouteLLM @0b64fdaf (Apache-2.0); TIGER-AI-Lab/MMLU-Pro @f418b11 "
        "(Apache-2.0); see bench/data/README.md",
        "command": "python -m bench.routing --write-shipped",
        "ridge_alpha": RIDGE_ALPHA,
    }
    model = DifficultyModel.fit(
        np.vstack(vectors), np.concatenate(ys), alpha=RIDGE_ALPHA, slope=slope, meta=meta
    )
    model.save(ROUTER_DIR / "difficulty.json")
    ShippedDefaults(
        value_weight=weight,
        quality_target=TARGET,
        meta={
            "how": "median over held-out public datasets of the largest value weight at "
            "which the online router keeps the target share of the strong model's quality, "
            "at the prior strength (routing.quality_prior_strength) whose online router has "
            "the best mean APGR over them",
            "prior_strength": result["calibration"]["shipped_prior_strength"],
            "per_held_out": result["calibration"]["value_weight_per_held_out"],
            "command": "python -m bench.routing --write-shipped",
        },
    ).save(ROUTER_DIR / "defaults.json")
