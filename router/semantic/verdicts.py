"""Quality signals about served semantic hits, turned into the cache's verdicts.

An agent's validators that reject an answer the semantic cache served, and explicit feedback
on such an answer, tell the cache whether that entry was right for that request
(SemanticCache.verify): a wrong one stops serving at that score (router.semantic.calibration).
A validator that passes says only that the answer is well formed, not that it answers this
question, so it is not taken as a verdict; feedback counts either way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bus.messages import Lever, QualitySignal
from router.semantic.store import SemanticCache


async def take_verdict(cache: SemanticCache, signal: QualitySignal, *, feedback: bool) -> bool:
    """Record a signal's verdict on a served semantic hit; True when one was recorded."""
    if signal.lever is not Lever.SEMANTIC_CACHE:
        return False
    if not feedback and signal.valid:
        return False
    source = "feedback" if feedback else "validator"
    return await cache.verify(signal.request_id, signal.valid, source, tenant=signal.tenant)


def verdicts_of(cache: SemanticCache) -> Callable[[QualitySignal, bool], Awaitable[bool]]:
    """The quality consumer's hook (router.routing.feedback.quality_router's verdicts)."""

    async def verdicts(signal: QualitySignal, feedback: bool) -> bool:
        return await take_verdict(cache, signal, feedback=feedback)

    return verdicts
