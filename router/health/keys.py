"""Every Redis key of provider health and rate limits, in one place.

A provider's rate-limit bucket and its models' pauses share the hash tag ``{<provider>}``, so
the limiter's script touches one Redis Cluster slot; the stats of every provider+model and
their index share ``{health}`` (the record script adds to both).
"""

from __future__ import annotations

PREFIX = "flipsync:health:"
INDEX = f"{PREFIX}{{health}}:index"
"""Set of the stats keys of every provider+model that has been called."""


def stats(provider: str, model: str) -> str:
    """Hash of one provider+model: EWMA latency and error rate, counters, breaker state."""
    return f"{PREFIX}{{health}}:stats:{provider}:{model}"


def bucket(provider: str) -> str:
    """Hash of one provider's request and token buckets (levels and the time they were read)."""
    return f"{PREFIX}{{{provider}}}:bucket"


def pause(provider: str, model: str) -> str:
    """String key alive while a provider+model asked us (429 retry-after) to hold off."""
    return f"{PREFIX}{{{provider}}}:pause:{model}"
