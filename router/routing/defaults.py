"""The routing defaults shipped with the package (router/routing/defaults.json).

bench/routing writes the file: the value weight calibrated so that, on held-out public
datasets, the routed quality keeps ``quality_target`` of the premium model's, and the
figures it was calibrated on. Settings override it (routing.value_weight).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

PACKAGED = "defaults.json"


@dataclass(frozen=True, kw_only=True)
class ShippedDefaults:
    """What the package ships for value-mode routing."""

    value_weight: float
    """Quality worth the dearest usable model's price (router.routing.policy)."""
    quality_target: float
    """The share of the premium model's quality value_weight was calibrated to keep."""
    meta: Mapping[str, Any] = field(default_factory=dict)
    """How it was calibrated: data, command, held-out figures."""

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {
            "value_weight": round(self.value_weight, 4),
            "quality_target": self.quality_target,
            "meta": dict(self.meta),
        }

    def save(self, path: Path) -> None:
        """Write as JSON."""
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, path: Path | None = None) -> ShippedDefaults:
        """Read the defaults; by default those shipped with this package."""
        if path is None:
            text = resources.files("router.routing").joinpath(PACKAGED).read_text()
        else:
            text = path.read_text(encoding="utf-8")
        data = json.loads(text)
        return cls(
            value_weight=float(data["value_weight"]),
            quality_target=float(data["quality_target"]),
            meta=dict(data.get("meta", {})),
        )
