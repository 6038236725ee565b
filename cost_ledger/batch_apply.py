"""A fetched batch of ledger events applied to the aggregates in one Redis call per scope.

The sums per key and field are computed here, in Python, so a batch of 64 events costs one
script of a few hundred HINCRBY instead of 64 scripts of about 290 each. Idempotency per event
holds: the script checks every event's seen marker first and writes nothing if any exists;
then (rare: a redelivery, a replay) the batch is applied event by event by the per-event
script, which counts each event once and completes events an older script applied in part.
So a batch writes exactly what its events applied one by one would (tests compare the two).
A sum that would leave 64 bits is found before anything is written, and the batch then goes
event by event too, so that only the event at fault fails.

On a Redis Cluster a script touches one slot, so the batch is cut by scope (cost_ledger/keys.py):
one call per tenant of the batch, then one for the all-tenants scope, each checking and
writing only its own scope's seen markers and sums (same slot). A scope whose call finds a
marker (or an overflow) writes nothing and goes event by event in that scope only; an event
that fails in its tenant's scope is left out of the all-tenants call. As in
AggregateStore.apply_event, an event's outcome is its all-tenants scope's, applied last.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import msgspec
from redis import exceptions as redis_errors

from bus.consumers import is_permanent
from bus.messages import LedgerEvent
from cost_ledger import cube, keys
from cost_ledger.aggregates import (
    MARKER_VERSION,
    AggregateStore,
    Applied,
    Totals,
    event_members,
    event_metrics,
    event_scopes,
    scope_dimensions,
)
from cost_ledger.keys import Dimension

FIELDS = tuple(f.name for f in dataclasses.fields(Totals))
_SET_INDEXES = {
    metric_set: [(name, FIELDS.index(name)) for name in names or FIELDS]
    for metric_set, names in cube.METRIC_SETS.items()
}
"""Each cube metric set's fields with their places in FIELDS."""
_encode = msgspec.json.Encoder().encode

# KEYS: the m seen markers, then the written keys. ARGV[1] m, ARGV[2] marker ttl s,
# ARGV[3] marker value, ARGV[4] the writes as JSON: {"h": [[key index, [field, amount, ...]],
# ...], "s": [[key index, member], ...]}, amounts as decimal strings (Lua numbers are doubles:
# HINCRBY gets the exact 64-bit text). One argument rather than one per field and amount: the
# client's packing of several hundred arguments per event was most of the ledger's CPU. Key
# indexes are 1-based after the markers. Returns 1 when applied; 0 when a marker exists, -1
# when a sum would leave 64 bits: then nothing is written (Redis does not roll a script back,
# so every check comes before the first write).
_APPLY_BATCH_LUA = """
local m = tonumber(ARGV[1])
for i = 1, m do
  if redis.call('EXISTS', KEYS[i]) == 1 then return 0 end
end
local writes = cjson.decode(ARGV[4])
for _, hash in ipairs(writes.h) do
  local key, fv = KEYS[m + hash[1]], hash[2]
  local fields = {}
  for j = 1, #fv, 2 do fields[#fields + 1] = fv[j] end
  local now = redis.call('HMGET', key, unpack(fields))
  for j = 1, #fields do
    if math.abs(tonumber(now[j] or 0)) + math.abs(tonumber(fv[2 * j])) >= 9.2e18 then
      return -1
    end
  end
end
for i = 1, m do
  redis.call('SET', KEYS[i], ARGV[3], 'EX', ARGV[2])
end
for _, hash in ipairs(writes.h) do
  local key, fv = KEYS[m + hash[1]], hash[2]
  for j = 1, #fv, 2 do
    redis.call('HINCRBY', key, fv[j], fv[j + 1])
  end
end
for _, add in ipairs(writes.s) do
  redis.call('SADD', KEYS[m + add[1]], add[2])
end
return 1
"""

Writes = tuple[dict[tuple[str, str], int], set[tuple[str, str]]]
"""(increments by (key, field), set members as (key, member)) of some events."""


_Sum = tuple[LedgerEvent, dict[Dimension, str], list[int]]
"""The first event of some rows, its members, and the amounts (by FIELDS) added up there."""


def scope_writes(events: Sequence[LedgerEvent], scope: str) -> Writes:
    """What the per-event script writes in scope for these new events, summed: their
    non-zero increments to aggregates and cube, and their member-set adds.

    Events that fall in the same rows (same tenant, agent, model, provider, lever, task type,
    workspace, project and hour) are added up first and their rows written once; the one
    row a workflow decides is summed per workflow. Amounts are never negative (forged ones
    are dead-lettered: cost_ledger/event_check.py), so a sum is zero only where every
    event's amount is, and the writes are exactly the events' one by one."""
    rows: dict[tuple[object, ...], _Sum] = {}
    flows: dict[tuple[object, ...], _Sum] = {}
    for event in events:
        metrics = event_metrics(event)
        amounts = [getattr(metrics, name) for name in FIELDS]
        members = event_members(event)
        same = (
            event.tenant, event.agent, event.model, event.provider, event.lever,
            event.task_type, event.workspace, event.project, members[Dimension.HOUR],
        )  # fmt: skip
        _sum_into(rows, same, event, members, amounts)
        if event.workflow_id:
            _sum_into(flows, (*same, event.workflow_id), event, members, amounts)
    writes: Writes = ({}, set())
    for event, members, amounts in rows.values():
        _add_rows(event, members, amounts, writes, scope, workflow=False)
    for event, members, amounts in flows.values():
        _add_rows(event, members, amounts, writes, scope, workflow=True)
    return writes


def _sum_into(
    sums: dict[tuple[object, ...], _Sum],
    key: tuple[object, ...],
    event: LedgerEvent,
    members: dict[Dimension, str],
    amounts: list[int],
) -> None:
    held = sums.get(key)
    if held is None:
        sums[key] = (event, members, amounts)
    else:
        sums[key] = (held[0], held[1], [a + b for a, b in zip(held[2], amounts, strict=True)])


def _add_rows(
    event: LedgerEvent,
    members: dict[Dimension, str],
    amounts: list[int],
    writes: Writes,
    scope: str,
    *,
    workflow: bool,
) -> None:
    """Add amounts (by FIELDS) to the rows of event in scope: its workflow's row alone
    (workflow True), or the aggregates, member sets and every other cube row."""
    increments, members_added = writes
    get = increments.get
    if not workflow:
        nonzero = [(name, amount) for name, amount in zip(FIELDS, amounts, strict=True) if amount]
        for dim in scope_dimensions(scope):
            key = keys.aggregate(scope, dim, members[dim])
            for name, amount in nonzero:
                increments[key, name] = get((key, name), 0) + amount
            if dim is not Dimension.TOTAL:
                members_added.add((keys.members(scope, dim), members[dim]))
    by_set = {  # each metric set's non-zero amounts, found once
        metric_set: [(name, amounts[i]) for name, i in indexes if amounts[i]]
        for metric_set, indexes in _SET_INDEXES.items()
    }
    for key, prefix, metric_set, _version in cube.event_entries(
        event, members[Dimension.DAY], members[Dimension.HOUR], (scope,), workflow=workflow
    ):
        for name, amount in by_set[metric_set]:
            row = (key, prefix + name)
            increments[row] = get(row, 0) + amount


def by_scope(events: Sequence[LedgerEvent]) -> dict[str, list[LedgerEvent]]:
    """The events of each scope they are applied to: by tenant, then all-tenants last."""
    groups: dict[str, list[LedgerEvent]] = {}
    for event in events:
        for scope in event_scopes(event):
            groups.setdefault(scope, []).append(event)
    return {
        scope: groups[scope] for scope in sorted(groups, key=lambda s: (s == keys.GLOBAL_SCOPE, s))
    }


class BatchApplier:
    """Applies batches of ledger events to a store's aggregates (see the module docstring)."""

    def __init__(self, store: AggregateStore) -> None:
        self._store = store
        self._script = store.redis.register_script(_APPLY_BATCH_LUA)

    async def apply(self, events: Sequence[LedgerEvent]) -> list[Applied]:
        """Apply events, each once per event id, in one script call when none was seen
        before; returns what happened to each, in order. Raises the first event's error."""
        outcomes = await self.outcomes(events)
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                raise outcome
        return [o for o in outcomes if not isinstance(o, Exception)]

    async def outcomes(self, events: Sequence[LedgerEvent]) -> list[Applied | Exception]:
        """Like apply, but an event that cannot be applied (a sum beyond 64 bits) gets its
        own error in its place, and the others are applied. Raises when Redis fails."""
        first: dict[str, int] = {}
        for i, event in enumerate(events):
            first.setdefault(event.event_id, i)
        unique = [events[i] for i in sorted(first.values())]
        done: dict[str, Applied] = {}
        failed: dict[str, Exception] = {}
        for scope, members in by_scope(unique).items():
            members = [e for e in members if e.event_id not in failed]
            if members and await self._apply_scope(scope, members):
                for event in members:
                    done[event.event_id] = Applied.NEW
                continue
            for event in members:  # one by one in this scope, each once
                try:
                    done[event.event_id] = await self._store.apply_scope(event, scope)
                except redis_errors.ResponseError as exc:
                    if not is_permanent(exc):
                        raise
                    failed[event.event_id] = exc
        out: list[Applied | Exception] = []
        for i, event in enumerate(events):
            if event.event_id in failed:
                out.append(failed[event.event_id])
            elif first[event.event_id] == i:
                out.append(done[event.event_id])  # its all-tenants scope's: applied last
            else:  # the same event again in this batch: counted once, by its first copy
                out.append(Applied.BEFORE)
        return out

    async def _apply_scope(self, scope: str, events: Sequence[LedgerEvent]) -> bool:
        """Apply events to one scope in one call (one slot); False if nothing was written."""
        increments, members_added = scope_writes(events, scope)
        by_key: dict[str, list[str]] = {}
        for (key, field), amount in increments.items():
            by_key.setdefault(key, []).extend((field, str(amount)))
        index: dict[str, int] = {}
        hashes = [[index.setdefault(key, len(index) + 1), pairs] for key, pairs in by_key.items()]
        adds = [[index.setdefault(key, len(index) + 1), m] for key, m in sorted(members_added)]
        blob = _encode({"h": hashes, "s": adds})
        args: list[str | int | bytes] = [len(events), self._store.seen_ttl_s, MARKER_VERSION, blob]
        markers = [keys.seen(event.event_id, scope) for event in events]
        applied = int(await self._script(keys=[*markers, *index], args=args))
        return applied == 1  # 0: a marker exists; -1: a sum would overflow
