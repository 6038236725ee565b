"""Shared fixtures: one real nats-server and one real redis-server per test session."""

from __future__ import annotations

import asyncio
import io
import os
import sys
import threading
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest
import redis.asyncio as aioredis
from faststream.nats import NatsBroker
from nats.aio.client import Client as NatsClient

from bus.broker import make_broker
from bus.embedded import EmbeddedNats, EmbeddedRedis
from bus.redis_client import make_redis
from bus.settings import Settings
from bus.streams import ensure_streams
from simulator.config import SimConfig
from simulator.server import SimulatedProvider

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


# What the session's event loop is waiting on, printed shortly before pytest-timeout stops a
# test: a hang in this suite is an await that never ends, and the timeout's own dump shows
# only threads (the loop idle in select), not which task waits where.
_session_loop: asyncio.AbstractEventLoop | None = None
DUMP_BEFORE_TIMEOUT_S = 10.0


@pytest.fixture(scope="session", autouse=True)
async def _remember_the_session_loop() -> AsyncIterator[None]:
    """Keep the session's event loop where the timeout watchdog can find it."""
    global _session_loop
    _session_loop = asyncio.get_running_loop()
    yield
    _session_loop = None


def _dump_tasks(item: pytest.Item) -> None:
    """Every pending task of the session loop with its stack: to the real stderr, and kept
    for the test's report (a pytest-xdist worker's stderr reaches no one)."""
    out = io.StringIO()
    loop = _session_loop
    tasks = asyncio.all_tasks(loop) if loop is not None else set()
    print(f"\n--- {item.nodeid}: near its timeout, {len(tasks)} pending tasks ---", file=out)
    for task in tasks:
        print(f"{task.get_name()}:", file=out)
        for where in _await_chain(task.get_coro()):
            print(f"  {where}", file=out)
    item.stash[_DUMPED] = out.getvalue()
    if sys.__stderr__ is not None:
        sys.__stderr__.write(out.getvalue())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failed test's report carries the task dump taken near its timeout, if any."""
    report = yield
    dumped = item.stash.get(_DUMPED, None)
    if dumped and report.failed:
        report.sections.append(("pending asyncio tasks near the timeout", dumped))
    return report


def _await_chain(coro: object) -> list[str]:
    """Where a coroutine stands, outermost first, following what each frame awaits."""
    chain: list[str] = []
    while coro is not None and len(chain) < 40:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
        frame = frame or getattr(coro, "gi_frame", None)
        if frame is not None:
            chain.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        coro = (
            getattr(coro, "cr_await", None)
            or getattr(coro, "ag_await", None)
            or getattr(coro, "gi_yieldfrom", None)
        )
    return chain


def _ask_dump(item: pytest.Item) -> None:
    """From the timer's thread: have the session loop dump its tasks, if it runs."""
    loop = _session_loop
    if loop is not None:
        loop.call_soon_threadsafe(_dump_tasks, item)


@pytest.hookimpl(tryfirst=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> None:
    """Arm a task dump before pytest-timeout's own timer (which still runs: returns None)."""
    if settings.timeout and settings.timeout > DUMP_BEFORE_TIMEOUT_S:
        # The loop is looked up when the timer fires: this hook runs before the test's
        # setup, so the session's first test arms it before the loop is known.
        timer = threading.Timer(settings.timeout - DUMP_BEFORE_TIMEOUT_S, _ask_dump, [item])
        timer.daemon = True
        timer.start()
        item.stash[_DUMP_TIMER] = timer


@pytest.hookimpl(tryfirst=True)
def pytest_timeout_cancel_timer(item: pytest.Item) -> None:
    """Disarm the task dump (pytest-timeout cancels its own timer after this)."""
    timer = item.stash.get(_DUMP_TIMER, None)
    if timer is not None:
        timer.cancel()


_DUMP_TIMER = pytest.StashKey[threading.Timer]()
_DUMPED = pytest.StashKey[str]()


@pytest.fixture(scope="session")
async def nats_server() -> AsyncIterator[EmbeddedNats]:
    """A real nats-server with JetStream on a free port, for the whole session."""
    server = EmbeddedNats()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def nc(nats_server: EmbeddedNats) -> AsyncIterator[NatsClient]:
    """A plain nats-py client of the session server."""
    client = await nats.connect(nats_server.url)
    yield client
    await client.close()


@pytest.fixture
async def own_nats() -> AsyncIterator[EmbeddedNats]:
    """A nats-server of the test's own, for a test that stalls it or whose messages must stay
    out of other tests' (the session's server is shared)."""
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


@pytest.fixture
async def broker(nats_server: EmbeddedNats) -> AsyncIterator[NatsBroker]:
    """A connected broker on the session's nats-server, with the streams in place."""
    running = make_broker(nats_server.url)
    await running.connect()
    await ensure_streams(running.connection.jetstream(), Settings())
    yield running
    await running.stop()


@pytest.fixture
async def sims() -> AsyncIterator[dict[str, SimulatedProvider]]:
    """Two named simulated providers, a and b, on their own ports (seeded alike)."""
    started = {name: SimulatedProvider(SimConfig(name=name, seed=7)) for name in ("a", "b")}
    for sim in started.values():
        await sim.start()
    yield started
    for sim in started.values():
        await sim.stop()
