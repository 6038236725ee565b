"""Starting a stack that fails half-way leaves nothing open."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis

from bus.embedded import EmbeddedNats, EmbeddedRedis
from bus.settings import Settings
from flipsync import stack as stack_module
from flipsync.stack import start_stack
from router.providers.registry import ProviderRegistry


async def test_a_failed_start_closes_the_providers_and_redis_it_opened(
    nats_server: EmbeddedNats, redis_server: EmbeddedRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: dict[str, Any] = {}
    real_start_providers = stack_module.start_providers  # type: ignore[attr-defined]
    real_from_pool = aioredis.Redis.from_pool

    async def spied_providers(*args: Any, **kwargs: Any) -> ProviderRegistry:
        opened["registry"] = await real_start_providers(*args, **kwargs)
        return opened["registry"]  # type: ignore[no-any-return]

    def spied_pool(pool: Any) -> aioredis.Redis:
        client = real_from_pool(pool)
        real_aclose = client.aclose

        async def aclose(*args: Any) -> None:
            opened["redis_closed"] = True
            await real_aclose(*args)

        monkeypatch.setattr(client, "aclose", aclose)
        return client

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("composition failed")

    monkeypatch.setattr(stack_module, "start_providers", spied_providers)
    monkeypatch.setattr(aioredis.Redis, "from_pool", spied_pool)
    monkeypatch.setattr(stack_module, "compose_router", broken)
    settings = Settings(nats_url=nats_server.url, redis_url=redis_server.url)
    with pytest.raises(RuntimeError, match="composition failed"):
        await start_stack(settings)
    registry: ProviderRegistry = opened["registry"]
    assert registry.clients() and all(c._client.is_closed() for c in registry.clients())
    assert opened.get("redis_closed")  # the client owns its pool: that is closed too
