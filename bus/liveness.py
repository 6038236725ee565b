"""Leases kept alive off the event loop: a busy loop must not look like a dead process.

A router holds Redis leases while it works on a request: its budget reservation, its paid
call's lease, its dedup claim. Each expires unless renewed, and an expired one means "this
process died": its room goes to other requests, its call is booked as lost at its bound, a
waiter calls again. Renewed by beats on the event loop (bus.heartbeat), a loop saturated by
a burst (a thousand requests at once on a loaded two-core machine: beats ran 3 s late) let
leases of live requests lapse, and a reservation that lapsed before its request settled let
spend pass a budget.

ThreadLiveness renews every registered lease from a thread of its own, with its own Redis
connection, in one pipeline per round (on a Redis Cluster, whose pipelines take no scripts,
each renewal alone on a small pool of threads, so a node that hangs holds up only its own
leases): it runs while the loop is busy (the GIL is handed over
every few milliseconds), and dies with the process, so a dead process's leases still lapse.
A loop that made no progress for stall_limit_s is taken as wedged: its leases are no longer
renewed, so they lapse as a dead one's would. LoopLiveness is the same interface on the loop's
heartbeat, for a component used without a running stack (a test, a command).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis
import redis.asyncio as aioredis
from redis.cluster import RedisCluster

from bus.heartbeat import heartbeat

log = logging.getLogger(__name__)

STALL_LIMIT_S = 60.0
"""A loop that ran nothing for this long is wedged: its leases are left to lapse."""
TICK_S = 0.1
"""How often the thread looks for renewals due."""
PROGRESS_EVERY_S = 1.0
"""How often the loop marks that it is running."""
CLUSTER_WORKERS = 16
"""Threads renewing on a Redis Cluster, one renewal each at a time."""


@dataclass(frozen=True, kw_only=True)
class Renewal:
    """One lease's renewal: a Lua script run with keys and args every every_s seconds; a
    reply of 0 means the lease is gone (settled, reaped, taken), and renewing stops."""

    script: str
    keys: tuple[str, ...]
    args: tuple[str | int, ...]
    every_s: float


Lost = Callable[[], None]
"""Called (on the event loop) once, when a renewal finds its lease gone."""


class Liveness(Protocol):
    """Keeps leases alive while their holders work."""

    def add(self, renewal: Renewal, on_lost: Lost | None = None) -> int:
        """Renew from now on (the first renewal every_s from now); returns a key for remove."""
        ...

    def remove(self, key: int) -> None:
        """Stop renewing (the holder settled, released or finished)."""
        ...


@dataclass(kw_only=True)
class _Held:
    renewal: Renewal
    due: float
    on_lost: Lost | None
    loop: asyncio.AbstractEventLoop | None


class LoopLiveness:
    """Renewals as beats of the running loop's heartbeat, through the loop's own client."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._beats: dict[int, tuple[float, int]] = {}
        self._ids = itertools.count()

    def add(self, renewal: Renewal, on_lost: Lost | None = None) -> int:
        """Register the renewal as a beat."""
        key = next(self._ids)

        async def beat() -> None:
            if key not in self._beats:
                return
            reply = await self._client.eval(
                renewal.script, len(renewal.keys), *renewal.keys, *renewal.args
            )
            if not reply and key in self._beats:
                self.remove(key)
                if on_lost is not None:
                    on_lost()

        self._beats[key] = heartbeat().add(renewal.every_s, beat)
        return key

    def remove(self, key: int) -> None:
        """Drop the beat."""
        handle = self._beats.pop(key, None)
        if handle is not None:
            heartbeat().remove(handle)


@dataclass(kw_only=True)
class ThreadLiveness:
    """Renewals from a daemon thread with its own (synchronous) Redis client."""

    client: redis.Redis
    stall_limit_s: float = STALL_LIMIT_S
    _held: dict[int, _Held] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=itertools.count)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _progress: float = field(default_factory=time.monotonic)
    _marker: asyncio.TimerHandle | None = None
    _failing: bool = False
    _pool: ThreadPoolExecutor | None = None
    _inflight: set[int] = field(default_factory=set)
    renewed: int = 0
    """Renewals sent so far (for tests and operators)."""

    def start(self) -> None:
        """Start the thread, and the running loop's progress marks."""
        self._mark(asyncio.get_running_loop())
        self._thread = threading.Thread(target=self._run, name="flipsync-liveness", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        """Stop renewing and close the client (leases still held will lapse)."""
        self._stop.set()
        if self._marker is not None:
            self._marker.cancel()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 5.0)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()

    def add(self, renewal: Renewal, on_lost: Lost | None = None) -> int:
        """Register the renewal (GIL-atomic dict insert; the thread copies the dict)."""
        key = next(self._ids)
        loop = asyncio.get_running_loop() if on_lost is not None else None
        self._held[key] = _Held(
            renewal=renewal, due=time.monotonic() + renewal.every_s, on_lost=on_lost, loop=loop
        )
        return key

    def remove(self, key: int) -> None:
        """Unregister the renewal."""
        self._held.pop(key, None)

    def _mark(self, loop: asyncio.AbstractEventLoop) -> None:
        self._progress = time.monotonic()
        if not self._stop.is_set():
            self._marker = loop.call_later(PROGRESS_EVERY_S, self._mark, loop)

    def _run(self) -> None:
        while not self._stop.wait(TICK_S):
            now = time.monotonic()
            if now - self._progress > self.stall_limit_s:
                continue  # a wedged loop: its leases lapse as a dead process's would
            due = [(k, h) for k, h in self._held.copy().items() if h.due <= now]
            try:
                if not due:
                    continue
                if isinstance(self.client, RedisCluster):
                    self._renew_apart(due, now)
                else:
                    self._renew_together(due, now)
            except Exception:  # never let the thread die: the next round tries again
                if not self._failing:
                    log.warning("renewing %d leases failed", len(due), exc_info=True)
                self._failing = True

    def _renew_together(self, due: list[tuple[int, _Held]], now: float) -> None:
        """One server: every renewal due in one pipeline."""
        pipe = self.client.pipeline(transaction=False)
        for _, held in due:
            r = held.renewal
            pipe.eval(r.script, len(r.keys), *r.keys, *r.args)
        try:
            replies: list[Any] = pipe.execute(raise_on_error=False)
        except Exception as exc:  # Redis away: the next round tries again
            if not self._failing:
                log.warning("could not renew %d leases: %s", len(due), exc)
            self._failing = True
            return
        self._failing = False
        for (key, held), reply in zip(due, replies, strict=True):
            held.due = now + held.renewal.every_s
            self._answered(key, held, reply)

    def _renew_apart(self, due: list[tuple[int, _Held]], now: float) -> None:
        """A Redis Cluster: its pipelines take no scripts, so each renewal is its own call,
        on a pool of threads, so that a node that hangs holds up only its own leases."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(CLUSTER_WORKERS, thread_name_prefix="liveness")
        for key, held in due:
            if key in self._inflight:
                continue  # its last renewal is still waiting on its node
            self._inflight.add(key)
            held.due = now + held.renewal.every_s
            self._pool.submit(self._renew_one, key, held)

    def _renew_one(self, key: int, held: _Held) -> None:
        r = held.renewal
        try:
            reply: Any = self.client.eval(r.script, len(r.keys), *r.keys, *r.args)
        except Exception as exc:  # a node away or moving: the next round tries again
            reply = exc
        finally:
            self._inflight.discard(key)
        self._answered(key, held, reply)

    def _answered(self, key: int, held: _Held, reply: Any) -> None:
        """A renewal's reply: 0 means its lease is gone (renewing stops, its holder is told)."""
        if isinstance(reply, Exception):
            return
        self.renewed += 1
        if reply:
            return
        if self._held.pop(key, None) is not None and held.on_lost and held.loop:
            with contextlib.suppress(RuntimeError):  # its loop closed meanwhile
                held.loop.call_soon_threadsafe(held.on_lost)


def thread_liveness(url: str, *, cluster: bool = False) -> ThreadLiveness:
    """A ThreadLiveness on its own connection to url (not started)."""
    client: redis.Redis
    if cluster:
        client = RedisCluster.from_url(url, socket_timeout=5.0)  # type: ignore[assignment]
    else:
        client = redis.Redis.from_url(url, socket_timeout=5.0, socket_connect_timeout=5.0)
    return ThreadLiveness(client=client)
