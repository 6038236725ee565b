"""Slow and greedy clients on real sockets: headers or a body dribbled, headers without end,
a response nobody reads, more connections than the server keeps (bus.embedded.http_guard).

Before the guard, uvicorn kept every such connection for as long as its client liked (20 s
measured, without end in the code), took 106 MB of headers, and kept writing to a client
that read nothing. The limits here are small so that each case ends in well under a second;
the defaults are the same code with larger numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from api.app import create_app
from api.auth import ApiKeys
from api.server import ApiServer, connection_limits
from bus.broker import make_broker
from bus.embedded.http_guard import ConnectionLimits, default_max_connections
from bus.embedded.http_server import InLoopServer
from bus.settings import Settings
from flipsync.stack import Service, start_stack
from tests.helpers import eventually

LIMITS = ConnectionLimits(
    header_timeout_s=0.5,
    max_header_bytes=4096,
    body_window_s=1.0,
    body_min_bytes=100,
    write_timeout_s=0.5,
    max_connections=6,
)
WAIT_S = 10.0
"""Bound on any wait for the server: before the guard, these waits were the ones that hung."""
TENANT = f"slow{uuid.uuid4().hex[:8]}"
KEY = "sk-test-" + uuid.uuid4().hex

Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class EchoApp:
    """POST: the body's length. GET /big: 64 MiB in 64 KiB chunks. GET /hold: waits."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.requests = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        self.requests += 1
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
        if scope["path"] == "/hold":
            await self.release.wait()
        chunks = 1024 if scope["path"] == "/big" else 0
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(chunks):
            await send({"type": "http.response.body", "body": b"x" * 65536, "more_body": True})
        await send({"type": "http.response.body", "body": str(size).encode()})


@pytest.fixture
async def echo() -> AsyncIterator[tuple[InLoopServer, EchoApp]]:
    app = EchoApp()
    server = InLoopServer(app, "127.0.0.1", 0, graceful_s=1, limits=LIMITS)
    await server.start()
    yield server, app
    app.release.set()
    await server.stop()


@pytest.fixture
async def api() -> AsyncIterator[ApiServer]:
    """The API app (no NATS or Redis behind it: these requests never get that far)."""
    broker = make_broker("nats://127.0.0.1:1")
    redis = aioredis.Redis(port=1)
    app = create_app(broker, redis, Settings(), keys=ApiKeys({KEY: TENANT}))
    server = ApiServer(app, "127.0.0.1", 0, limits=LIMITS)
    await server.start()
    yield server
    await server.stop()
    await redis.aclose()


async def connect(server: InLoopServer) -> Conn:
    return await asyncio.open_connection("127.0.0.1", server.port)


async def none_open(server: InLoopServer) -> bool:
    return server.connections == 0


async def some_open(server: InLoopServer) -> bool:
    return server.connections > 0


async def held(app: EchoApp, requests: int) -> bool:
    return app.requests >= requests


async def answer(conn: Conn) -> bytes:
    """Everything the server writes until it closes the connection (then closed here too)."""
    reader, writer = conn
    data = b""
    try:
        async with asyncio.timeout(WAIT_S):
            with contextlib.suppress(ConnectionError):
                while chunk := await reader.read(65536):
                    data += chunk
    finally:
        writer.close()
    return data


async def dribble(conn: Conn, piece: bytes, every_s: float) -> None:
    """Send piece every every_s until the server closes the connection."""
    _, writer = conn
    with contextlib.suppress(ConnectionError):
        while not writer.transport.is_closing():
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(every_s)


def post(path: str, length: int, *, key: bool = True, kind: str = "application/json") -> bytes:
    auth = f"Authorization: Bearer {KEY}\r\n" if key else ""
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: {kind}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


async def test_a_silent_connection_is_closed_and_a_started_request_gets_408(
    api: ApiServer,
) -> None:
    assert await answer(await connect(api)) == b""  # a client may send on it as it closes
    conn = await connect(api)
    conn[1].write(b"GET /healthz HTTP/1.1\r\n")
    assert (await answer(conn)).startswith(b"HTTP/1.1 408 ")


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/dashboard", "/api/products"])
async def test_headers_dribbled_are_cut_off(api: ApiServer, path: str) -> None:
    conn = await connect(api)
    conn[1].write(f"GET {path} HTTP/1.1\r\nHost: x\r\n".encode())
    sender = asyncio.create_task(dribble(conn, b"X-Slow: 1\r\n", 0.05))
    assert (await answer(conn)).startswith(b"HTTP/1.1 408 ")
    await sender


async def test_headers_past_the_limit_get_431(api: ApiServer) -> None:
    conn = await connect(api)
    conn[1].write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"a" * 8000 + b"\r\n")
    assert (await answer(conn)).startswith(b"HTTP/1.1 431 ")
    conn = await connect(api)
    many = b"".join(b"X-%d: 1\r\n" % i for i in range(1000))
    conn[1].write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
    assert (await answer(conn)).startswith(b"HTTP/1.1 431 ")


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/v1/chat/completions", "application/json"),
        ("/api/products", "multipart/form-data; boundary=zz"),
    ],
)
async def test_a_body_dribbled_is_cut_off_quietly(
    api: ApiServer, path: str, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    """1 byte every 50 ms (under 100 a window): 408, and no error logged for the app's
    read that the closed connection ended (it logged a 500's traceback)."""
    conn = await connect(api)
    conn[1].write(post(path, 100_000, kind=kind) + b"--zz\r\n")
    sender = asyncio.create_task(dribble(conn, b"a", 0.05))
    with caplog.at_level(logging.INFO):
        assert (await answer(conn)).startswith(b"HTTP/1.1 408 ")
        await sender
        await eventually(lambda: none_open(api))
        await asyncio.sleep(0.05)  # the app's task, woken by the close, ends
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_slow_steady_body_and_keep_alive_requests_pass(
    echo: tuple[InLoopServer, EchoApp],
) -> None:
    server, _ = echo
    reader, writer = await connect(server)
    writer.write(post("/", 1000, key=False))
    for _ in range(10):  # 100 bytes every 0.1 s: about 1,000 a window of 1 s
        writer.write(b"b" * 100)
        await writer.drain()
        await asyncio.sleep(0.1)
    for n in (1, 2, 3):  # the same connection, each request's headers in time
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        await reader.readuntil(b"\r\n0\r\n\r\n")
        await asyncio.sleep(0.2)
        writer.write(post("/", n, key=False) + b"c" * n)
    writer.close()


async def test_a_client_that_reads_nothing_is_cut_off(
    echo: tuple[InLoopServer, EchoApp],
) -> None:
    """64 MiB to a client that never reads: the connection is aborted once writing has
    waited write_timeout_s (before: the server held it and its unsent data for ever)."""
    server, _ = echo
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.port))
    try:
        sock.send(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        await eventually(lambda: some_open(server))
        await eventually(lambda: none_open(server))
    finally:
        sock.close()


async def test_a_full_server_closes_its_longest_waiting_connection(
    echo: tuple[InLoopServer, EchoApp],
) -> None:
    server, app = echo
    idle = [await connect(server) for _ in range(LIMITS.max_connections)]
    reader, writer = await connect(server)  # one over: the first idle one goes
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200 ")
    assert await answer(idle[0]) == b""
    writer.close()
    for _, w in idle[1:]:
        w.close()
    await eventually(lambda: none_open(server))
    busy = [await connect(server) for _ in range(LIMITS.max_connections)]
    for _, w in busy:
        w.write(b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
    await eventually(lambda: held(app, 1 + LIMITS.max_connections))
    refused = await connect(server)  # every connection is busy with a request
    assert (await answer(refused)).startswith(b"HTTP/1.1 503 ")
    app.release.set()
    for r, w in busy:
        assert (await r.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200 ")
        w.close()


async def test_a_body_dribbled_after_an_early_answer_is_still_cut_off(api: ApiServer) -> None:
    """Found in review: an answer given before the body was read (the 401 of a request
    without a key, a 413 from Content-Length) stopped the body's window and started none:
    the client could then dribble the body for as long as it liked."""
    conn = await connect(api)
    conn[1].write(post("/v1/chat/completions", 100_000, key=False))
    sender = asyncio.create_task(dribble(conn, b"a", 0.05))
    data = await answer(conn)  # returns once the server closes the connection
    assert data.startswith(b"HTTP/1.1 401 "), data[:80]
    await sender
    await eventually(lambda: none_open(api))


async def test_a_client_waiting_for_100_continue_is_not_cut_off() -> None:
    """Found in review: the body's window ran while the client waited, as it should, for the
    100 Continue that uvicorn sends only when the app first reads: an app reading later than
    a window got its client cut off with a 408."""

    async def late_reader(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await asyncio.sleep(LIMITS.body_window_s * 1.5)
        size = 0
        more = True
        while more:
            message = await receive()
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(size).encode()})

    server = InLoopServer(late_reader, "127.0.0.1", 0, graceful_s=1, limits=LIMITS)
    await server.start()
    try:
        reader, writer = await connect(server)
        head = post("/", 500, key=False).replace(b"\r\n\r\n", b"\r\nExpect: 100-continue\r\n\r\n")
        writer.write(head)
        async with asyncio.timeout(WAIT_S):
            interim = await reader.readuntil(b"\r\n\r\n")
        assert interim.startswith(b"HTTP/1.1 100 "), interim
        writer.write(b"d" * 500)
        async with asyncio.timeout(WAIT_S):
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200 ")
        writer.close()
    finally:
        await server.stop()


async def test_a_stacks_api_takes_its_connection_limits_from_settings() -> None:
    """FLIPSYNC_API_* settings reach the API server a stack starts: a client still sending
    its headers after api_header_timeout_s gets 408 (the default would wait 10 s)."""
    settings = Settings(
        api_port=0,
        api_header_timeout_s=0.5,
        api_max_header_bytes=2048,
        api_body_min_bytes_per_s=50,
        api_write_timeout_s=5,
        api_max_connections=100,
    )
    assert connection_limits(settings) == ConnectionLimits(
        header_timeout_s=0.5,
        max_header_bytes=2048,
        body_window_s=10.0,
        body_min_bytes=500,
        write_timeout_s=5,
        max_connections=100,
    )
    assert connection_limits(Settings()).max_connections == default_max_connections()
    stack = await start_stack(settings, [Service.API])
    try:
        assert stack.api is not None
        started = time.monotonic()
        conn = await connect(stack.api)
        conn[1].write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        assert (await answer(conn)).startswith(b"HTTP/1.1 408")
        assert time.monotonic() - started < 5
    finally:
        await stack.stop()
