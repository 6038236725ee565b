"""Routing configuration as small value objects, built once from settings and passed in."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from bus.messages import Priority
from bus.settings_sections import RoutingSettings
from router.routing.tiers import Tiering, TierQuality, TierThresholds

DEFAULT_LATENCY_WEIGHT: Mapping[Priority, float] = MappingProxyType(
    {Priority.INTERACTIVE: 0.6, Priority.STANDARD: 0.3, Priority.BULK: 0.0}
)


@dataclass(frozen=True, kw_only=True)
class RoutingConfig:
    """Everything the pure routing policy needs besides the request and the candidates."""

    tiering: Tiering = field(default_factory=Tiering)
    tier_quality: TierQuality = field(default_factory=TierQuality)
    budget_shift: float = 0.3
    """How far full budget pressure (1.0) lowers the complexity score (toward cheaper tiers)."""
    output_fill: float = 0.5
    """Share of max_output_tokens a call is expected to write, for cost and latency estimates."""
    latency_weight: Mapping[Priority, float] = field(default_factory=lambda: DEFAULT_LATENCY_WEIGHT)
    """Balanced policy: weight of latency against cost (0..1), by priority."""
    task_floors: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    """Lowest model quality per task type, on top of each request's own floor."""
    value_weight: float | None = None
    """Value mode (router.routing.policy): quality worth the dearest usable model's price;
    None keeps the tier rules."""
    shortfall_weight: float = 0.02
    """Value mode: quality a doubling of cost must buy when no model reaches the floor."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.budget_shift <= 1.0:
            raise ValueError("budget_shift must lie in 0..1")
        if not 0.0 < self.output_fill <= 1.0:
            raise ValueError("output_fill must lie in (0, 1]")
        if not all(0.0 <= w <= 1.0 for w in self.latency_weight.values()):
            raise ValueError("latency weights must lie in 0..1")
        if not all(0.0 <= f <= 1.0 for f in self.task_floors.values()):
            raise ValueError("task quality floors must lie in 0..1")
        if self.value_weight is not None and self.value_weight < 0:
            raise ValueError("value_weight must not be negative")
        if self.shortfall_weight < 0:
            raise ValueError("shortfall_weight must not be negative")

    def floor(self, task_type: str, request_floor: float = 0.0) -> float:
        """The quality floor of a request: its own, or its task type's if higher."""
        return max(request_floor, self.task_floors.get(task_type, 0.0))

    @classmethod
    def from_settings(cls, settings: RoutingSettings) -> RoutingConfig:
        """The routing configuration of the `routing` settings section."""
        by_task = {
            task: TierThresholds(simple_below=pair[0], complex_from=pair[1])
            for task, pair in settings.tier_thresholds.items()
        }
        return cls(
            tiering=Tiering(
                default=TierThresholds(
                    simple_below=settings.simple_below, complex_from=settings.complex_from
                ),
                by_task=MappingProxyType(by_task),
            ),
            tier_quality=TierQuality(
                simple=settings.simple_quality,
                moderate=settings.moderate_quality,
                complex=settings.complex_quality,
            ),
            budget_shift=settings.budget_shift,
            output_fill=settings.output_fill,
            latency_weight=MappingProxyType(
                {Priority(p): w for p, w in settings.latency_weight.items()}
            ),
            task_floors=MappingProxyType(dict(settings.task_quality_floors)),
            value_weight=settings.value_weight,
            shortfall_weight=settings.shortfall_weight,
        )
