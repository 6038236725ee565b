"""Budget: reserve the request's maximum cost before dispatch, settle with real usage after.

The stage boundary is in place; until its lever lands it passes requests straight through.
"""

from __future__ import annotations

from router.pipeline import PassThrough


class BudgetStage(PassThrough):
    """Budget stage (pass-through for now)."""

    name = "budget"
