"""Counter groups (one Redis Cluster slot each, see keys.py): which a request's counters fall
in, in the fixed order every replica reserves them in."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from cost_ledger.budgets import keys
from cost_ledger.budgets.policy import Charge, Check, Subject, name_token

C = TypeVar("C", Check, "Charge")


def grouped(found: Iterable[C]) -> list[tuple[str, list[C]]]:
    """Counters by group, in the fixed order every replica uses: tenants' groups (by name),
    then the global group, the most contended, held for the shortest time."""
    groups: dict[str, list[C]] = {}
    for item in found:
        groups.setdefault(keys.group_of(item.counter), []).append(item)
    order = sorted(groups, key=lambda g: (g == keys.GLOBAL_GROUP, g))
    return [(g, groups[g]) for g in order]


def subject_groups(subject: Subject) -> list[str]:
    """The groups a subject's reservations can be in."""
    return [keys.tenant_group(name_token(subject.tenant)), keys.GLOBAL_GROUP]
