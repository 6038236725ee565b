"""Every Redis key of the router package, as constants and small builders.

Tenant names are subject tokens (no ``:``), and each key names its tenant in its own segment,
so one tenant's keys can never alias another's. Fingerprints are hex digests.

Keys one script touches together share a Redis Cluster hash tag: a tenant's cache entries and
its LRU index ``{c:<tenant>}``, a coalesced call's claim and outcomes ``{f:<tenant>:<fp>}``.
"""

from __future__ import annotations

from bus.subjects import token

PREFIX = "fs:router:"
FLAGS = "fs:optimizer:flags"
"""Hash: flag rule name -> the encoded FlagRule (written by the optimizer, read here; the
name keeps the optimizer's prefix, so stored flags stay where they were)."""
FLAGS_REV = "fs:optimizer:flags-rev"
"""Counter bumped by every flag change, so replicas know when to reload."""


def cache_entry(tenant: str, fingerprint: str) -> str:
    """One exact-cache entry: a stored result of the tenant, by request fingerprint."""
    return f"{PREFIX}{{c:{token(tenant)}}}:cache:{token(fingerprint)}"


def cache_index(tenant: str) -> str:
    """Sorted set of a tenant's exact-cache fingerprints, scored by last use (ms)."""
    return f"{PREFIX}{{c:{token(tenant)}}}:cache-lru"


def flight_claim(tenant: str, fingerprint: str) -> str:
    """Claim of the leader of a coalesced call: holds its token while the call runs."""
    return f"{PREFIX}{{f:{token(tenant)}:{token(fingerprint)}}}:claim"


def flight_waiters(tenant: str, fingerprint: str) -> str:
    """How many requests found a coalesced call's claim held (its leader tells them only then)."""
    return f"{PREFIX}{{f:{token(tenant)}:{token(fingerprint)}}}:waiters"


def flight_done(tenant: str, fingerprint: str, leader_request_id: str) -> str:
    """The outcome of the coalesced call led by one request."""
    return f"{PREFIX}{{f:{token(tenant)}:{token(fingerprint)}}}:done:{token(leader_request_id)}"


def request_owner(request_id: str) -> str:
    """The tenant and agent that first used a request id ("tenant.agent")."""
    return f"{PREFIX}owner:{token(request_id)}"
