"""Request ids belong to one tenant and agent: the first to use an id owns it.

Every per-request record (reservation, settled marker, kept answer, ledger event id) is keyed
by request id, so a second tenant reusing an id would share the first one's records (or be
answered with them). This stage claims the id for its tenant and agent (Redis SET NX, kept
as long as the ledger's seen markers) and refuses a request whose id another owns, with a
malformed result telling its sender to choose another id.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from bus.messages import ErrorCode, LlmResult
from router.context import RequestContext
from router.errors import RouterError
from router.keys import request_owner
from router.pipeline import Handler

OWNER_TTL_S = 40 * 24 * 3600
"""As long as the ledger's seen markers (cost_ledger.keys.SEEN_TTL_S), keyed by request id too:
the longest a request's records live."""


class IdTakenError(RouterError):
    """The request id is owned by another tenant or agent."""

    code = ErrorCode.MALFORMED


class RequestIdStage:
    """Claims each request id for its tenant and agent; refuses ids owned by another."""

    name = "ids"

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis

    async def __call__(self, ctx: RequestContext, call_next: Handler) -> LlmResult:
        """Claim the id (or find it ours already), then call the rest."""
        request = ctx.request
        owner = f"{request.tenant}.{request.agent}"
        key = request_owner(request.id)
        if await self._redis.set(key, owner, nx=True, ex=OWNER_TTL_S):
            ctx.new_id = True
        else:
            held = await self._redis.get(key)
            if held is not None and held not in (owner, owner.encode()):
                raise IdTakenError(
                    f"request id {request.id!r} is already used by another tenant or agent; "
                    "choose a unique id (a UUID)"
                )
        return await call_next(ctx)
