"""What a decoded LedgerEvent must be before it moves money: checked by every reader that
applies events (the live consumer, the rebuild), so that a forged or broken event is one
clear dead letter (or skipped on a replay) instead of corrupting spend or stalling a batch."""

from __future__ import annotations

from bus.errors import WireError
from bus.messages import ErrorCode, LedgerEvent

MAX_INT = 2**63 - 1
"""Redis counters are signed 64-bit: no amount or count of one event may be larger."""
MAX_MS = 253_402_300_799_999
"""The last millisecond of year 9999: a later time has no UTC day to be counted in."""


def check_event(event: LedgerEvent) -> None:
    """Raise WireError(malformed) when event has a negative or out-of-range amount, token
    count or pack size, a saving past 64 bits, or a time outside years 1970 to 9999."""
    counts = {
        "cost_micro_usd": event.cost_micro_usd,
        "baseline_micro_usd": event.baseline_micro_usd,
        "pack_size": event.pack_size,
        **{f"usage.{name}": getattr(event.usage, name) for name in event.usage.__struct_fields__},
    }
    for name, value in counts.items():
        if not 0 <= value <= MAX_INT:
            raise _malformed(f"{name} must be from 0 to {MAX_INT}, not {value}")
    for name, ms in (("started_ms", event.started_ms), ("finished_ms", event.finished_ms)):
        if not 0 <= ms <= MAX_MS:
            raise _malformed(f"{name} must be from 0 to {MAX_MS} (year 9999), not {ms}")
    for lever, part in event.savings_by_lever.items():
        if not -MAX_INT <= part <= MAX_INT:
            raise _malformed(f"savings_by_lever[{lever!r}] is beyond 64 bits")


def _malformed(problem: str) -> WireError:
    return WireError(ErrorCode.MALFORMED, f"LedgerEvent {problem}")
