"""Singleflight: identical requests in flight share one upstream call across replicas.

The stage boundary is in place; until its lever lands it passes requests straight through.
"""

from __future__ import annotations

from router.pipeline import PassThrough


class DedupStage(PassThrough):
    """Singleflight stage (pass-through for now)."""

    name = "dedup"
