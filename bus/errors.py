"""Errors of the bus layer.

BusError
├── WireError            a message could not be decoded (carries code and reason)
└── EmbeddedServerError  an embedded nats-server or redis-server did not start
"""

from __future__ import annotations

from bus.messages import ErrorCode


class BusError(Exception):
    """Base of every bus error."""


class WireError(BusError):
    """A message on the wire could not be read; code and reason go into the error result."""

    def __init__(self, code: ErrorCode, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


class EmbeddedServerError(BusError):
    """An embedded server failed to start; the log tail says why."""

    def __init__(self, server: str, reason: str, log_tail: str = "") -> None:
        super().__init__(f"{server} did not start: {reason}\n{log_tail}".rstrip())
        self.server = server
        self.reason = reason
        self.log_tail = log_tail
