"""Every Redis key of the cost ledger, as constants and small builders.

Aggregates live in two scopes: ``all`` (every tenant) and ``tenant:<name>``. Tenant names are
subject tokens, so they hold no ``:`` and one tenant's keys can never alias another scope's.

On a Redis Cluster each scope is one group: its aggregates, member sets, cube rows and its own
seen markers carry the hash tag ``{<scope>}`` (``tag``), so one script applies an event to one
scope in one slot, and the marker guarding a scope's sums lives in the same slot as the sums.
An event is applied scope by scope, each exactly once (cost_ledger/aggregates.py).
"""

from __future__ import annotations

import enum

from bus.subjects import token

PREFIX = "fs:ledger:"
SEEN_TTL_S = 40 * 24 * 3600
"""How long an applied event id is remembered: longer than any redelivery or replay window."""

GLOBAL_SCOPE = "all"


class Dimension(enum.StrEnum):
    """What spend can be broken down by."""

    TOTAL = "total"
    TENANT = "tenant"
    AGENT = "agent"
    MODEL = "model"
    PROVIDER = "provider"
    LEVER = "lever"
    DAY = "day"
    """UTC yyyy-mm-dd of the event's finish."""
    HOUR = "hour"
    """UTC yyyy-mm-ddThh of the event's finish."""


TOTAL_MEMBER = "total"
"""The one member of the TOTAL dimension."""


def scope(tenant: str | None) -> str:
    """The aggregate scope of a tenant, or of every tenant; raises ValueError for a bad name."""
    return GLOBAL_SCOPE if tenant is None else f"tenant:{token(tenant)}"


def tag(scope_: str) -> str:
    """The Redis Cluster hash tag of a scope's keys: every key of one scope shares a slot."""
    return f"{{{scope_}}}"


def seen(event_id: str, scope_: str = GLOBAL_SCOPE) -> str:
    """Marker that a ledger event was applied to a scope, so a redelivery is not counted
    twice there (one per scope, in the slot of the sums it guards)."""
    return f"{PREFIX}seen:{tag(scope_)}:{event_id}"


def aggregate(scope_: str, dimension: Dimension, member: str) -> str:
    """Hash of the summed metrics of one member of a dimension (a model, a day...) in a scope."""
    return f"{PREFIX}agg:{tag(scope_)}:{dimension.value}:{member}"


def members(scope_: str, dimension: Dimension) -> str:
    """Set of the members of a dimension seen in a scope (the tenants, the models...)."""
    return f"{PREFIX}idx:{tag(scope_)}:{dimension.value}"
