"""The state one request carries through the pipeline stages."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from bus.messages import LlmRequest


@dataclass(kw_only=True)
class Route:
    """Where a request goes: a model at a provider, and why."""

    model: str
    provider: str
    reason: str


@dataclass(kw_only=True)
class RequestContext:
    """One request in the pipeline: the request, its route once chosen, and its clock."""

    request: LlmRequest
    route: Route | None = None
    started_ms: int = field(default_factory=lambda: time.time_ns() // 1_000_000)
    started_monotonic: float = field(default_factory=time.monotonic)

    def remaining_s(self) -> float | None:
        """Seconds left before the requester's deadline, or None without a deadline."""
        if not self.request.deadline_ms:
            return None
        return self.request.deadline_ms / 1000 - time.time()

    def elapsed_ms(self) -> float:
        """Milliseconds since the pipeline took the request."""
        return (time.monotonic() - self.started_monotonic) * 1000
