"""A durable consumer whose fetch times out stays quiet and keeps consuming.

FastStream 0.7's pull subscriber expects nats-py's TimeoutError from a fetch that got
nothing, but a fetch of more than one message raises asyncio's when the server is slow to
answer (a busy start, a stalled node): FastStream's supervisor then logged a traceback and
restarted the consumer's task. bus.consumers fetches one message at a time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import uuid

import pytest
from faststream.nats import NatsRouter
from nats.js.api import StreamConfig

from bus.broker import make_broker
from bus.consumers import Incoming, durable_consumer, message
from bus.embedded import EmbeddedNats
from bus.logs import BROKER_LOGGER
from bus.settings import Settings


async def test_a_consumer_whose_fetch_times_out_logs_nothing_and_still_consumes(
    own_nats: EmbeddedNats, caplog: pytest.LogCaptureFixture
) -> None:
    nats_server = own_nats
    name = f"idle{uuid.uuid4().hex[:8]}"
    got: asyncio.Queue[bytes] = asyncio.Queue()

    async def handle(incoming: Incoming) -> None:
        await got.put(message(incoming).body)

    router = NatsRouter()
    durable_consumer(router, handle, subject=f"{name}.in", stream=name, durable=name,
                     settings=Settings(), workers=4)  # fmt: skip
    broker = make_broker(nats_server.url, routers=[router])
    await broker.connect()
    js = broker.connection.jetstream()
    await js.add_stream(StreamConfig(name=name, subjects=[f"{name}.>"]))
    caplog.set_level(logging.INFO, logger=BROKER_LOGGER)
    caplog.set_level(logging.INFO, logger="faststream")
    await broker.start()
    try:
        await asyncio.sleep(1.5)
        pid = nats_server.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)  # the server stalls: fetches in flight time out
        try:
            await asyncio.sleep(2.5)
        finally:
            os.kill(pid, signal.SIGCONT)
        await asyncio.sleep(1.5)
        complaints = [r for r in caplog.records if r.levelno >= logging.WARNING]
        restarts = [r for r in caplog.records if "is being executed" in r.getMessage()]
        assert not complaints, [r.getMessage() for r in complaints]
        assert not restarts, [r.getMessage() for r in restarts]
        await js.publish(f"{name}.in", b"after a quiet while")
        assert await asyncio.wait_for(got.get(), 10) == b"after a quiet while"
    finally:
        await js.delete_stream(name)
        await broker.stop()
