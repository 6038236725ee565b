"""The semantic cache's Redis side: entries under tenant keys, a per-tenant bound, the log.

Each entry lives under its tenant's own key with its TTL. A per-tenant sorted set, scored by
creation time, bounds the tenant's entries: the embedded Redis never evicts (ledger and
budget keys are money), so the Lua script that stores an entry deletes the oldest beyond the
bound in the same step. The same script appends the entry's vector and metadata (not its
answer) to one stream, the log, that replicas read to keep their indexes in step.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from router.semantic import keys, records

# KEYS[1] entry, KEYS[2] tenant index, KEYS[3] log. ARGV: entry value, ttl ms, created ms,
# entry id, max entries, log record, log max length, entry key prefix, longest ttl ms.
# Returns how many old entries the bound deleted.
_PUT_LUA = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', tonumber(ARGV[3]) - tonumber(ARGV[9]))
local excess = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[5])
if excess > 0 then
  local gone = redis.call('ZPOPMIN', KEYS[2], excess)
  for i = 1, #gone, 2 do
    redis.call('DEL', ARGV[8] .. gone[i])
  end
else
  excess = 0
end
redis.call('PEXPIRE', KEYS[2], ARGV[9])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[7], '*', 'e', ARGV[6])
return excess
"""


class EntryStore:
    """Reads and writes semantic entries and the log in Redis."""

    def __init__(
        self, redis: aioredis.Redis, *, max_entries: int, log_max_entries: int, longest_ttl_s: int
    ) -> None:
        self._redis = redis
        self._max_entries = max_entries
        self._log_max = log_max_entries
        self._longest_ttl_ms = longest_ttl_s * 1000
        self._put = redis.register_script(_PUT_LUA)

    async def put(self, entry: records.StoredEntry, ttl_s: int) -> int:
        """Store entry for ttl_s and log it; returns how many old entries the bound deleted."""
        record = entry.record
        evicted = await self._put(
            keys=[keys.entry(record.tenant, record.entry_id), keys.tenant_index(record.tenant),
                  keys.LOG],
            args=[records.encode(entry), ttl_s * 1000, record.created_ms, record.entry_id,
                  self._max_entries, records.encode(record), self._log_max,
                  keys.entry_prefix(record.tenant), self._longest_ttl_ms],
        )  # fmt: skip
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
