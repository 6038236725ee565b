"""Every Redis key of the notifier (prefix fs:notify:). One alert's keys share a hash tag, so
they sit in one slot of a Redis Cluster."""

from __future__ import annotations

import hashlib

PREFIX = "fs:notify:"
SENT_TTL_S = 40 * 24 * 3600
"""How long a delivery is remembered: longer than any redelivery or monthly period."""


def _target(target: str) -> str:
    return hashlib.sha256(target.encode()).hexdigest()[:16]


def claim(notice_id: str, target: str) -> str:
    """Held by the replica delivering notice_id to target now (expires if it dies)."""
    return f"{PREFIX}{{{notice_id}}}:claim:{_target(target)}"


def sent(notice_id: str, target: str) -> str:
    """Set once notice_id reached target: no replica sends it there again."""
    return f"{PREFIX}{{{notice_id}}}:sent:{_target(target)}"


def anomaly_seen(notice_id: str) -> str:
    """Set once an anomaly was queued for delivery, so the next scan does not queue it again."""
    return f"{PREFIX}{{{notice_id}}}:anomaly"
