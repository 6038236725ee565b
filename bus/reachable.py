"""First contact with NATS and Redis: an unreachable server is an error that names its URL
and what to check, within a few seconds, instead of a silent wait."""

from __future__ import annotations

import asyncio
import contextlib
import errno
from collections.abc import Awaitable, Callable
from typing import TypeVar
from urllib.parse import urlsplit

import nats.errors
import redis.asyncio as aioredis

T = TypeVar("T")

_HINTS = {
    "NATS": "is nats-server running there (with JetStream on, -js), and is NATS_URL right?",
    "Redis": "is redis-server running there, and is REDIS_URL right?",
    "NATS user": "check NATS_USER and NATS_PASSWORD (deploy/nats/auth.conf lists the users)",
}


class Unreachable(ConnectionError):
    """A server a command needs did not answer; carries which, where and why."""

    def __init__(self, server: str, url: str, timeout_s: float | None, cause: str) -> None:
        """timeout_s: how long it was waited for; None when it refused at once."""
        self.server = server
        self.url = url
        self.timeout_s = timeout_s
        self.cause = cause
        within = "" if timeout_s is None else f" within {timeout_s:g} s"
        super().__init__(f"cannot reach {server} at {url}{within} ({cause}): {_HINTS[server]}")


class Refused(Unreachable, nats.errors.Error):
    """The server answered but refused this client (its user or password): still a
    nats.errors.Error, so code catching those keeps working."""

    def __init__(self, url: str, timeout_s: float, cause: str) -> None:
        Unreachable.__init__(self, "NATS user", url, timeout_s, cause)
        self.args = (f"NATS at {url} refused the connection ({cause}): {_HINTS['NATS user']}",)

    def __str__(self) -> str:
        return str(self.args[0])


REFUSED_GRACE_S = 1.0
"""How long nothing may listen at any server of a NATS URL before a first contact gives up
(a server still starting has this long to open its port); a port that accepts is waited for
until the connect timeout."""


class _NothingListens(Exception):
    """No server of the URL accepted a TCP connection for REFUSED_GRACE_S."""


async def reach_nats(
    url: str,
    connect: Callable[[], Awaitable[T]],
    timeout_s: float,
    *,
    give_up: Callable[[], Awaitable[object]] | None = None,
) -> T:
    """Await connect() for at most timeout_s, or REFUSED_GRACE_S when nothing listens at
    the URL (nats-py would retry a refused connection until the timeout); Unreachable
    (after give_up()) if it fails."""
    try:
        async with asyncio.timeout(timeout_s):
            return await _unless_refused(url, connect)
    except Exception as exc:
        if give_up is not None:
            with contextlib.suppress(Exception):
                await give_up()
        if isinstance(exc, Unreachable):
            raise
        if isinstance(exc, nats.errors.Error) and "authorization" in str(exc).lower():
            raise Refused(redact_url(url), timeout_s, _cause(exc)) from exc
        if isinstance(exc, _NothingListens):
            cause = "connection refused: nothing listens there"
        elif not isinstance(exc, TimeoutError):
            cause = _cause(exc)
        elif await _anyone_listens(url):
            cause = "no answer"
        else:  # nats-py retries a refused connection until the timeout: say what it met
            cause = "connection refused: nothing listens there"
        waited = REFUSED_GRACE_S if isinstance(exc, _NothingListens) else timeout_s
        raise Unreachable("NATS", redact_url(url), waited, cause) from exc


async def _unless_refused(url: str, connect: Callable[[], Awaitable[T]]) -> T:
    """connect()'s result; _NothingListens (connect cancelled) once no server of url has
    accepted a TCP connection for REFUSED_GRACE_S."""
    connecting = asyncio.ensure_future(connect())
    watching = asyncio.ensure_future(_refused(url))
    try:
        await asyncio.wait({connecting, watching}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (connecting, watching):
            if not task.done():
                task.cancel()
        await asyncio.gather(connecting, watching, return_exceptions=True)
    if connecting.done() and not connecting.cancelled() and connecting.exception() is None:
        return connecting.result()
    if watching.done() and not watching.cancelled() and watching.exception() is None:
        raise _NothingListens(url)
    return connecting.result()  # connect's own error (or the cancellation of this call)


async def _refused(url: str) -> None:
    """Return once nothing has listened at url for REFUSED_GRACE_S; never while anything does."""
    deadline = asyncio.get_running_loop().time() + REFUSED_GRACE_S
    while True:
        if await _anyone_listens(url, timeout_s=REFUSED_GRACE_S / 4):
            await asyncio.Event().wait()  # someone listens: connect() decides, or the timeout
        if asyncio.get_running_loop().time() >= deadline:
            return
        await asyncio.sleep(REFUSED_GRACE_S / 4)


async def _anyone_listens(url: str, timeout_s: float = 1.0) -> bool:
    """Whether any server of a NATS URL (comma-separated) accepts a TCP connection."""
    for one in url.split(","):
        parts = urlsplit(one.strip() if "://" in one else f"nats://{one.strip()}")
        try:
            host, port = parts.hostname or "127.0.0.1", parts.port or 4222
            async with asyncio.timeout(timeout_s):
                _reader, writer = await asyncio.open_connection(host, port)
        except (OSError, TimeoutError, ValueError):
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True
    return False


async def reach_redis(client: aioredis.Redis, url: str, timeout_s: float) -> None:
    """PING the client's Redis; Unreachable when it does not answer within timeout_s."""
    try:
        async with asyncio.timeout(timeout_s):
            await client.ping()
    except (TimeoutError, OSError, aioredis.RedisError) as exc:
        if isinstance(exc, TimeoutError):
            raise Unreachable("Redis", redact_url(url), timeout_s, "no answer") from exc
        if f"Error {errno.ECONNREFUSED} " in str(exc):  # redis-py's words for a refusal
            # refused at once: nothing was waited for (found by a newcomer: "within 5 s")
            cause = "connection refused: nothing listens there"
            raise Unreachable("Redis", redact_url(url), None, cause) from exc
        raise Unreachable("Redis", redact_url(url), timeout_s, _cause(exc)) from exc


def _cause(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def redact_url(url: str) -> str:
    """The URL without a password or token (user:secret@host shows as user:***@host, and
    token@host, NATS's token form, as ***@host)."""
    parts = []
    for one in url.split(","):
        scheme, sep, rest = one.partition("://")
        if sep and "@" in rest:
            creds, _, host = rest.rpartition("@")
            user = creds.split(":", 1)[0]
            one = f"{scheme}://{user}:***@{host}" if ":" in creds else f"{scheme}://***@{host}"
        parts.append(one)
    return ",".join(parts)


async def open_redis(url: str, timeout_s: float) -> aioredis.Redis:
    """A client of the Redis at url, which has answered a PING (else Unreachable)."""
    client = aioredis.Redis.from_url(url, socket_connect_timeout=timeout_s)
    try:
        await reach_redis(client, url, timeout_s)
    except BaseException:
        await client.aclose()
        raise
    return client
