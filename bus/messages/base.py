"""The wire version and the clock every message is stamped with."""

from __future__ import annotations

import time

WIRE_VERSION = 1


def now_ms() -> int:
    """Current Unix time in milliseconds."""
    return time.time_ns() // 1_000_000
