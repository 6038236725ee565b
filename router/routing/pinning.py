"""Session pinning: a conversation stays on the model that has been serving it.

A request that carries a ``session`` tag (a multi-turn conversation, an agent's task that
comes back several times) is pinned, per tenant, session and task type, to the model its
first routed request went to, for ``ttl_s`` after its last use (shared by every replica in
Redis). Switching model mid-conversation loses the provider's prompt cache of the history
and changes the voice of the answers; so the route stage keeps the pin while the pinned
model still takes the request and its predicted quality still reaches the floor, and
re-pins to the policy's pick once it does not (its recorded quality fell: it stopped
serving the session well).
"""

from __future__ import annotations

import hashlib

import redis.asyncio as aioredis

from bus.messages import LlmRequest
from bus.subjects import token
from router.keys import PREFIX

SESSION_TAG = "session"
DEFAULT_TTL_S = 3600


def pin_key(tenant: str, session: str, task_type: str) -> str:
    """The Redis key of one session's pin (the session id is hashed: it is caller data)."""
    digest = hashlib.blake2b(f"{session}\x00{task_type}".encode(), digest_size=12).hexdigest()
    return f"{PREFIX}pin:{token(tenant)}:{digest}"


def session_of(request: LlmRequest) -> str | None:
    """The request's session id, if it names one."""
    return request.tags.get(SESSION_TAG) or None


class SessionPins:
    """Pins in Redis: read one, set one (each with a sliding expiry)."""

    def __init__(self, redis: aioredis.Redis, ttl_s: int = DEFAULT_TTL_S) -> None:
        self._redis = redis
        self._ttl_s = ttl_s

    async def get(self, request: LlmRequest, session: str) -> str | None:
        """The model the session is pinned to, refreshing its expiry; None when unpinned."""
        raw = await self._redis.getex(
            pin_key(request.tenant, session, request.task_type), ex=self._ttl_s
        )
        if raw is None:
            return None
        return raw.decode() if isinstance(raw, bytes) else str(raw)

    async def set(self, request: LlmRequest, session: str, model: str) -> None:
        """Pin the session to a model."""
        key = pin_key(request.tenant, session, request.task_type)
        await self._redis.set(key, model, ex=self._ttl_s)
