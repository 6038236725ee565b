"""Shared fixtures: one real nats-server and one real redis-server per test session."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from bus.embedded import EmbeddedNats, EmbeddedRedis
from bus.redis_client import make_redis

# Routing explores a cheaper model for a hash of the request id (3% by default); tests make
# random ids, so a test that asserts which model served would fail now and then. Every
# process the tests start reads this; the exploration tests set their share explicitly.
os.environ.setdefault("FLIPSYNC_ROUTING__EXPLORE_SHARE", "0")
# Likewise shadow evaluation asks a second model for a hash of the request id (2% by
# default), an extra provider call that tests counting calls or spend would see now and then.
os.environ.setdefault("FLIPSYNC_ROUTING__SHADOW_SHARE", "0")


def pytest_sessionstart(session: pytest.Session) -> None:
    """Build routing's static vectors before any test starts a router (once per machine:
    about 15 s on a fresh one, which a router starting inside a test's timeout would pay)."""
    from router.routing.static_embedder import load_table

    load_table()


@pytest.fixture(scope="session")
async def nats_server() -> AsyncIterator[EmbeddedNats]:
    """A real nats-server with JetStream on a free port, for the whole session."""
    server = EmbeddedNats()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="session")
async def redis_server() -> AsyncIterator[EmbeddedRedis]:
    """A real redis-server on a free port, for the whole session."""
    server = EmbeddedRedis()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def redis_client(redis_server: EmbeddedRedis) -> AsyncIterator[aioredis.Redis]:
    """A client of the session's Redis as services make it (auto-pipelined), flushed before
    each test."""
    client = make_redis(redis_server.url)
    await client.flushall()
    yield client
    await client.aclose()
