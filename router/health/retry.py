"""How long to wait before the next attempt: exponential backoff with full jitter, or the
provider's own retry-after (never less, a little more so waiting replicas do not all
come back in the same millisecond)."""

from __future__ import annotations

import random

from router.health.config import RetryPolicy

RETRY_AFTER_JITTER = 0.1
"""Up to this share added to a retry-after."""


def backoff_s(attempt: int, policy: RetryPolicy, rng: random.Random) -> float:
    """Full-jitter exponential backoff before retry number attempt (0 is the first retry)."""
    ceiling = min(policy.max_s, policy.base_s * 2**attempt)
    return rng.uniform(0, ceiling)


def retry_delay_s(
    attempt: int, policy: RetryPolicy, rng: random.Random, retry_after_s: float | None = None
) -> float:
    """The wait before the next attempt: the retry-after if the provider sent one."""
    if retry_after_s is not None:
        return retry_after_s * (1 + rng.uniform(0, RETRY_AFTER_JITTER))
    return backoff_s(attempt, policy, rng)
