"""Batching: pack compatible small requests into one call, or send bulk ones to the Batch API.

The stage boundary is in place; until its lever lands it passes requests straight through.
"""

from __future__ import annotations

from router.pipeline import PassThrough


class BatchStage(PassThrough):
    """Batching stage (pass-through for now)."""

    name = "batch"
