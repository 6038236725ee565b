"""What the optimizer's command groups share: the connection and the scope arguments."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import redis.asyncio as aioredis
from nats.aio.client import Client as NatsClient

from bus.cli_nats import connect_cli
from bus.reachable import open_redis
from bus.settings import Settings
from bus.streams import ensure_streams


@dataclass(kw_only=True)
class Conn:
    """A command's connections to the running deployment."""

    nc: NatsClient
    redis: aioredis.Redis


@asynccontextmanager
async def connect(settings: Settings) -> AsyncIterator[Conn]:
    """Connect to NATS_URL and REDIS_URL (the streams declared), and close both after."""
    assert settings.nats_url is not None and settings.redis_url is not None
    nc = await connect_cli(settings)
    client = await open_redis(settings.redis_url, settings.connect_timeout_s)
    try:
        await ensure_streams(nc.jetstream(), settings)
        yield Conn(nc=nc, redis=client)
    finally:
        await client.aclose()
        await nc.close()


def subcommand(args: argparse.Namespace) -> str:
    """The subcommand of a command group ("list" of `flags list`)."""
    return str(getattr(args, f"{args.command}_command", ""))
