"""Every Redis key of the budgets, as constants and small builders (prefix fs:budget:).

A counter is one scope in one period (``tenant:acme:d2026-11-02``): a hash with ``spent`` and
``reserved``. Scope names come from subject tokens or are hashed (see ``policy.name_token``),
so they hold no ``:`` and one scope's keys never alias another's.

Counters are grouped so that every script touches one Redis Cluster slot: a tenant's counters
(tenant, agent, workflow and user scopes) share the hash tag ``{t:<tenant>}``, the global ones
``{global}``. Each group keeps its own reservations, settle markers and ready marker; a
request that spans groups reserves in each, in a fixed order (see store.py and
docs/scaling.md). On a single Redis the tags are just part of the names.
"""

from __future__ import annotations

import binascii
import functools
from collections.abc import Iterable

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

PREFIX = "fs:budget:"

CONFIG = f"{PREFIX}{{config}}"
"""Hash of the live rules: budget:<name>, tier:<name> and cap, each a JSON wire struct."""
CONFIG_REV = f"{PREFIX}{{config}}:rev"
"""A fresh random string at every config change, so replicas see that they must reload."""
GROUPS = f"{PREFIX}groups"
"""Set of every counter group that ever held a reservation (for sweeps and counts)."""
GLOBAL_GROUP = "global"
REBUILD_LOCK = f"{PREFIX}{{config}}:rebuilding"
"""Held by the replica rebuilding lost counters, so one does it at a time."""
ALERT_PREFIX = f"{PREFIX}alert:"

SETTLED_TTL_S = 40 * 24 * 3600
"""The longest a settled request id is remembered (as long as the ledger's seen markers)."""
COUNTER_KEEP_S = 2 * 24 * 3600
"""How long a counter (and its alert markers) outlives its period, for late events."""
SETTLED_MIN_S = 2 * 24 * 3600
"""The shortest a settled request id is remembered: longer than any request stays in flight
(a Batch API call's claim lives 26 hours), so a redelivery always finds it."""
SETTLED_MARGIN_S = 24 * 3600
"""How long a settle marker outlives the last counter it charged, for clocks that differ."""


def settled_ttl_s(expire_at_s: Iterable[int], now_s: float) -> int:
    """How long a settle marker must live: as long as the counters it charged (expire_at_s,
    absolute), which a replayed event must not charge twice, plus SETTLED_MARGIN_S; at least
    SETTLED_MIN_S, at most SETTLED_TTL_S. A request charges a month's counters, so about 18
    days on average instead of 40 (bench/redis_memory)."""
    latest = max(expire_at_s, default=0)
    wanted = latest - int(now_s) + SETTLED_MARGIN_S
    return min(max(wanted, SETTLED_MIN_S), SETTLED_TTL_S)


def group_of(counter_id: str) -> str:
    """The group (hash tag) of a counter: its tenant's, or the global one."""
    scope, _, rest = counter_id.partition(":")
    if scope == GLOBAL_GROUP:
        return GLOBAL_GROUP
    return tenant_group(rest.partition(":")[0])


def tenant_group(tenant_token: str) -> str:
    """The group of a tenant's counters (tenant_token as policy.name_token gives it)."""
    return f"t:{tenant_token}"


def _in(group: str) -> str:
    return f"{PREFIX}{{{group}}}:"


def counter(counter_id: str) -> str:
    """Hash {spent, reserved} of one scope in one period."""
    return f"{_in(group_of(counter_id))}ctr:{counter_id}"


def reservations(group: str) -> str:
    """Sorted set of a group's held reservations by request id, scored by expiry (Redis ms)."""
    return f"{_in(group)}reservations"


def reservation_prefix(group: str) -> str:
    """What a group's reservation keys start with (its scripts sweep by it)."""
    return f"{_in(group)}res:"


def reservation(group: str, request_id: str) -> str:
    """Hash of one request's reservation in a group: counter key -> amount held."""
    return f"{reservation_prefix(group)}{request_id}"


def settled(group: str, request_id: str) -> str:
    """Marker that a request's cost was added to a group's counters, so it never is twice."""
    return f"{_in(group)}settled:{request_id}"


def ready(group: str) -> str:
    """The ready marker of the Redis Cluster slot holding group's keys (see ready_keys)."""
    return f"{PREFIX}{{{slot_tags()[key_slot(group.encode())]}}}:ready"


def ready_key(slot: int) -> str:
    """The ready marker of one hash slot."""
    return f"{PREFIX}{{{slot_tags()[slot]}}}:ready"


def ready_keys() -> list[str]:
    """One ready marker per hash slot: set once the counters are complete (a fresh
    deployment, or after a rebuild). A cluster node that restarts empty loses exactly the
    markers of its slots, so only the groups it held wait for a rebuild."""
    return [f"{PREFIX}{{{tag}}}:ready" for tag in slot_tags()]


@functools.cache
def slot_tags() -> tuple[str, ...]:
    """For each hash slot, a short hash tag that lands in it (about 0.1 s, once)."""
    tags: list[str | None] = [None] * REDIS_CLUSTER_HASH_SLOTS
    missing, i = REDIS_CLUSTER_HASH_SLOTS, 0
    while missing:
        tag = f"r{i}"
        # Redis's slot is CRC16/XMODEM mod 16384, which binascii computes in C.
        slot = binascii.crc_hqx(tag.encode(), 0) % REDIS_CLUSTER_HASH_SLOTS
        if tags[slot] is None:
            tags[slot] = tag
            missing -= 1
        i += 1
    return tuple(t for t in tags if t is not None)


def applied(change_id: str) -> str:
    """Marker that a BudgetChange was applied to the live config."""
    return f"{PREFIX}{{config}}:applied:{change_id}"


def alert(budget: str, counter_id: str, limit: int, percent: int) -> str:
    """Marker that a budget's alert at percent was sent for this counter and limit."""
    return f"{ALERT_PREFIX}{budget}:{counter_id}:{limit}:{percent}"
