"""Every Redis key of the semantic cache, as constants and small builders.

Tenant names and request ids are subject tokens (no ``:``), and each key names its tenant in
its own segment, so one tenant's keys can never alias another's. A tenant's entries and its
indexes carry the hash tag ``{s:<tenant>}``, so the script that stores an entry and bounds
them touches one Redis Cluster slot; the log and observation streams are single keys
written by separate commands.
"""

from __future__ import annotations

import hashlib

from bus.subjects import token

PREFIX = "fs:router:sem:"

LOG = f"{PREFIX}log"
"""Stream of every stored entry's vector and metadata (no answers): replicas tail it to keep
their in-process index in step, and a starting replica rebuilds its index from it."""

OBSERVATIONS = f"{PREFIX}obs"
"""Stream of verified lookup outcomes (scores, right or wrong, no text): every replica folds
them into its calibrators (router.semantic.calibration)."""


def _tag(tenant: str) -> str:
    return f"{PREFIX}{{s:{token(tenant)}}}:"


def entry(tenant: str, entry_id: str) -> str:
    """One entry of a tenant: its vector, metadata and cached result, with its TTL."""
    return f"{entry_prefix(tenant)}{token(entry_id)}"


def entry_prefix(tenant: str) -> str:
    """What every entry key of a tenant starts with (the bound's Lua script appends ids)."""
    return f"{_tag(tenant)}entry:"


def tenant_index(tenant: str) -> str:
    """Sorted set of a tenant's entry ids, scored by creation time (ms): the size bound."""
    return f"{_tag(tenant)}index"


def task_index(tenant: str, task_type: str) -> str:
    """Sorted set of a tenant's entry ids of one task type, by creation time: its quota."""
    safe = task_type if task_type.replace("_", "").replace("-", "").isalnum() else None
    segment = safe or "h" + hashlib.blake2b(task_type.encode(), digest_size=8).hexdigest()
    return f"{_tag(tenant)}index:{segment}"


def served(request_id: str) -> str:
    """A served hit awaiting its verdict, by the request id it answered (ids are unique
    across tenants: the router refuses an id another tenant owns)."""
    return f"{PREFIX}served:{token(request_id)}"
