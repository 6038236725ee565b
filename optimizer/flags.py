"""Feature flags as the optimizer writes them: which rules can be applied (checked before
they are stored). Deciding per request lives below the router, in router.flags.decide."""

from __future__ import annotations

from bus.messages import FlagRule, Lever
from optimizer.errors import FlagError

SWITCHABLE = frozenset(
    {
        Lever.EXACT_CACHE,
        Lever.SEMANTIC_CACHE,
        Lever.PATTERN,
        Lever.DEDUP,
        Lever.PACKED,
        Lever.BATCH_API,
        Lever.TRIMMED,
    }
)
"""The levers a flag can switch off; the others name how a result was served."""
POLICIES = frozenset({"cheapest", "fastest", "balanced"})
"""Routing policies a flag may ask for."""


def check_rule(rule: FlagRule) -> None:
    """Raise FlagError with the reason when a rule cannot be applied."""
    where = f"flag {rule.name!r}"
    if not rule.name or len(rule.name) > 128:
        raise FlagError(f"{where}: a flag needs a name of 1 to 128 characters")
    if not 0 <= rule.percent <= 100:
        raise FlagError(f"{where}: percent must be between 0 and 100, not {rule.percent}")
    if rule.bucket_from < 0 or rule.bucket_from + rule.percent > 100:
        raise FlagError(f"{where}: bucket_from + percent must stay within 0..100")
    for lever in (*rule.disable_levers, *rule.enable_levers):
        if lever not in SWITCHABLE:
            names = ", ".join(sorted(SWITCHABLE))
            raise FlagError(f"{where}: {lever} is not a switchable lever ({names})")
    if rule.routing_policy and rule.routing_policy not in POLICIES:
        policies = ", ".join(sorted(POLICIES))
        raise FlagError(f"{where}: unknown routing policy {rule.routing_policy!r} ({policies})")
    if rule.prompt is not None and rule.prompt.find and not rule.prompt.replace:
        raise FlagError(f"{where}: a prompt patch that finds text must say what replaces it")
