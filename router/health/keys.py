"""Every Redis key of provider health and rate limits, in one place."""

from __future__ import annotations

PREFIX = "flipsync:health:"
INDEX = f"{PREFIX}index"
"""Set of the stats keys of every provider+model that has been called."""


def stats(provider: str, model: str) -> str:
    """Hash of one provider+model: EWMA latency and error rate, counters, breaker state."""
    return f"{PREFIX}stats:{provider}:{model}"


def bucket(provider: str) -> str:
    """Hash of one provider's request and token buckets (levels and the time they were read)."""
    return f"{PREFIX}bucket:{provider}"


def pause(provider: str, model: str) -> str:
    """String key alive while a provider+model asked us (429 retry-after) to hold off."""
    return f"{PREFIX}pause:{provider}:{model}"
