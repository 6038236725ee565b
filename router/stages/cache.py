"""Exact and semantic cache: answer from a stored result of the same request (tenant-scoped).

The stage boundary is in place; until its lever lands it passes requests straight through.
"""

from __future__ import annotations

from router.pipeline import PassThrough


class CacheStage(PassThrough):
    """Exact and semantic cache stage (pass-through for now)."""

    name = "cache"
