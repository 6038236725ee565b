"""Errors of the notifier.

NotifyError
├── TargetError        a notify target that is neither a webhook URL nor a mailto: address
└── DeliveryError      one attempt to deliver to a target failed (retried with backoff)
"""

from __future__ import annotations


class NotifyError(Exception):
    """Base of the notifier's errors."""


class TargetError(NotifyError):
    """A notify target that cannot be used."""

    def __init__(self, target: str, reason: str) -> None:
        super().__init__(f"notify target {target!r}: {reason}")
        self.target = target
        self.reason = reason


class DeliveryError(NotifyError):
    """One delivery attempt failed; permanent when retrying cannot help (a 4xx answer)."""

    def __init__(self, target: str, reason: str, *, permanent: bool = False) -> None:
        super().__init__(f"delivery to {target} failed: {reason}")
        self.target = target
        self.reason = reason
        self.permanent = permanent
