"""The embedded launchers start real servers, and stop them without leaving a process."""

from __future__ import annotations

import os

import nats
import pytest
import redis.asyncio as aioredis

from bus.embedded import EmbeddedNats, EmbeddedRedis
from bus.settings import Settings


async def test_nats_server_has_jetstream_and_stops_cleanly() -> None:
    server = EmbeddedNats()
    await server.start()
    pid = server.pid
    assert pid is not None
    nc = await nats.connect(server.url)
    js = nc.jetstream()
    info = await js.account_info()
    assert info.limits is not None
    await nc.close()
    data_dir = server.data_dir
    await server.stop()
    assert not data_dir.exists()
    assert not _alive(pid)


async def test_redis_server_answers_and_stops_cleanly() -> None:
    server = EmbeddedRedis()
    await server.start()
    pid = server.pid
    assert pid is not None
    client = aioredis.Redis.from_url(server.url)
    assert await client.ping()
    assert await client.eval("return 41 + 1", 0) == 42  # Lua scripting, which budgets need
    await client.aclose()
    await server.stop()
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); its state in /proc says it is gone.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"


def test_empty_environment_variables_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "")
    monkeypatch.setenv("OPENAI_BASE_URL", "")
    monkeypatch.setenv("NATS_URL", "")
    settings = Settings()
    assert settings.nats_url is None
    assert not settings.real_provider  # so the simulated provider runs
