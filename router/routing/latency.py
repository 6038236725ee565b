"""Measured latency for routing: provider health (EWMA of real calls) replaces tier defaults.

A model's tier default says how long a call takes (first token, then tokens per second). Once
its provider has answered calls, the default's shape is scaled so that a call of the average
answer length takes what the EWMA measured. The figures are read from Redis at most every
refresh_s, by one request at a time; the others use the last ones, so routing never waits.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import replace

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from router.health.snapshot import ProviderHealth, health_snapshot
from router.routing.candidates import Candidate, LatencyEstimate

log = logging.getLogger(__name__)

Candidates = Sequence[Candidate]


def measured_estimate(default: LatencyEstimate, health: ProviderHealth) -> LatencyEstimate | None:
    """The default's shape scaled to the measured EWMA latency at the average answer length;
    None when nothing was measured."""
    if health.latency_ms is None or health.ok <= 0 or health.latency_ms <= 0:
        return None
    average_output = max(1, round(health.output_tokens / health.ok))
    scale = health.latency_ms / default.total_ms(average_output)
    return LatencyEstimate(
        first_token_ms=default.first_token_ms * scale,
        tokens_per_s=default.tokens_per_s / scale,
    )


class MeasuredLatency:
    """Candidates with their latency as measured at the provider that would serve them."""

    def __init__(self, redis: aioredis.Redis, *, refresh_s: float) -> None:
        self._redis = redis
        self._refresh_s = refresh_s
        self._next_read = 0.0
        self._health: dict[tuple[str, str], ProviderHealth] = {}
        self._source: Candidates = ()
        self._adjusted: Candidates = ()

    async def candidates(self, source: Candidates) -> Candidates:
        """source with measured latencies where health knows them (the same objects if not)."""
        now = time.monotonic()
        if now >= self._next_read:
            self._next_read = now + self._refresh_s  # one reader; the rest use the last read
            try:
                snapshot = await health_snapshot(self._redis)
            except RedisError as exc:
                log.warning("provider latencies not refreshed: %s", exc)
            else:
                self._health = {(h.provider, h.model): h for h in snapshot}
                self._source = ()  # recompute below
        if source is not self._source:
            self._adjusted = tuple(self._adjust(c) for c in source)
            self._source = source
        return self._adjusted

    def _adjust(self, candidate: Candidate) -> Candidate:
        health = self._health.get((candidate.provider, candidate.model))
        measured = measured_estimate(candidate.latency, health) if health else None
        return candidate if measured is None else replace(candidate, latency=measured)
