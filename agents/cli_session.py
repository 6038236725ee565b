"""A command's session: the deployment at NATS_URL (and REDIS_URL), or a stack started
embedded in this process for the command (passed in: agents/ does not import the stack)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # imported when a command runs: --help stays quick
    import redis.asyncio as aioredis
    from faststream.nats import NatsBroker

    from bus.settings import Settings
    from bus.stopping import Stopping
    from cost_ledger.aggregates import AggregateStore


class Running(Protocol):
    """A started stack, as much of it as these commands use."""

    broker: NatsBroker
    simulated: bool
    redis: aioredis.Redis
    stopping: Stopping

    async def stop(self) -> None:
        """Stop it and every server it started."""
        ...


Start = Callable[["Settings"], Awaitable[Running]]
"""What starts the embedded stack when NATS_URL is unset (flipsync.stack.start_stack)."""


@dataclass(frozen=True, kw_only=True)
class Session:
    """What a command works with: the broker, whether the provider is simulated, and the
    ledger's aggregates when a Redis is at hand (embedded, or REDIS_URL)."""

    broker: NatsBroker
    simulated: bool
    aggregates: AggregateStore | None
    stopping: Stopping | None = None
    """The embedded stack's stop signal (its agents give way when it is set)."""


@contextlib.asynccontextmanager
async def connected(settings: Settings, start: Start) -> AsyncIterator[Session]:
    """A session on the deployment at NATS_URL (and REDIS_URL), else on an embedded stack."""
    from bus.broker import make_broker, stop_broker
    from bus.reachable import open_redis, reach_nats
    from bus.streams import ensure_streams
    from cost_ledger.aggregates import AggregateStore

    if settings.nats_url is None:
        stack = await start(settings)
        try:
            yield Session(
                broker=stack.broker,
                simulated=stack.simulated,
                aggregates=AggregateStore(stack.redis),
                stopping=stack.stopping,
            )
        finally:
            await stack.stop()
        return
    broker = make_broker(settings.nats_url, client_name="flipsync-cli")
    await reach_nats(
        settings.nats_url, broker.connect, settings.connect_timeout_s, give_up=broker.stop
    )
    client: aioredis.Redis | None = None
    try:
        if settings.redis_url is not None:
            client = await open_redis(settings.redis_url, settings.connect_timeout_s)
        await ensure_streams(broker.connection.jetstream(), settings)
        aggregates = AggregateStore(client) if client is not None else None
        yield Session(broker=broker, simulated=False, aggregates=aggregates)
    finally:
        if client is not None:
            await client.aclose()
        await stop_broker(broker)
