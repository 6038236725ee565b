"""Routing: content features, complexity tiers, the policy, the cascade and quality learning.

Everything here is pure (no I/O). router.routing.training (scikit-learn) is offline only and
is not imported here.
"""

from router.routing.candidates import Candidate, LatencyEstimate, candidates_from_catalog
from router.routing.cascade import Escalation, Ladder, Rung, build_ladder, escalate
from router.routing.config import RoutingConfig
from router.routing.errors import NoCandidateError
from router.routing.features import RequestFeatures, TextCues, extract, heuristic_complexity
from router.routing.learned import PromptRouter, PromptScore
from router.routing.policy import Policy, RouteDecision, choose, rank
from router.routing.quality import (
    BetaEstimate,
    QualityBook,
    QualitySignal,
    SignalKind,
    SignalWeights,
)
from router.routing.tiers import ComplexityTier, Tiering, TierQuality, TierThresholds

__all__ = [
    "BetaEstimate",
    "Candidate",
    "ComplexityTier",
    "Escalation",
    "LatencyEstimate",
    "Ladder",
    "NoCandidateError",
    "Policy",
    "PromptRouter",
    "PromptScore",
    "QualityBook",
    "QualitySignal",
    "RequestFeatures",
    "RouteDecision",
    "RoutingConfig",
    "Rung",
    "SignalKind",
    "SignalWeights",
    "TextCues",
    "TierQuality",
    "TierThresholds",
    "Tiering",
    "build_ladder",
    "candidates_from_catalog",
    "choose",
    "escalate",
    "extract",
    "heuristic_complexity",
    "rank",
]
