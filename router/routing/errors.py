"""Errors of the routing policy.

NoRouteError (router.errors)
└── NoCandidateError     no candidate can take the request at all (vision, context window)
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from router.errors import NoRouteError


class NoCandidateError(NoRouteError):
    """No candidate model can serve the request, whatever its price or quality."""

    def __init__(self, task_type: str, rejected: Mapping[str, str]) -> None:
        why = "; ".join(f"{model}: {reason}" for model, reason in rejected.items())
        super().__init__(f"no candidate model can serve {task_type!r} ({why or 'none given'})")
        self.task_type = task_type
        self.rejected = MappingProxyType(dict(rejected))
