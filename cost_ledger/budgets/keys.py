"""Every Redis key of the budgets, as constants and small builders (prefix fs:budget:).

A counter is one scope in one period (``tenant:acme:d2026-11-02``): a hash with ``spent`` and
``reserved``. Scope names come from subject tokens or are hashed (see ``policy.name_token``),
so they hold no ``:`` and one scope's keys never alias another's.
"""

from __future__ import annotations

PREFIX = "fs:budget:"

CONFIG = f"{PREFIX}config"
"""Hash of the live rules: budget:<name>, tier:<name> and cap, each a JSON wire struct."""
CONFIG_REV = f"{PREFIX}config:rev"
"""A fresh random string at every config change, so replicas see that they must reload."""
READY = f"{PREFIX}ready"
"""Set once the spent counters are complete (a fresh deployment, or after a rebuild); while
it is missing (a flushed Redis) reservations wait instead of trusting empty counters."""
RESERVATIONS = f"{PREFIX}reservations"
"""Sorted set of held reservations by request id, scored by their expiry (Redis ms)."""
RESERVATION_PREFIX = f"{PREFIX}res:"
COUNTER_PREFIX = f"{PREFIX}ctr:"
ALERT_PREFIX = f"{PREFIX}alert:"

SETTLED_TTL_S = 40 * 24 * 3600
"""How long a settled request id is remembered: as long as the ledger's seen markers."""
COUNTER_KEEP_S = 2 * 24 * 3600
"""How long a counter (and its alert markers) outlives its period, for late events."""


def reservation(request_id: str) -> str:
    """Hash of one request's reservation: counter key -> amount held."""
    return f"{RESERVATION_PREFIX}{request_id}"


def settled(request_id: str) -> str:
    """Marker that a request's cost was added to the counters, so it never is twice."""
    return f"{PREFIX}settled:{request_id}"


def counter(counter_id: str) -> str:
    """Hash {spent, reserved} of one scope in one period."""
    return f"{COUNTER_PREFIX}{counter_id}"


def applied(change_id: str) -> str:
    """Marker that a BudgetChange was applied to the live config."""
    return f"{PREFIX}applied:{change_id}"


def alert(budget: str, counter_id: str, limit: int, percent: int) -> str:
    """Marker that a budget's alert at percent was sent for this counter and limit."""
    return f"{ALERT_PREFIX}{budget}:{counter_id}:{limit}:{percent}"
