"""Every Redis key of the batching lever.

A request sent to a batch is claimed with the id of the window it went in, and the window
with the id of its batch, so that a replica that gets the request after its first replica
died finds the batch already paid for instead of making another.
"""

from __future__ import annotations

from bus.subjects import token

PREFIX = "fs:batch:"
CLAIM_TTL_S = 26 * 3600
"""Longer than a batch's 24 h completion window plus the time to fetch its results."""


def request_window(request_id: str) -> str:
    """The window a request was put in: a string window id."""
    return f"{PREFIX}req:{token(request_id)}"


def window_batch(window_id: str) -> str:
    """The batch a window became: a string batch id."""
    return f"{PREFIX}window:{token(window_id)}"
