"""The semantic cache's Redis side: entries under tenant keys, a per-tenant bound, the log.

Each entry lives under its tenant's own key with its TTL. Per-tenant sorted sets, scored by
creation time, bound the tenant's entries and each task type's share of them (its quota):
the embedded Redis never evicts (ledger and budget keys are money), so the Lua script that
stores an entry deletes the oldest beyond either bound in the same step. The script touches
only the tenant's keys (one hash tag, one Redis Cluster slot); the entry's vector and
metadata (not its answer) are then appended to one stream, the log, that replicas read to
keep their indexes in step. An entry whose log append failed is simply never found.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import redis.asyncio as aioredis

from router.semantic import keys, records

# KEYS[1] entry, KEYS[2] tenant index, KEYS[3] the entry's task index, KEYS[4..] the tenant's
# other task indexes (all with the tenant's hash tag: one slot). ARGV: entry value, ttl ms,
# created ms, entry id, max entries, quota, entry key prefix, longest ttl ms. Entries older
# than the longest TTL have expired; then the task type's quota and the tenant's bound each
# delete their oldest entries (from every index). Returns how many entries were deleted.
_PUT_LUA = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local expired = tonumber(ARGV[3]) - tonumber(ARGV[8])
for k = 2, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[k], '-inf', expired)
end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
local evicted = 0
local function drop(index, limit)
  local over = redis.call('ZCARD', index) - tonumber(limit)
  if over <= 0 then
    return
  end
  local gone = redis.call('ZRANGE', index, 0, over - 1)
  for i = 1, #gone do
    redis.call('DEL', ARGV[7] .. gone[i])
    for k = 2, #KEYS do
      redis.call('ZREM', KEYS[k], gone[i])
    end
    evicted = evicted + 1
  end
end
drop(KEYS[3], ARGV[6])
drop(KEYS[2], ARGV[5])
for k = 2, #KEYS do
  redis.call('PEXPIRE', KEYS[k], ARGV[8])
end
return evicted
"""


class EntryStore:
    """Reads and writes semantic entries and the log in Redis."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        max_entries: int,
        log_max_entries: int,
        longest_ttl_s: int,
        quotas: Mapping[str, int] | None = None,
        task_types: Iterable[str] = (),
    ) -> None:
        self._redis = redis
        self._max_entries = max_entries
        self._quotas = dict(quotas or {})
        self._task_types = sorted(set(task_types) | set(self._quotas))
        self._log_max = log_max_entries
        self._longest_ttl_ms = longest_ttl_s * 1000
        self._put = redis.register_script(_PUT_LUA)

    def quota(self, task_type: str) -> int:
        """Entries a tenant keeps of one task type (the tenant's bound if it has no quota)."""
        return min(self._quotas.get(task_type, self._max_entries), self._max_entries)

    async def put(self, entry: records.StoredEntry, ttl_s: int) -> int:
        """Store entry for ttl_s and log it; returns how many old entries the bounds deleted."""
        record = entry.record
        tenant, task = record.tenant, record.task_type
        others = [keys.task_index(tenant, t) for t in self._task_types if t != task]
        evicted = await self._put(
            keys=[keys.entry(tenant, record.entry_id), keys.tenant_index(tenant),
                  keys.task_index(tenant, task), *others],
            args=[records.encode(entry), ttl_s * 1000, record.created_ms, record.entry_id,
                  self._max_entries, self.quota(task), keys.entry_prefix(tenant),
                  self._longest_ttl_ms],
        )  # fmt: skip
        await self._redis.xadd(
            keys.LOG, {"e": records.encode(record)}, maxlen=self._log_max, approximate=True
        )
        return int(evicted)

    async def read(self, tenant: str, entry_id: str) -> records.StoredEntry | None:
        """A tenant's entry, or None if it expired, was evicted or cannot be read."""
        raw = await self._redis.get(keys.entry(tenant, entry_id))
        return records.decode_entry(raw) if isinstance(raw, bytes) else None

    async def read_log(
        self, cursor: str, count: int, stream: str = keys.LOG
    ) -> list[tuple[str, bytes | None]]:
        """Up to count (message id, record) of a stream (the log) after cursor, oldest first."""
        response: Any = await self._redis.xread({stream: cursor}, count=count)
        return _log_messages(response)

    async def observe(self, observation: records.Observation) -> None:
        """Append a verified outcome to the observations stream (bounded like the log)."""
        await self._redis.xadd(
            keys.OBSERVATIONS,
            {"e": records.encode(observation)},
            maxlen=self._log_max,
            approximate=True,
        )

    async def mark_served(self, request_id: str, hit: records.ServedHit, ttl_s: int) -> None:
        """Keep a served hit for ttl_s, until a verdict on it is taken."""
        await self._redis.set(keys.served(request_id), records.encode(hit), ex=max(1, ttl_s))

    async def take_served(self, request_id: str) -> records.ServedHit | None:
        """The served hit of a request, removed (a hit is verified once), or None."""
        raw = await self._redis.getdel(keys.served(request_id))
        return records.decode_served(raw) if isinstance(raw, bytes) else None


def _log_messages(response: Any) -> list[tuple[str, bytes | None]]:
    """(message id, record) pairs of an XREAD on the log, in RESP2 or RESP3 shape."""
    streams = list(response.values()) if isinstance(response, dict) else response or []
    found: list[tuple[str, bytes | None]] = []
    for stream in streams:
        named = len(stream) == 2 and isinstance(stream[0], bytes | str)  # RESP2: [name, msgs]
        messages = stream[1] if named else stream
        for message_id, fields in messages:
            ident = message_id.decode() if isinstance(message_id, bytes) else str(message_id)
            raw = (fields or {}).get(b"e")
            found.append((ident, raw if isinstance(raw, bytes) else None))
    return found
