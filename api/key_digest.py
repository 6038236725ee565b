"""The stored form of an API key: its SHA-256 digest (no imports beyond hashlib, so that
whatever compares keys can, without the web framework)."""

from __future__ import annotations

import hashlib

DIGEST_PREFIX = "sha256:"
"""How a key configured as its digest starts."""


def digest(key: str) -> str:
    """The stored form of a key: "sha256:" and its hex digest."""
    return DIGEST_PREFIX + hashlib.sha256(key.encode()).hexdigest()
