"""bus.pull_loop on a real nats-server: batches and single messages are handled, acked once,
nacked ones come back after their delay, a failing handler loses nothing, stop() finishes
what is in hand, and at most `workers` messages are handled at a time."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import StreamConfig
from nats.js.client import JetStreamContext
from opentelemetry import trace

from bus.acks import Verdict
from bus.durables import Durable
from bus.embedded import EmbeddedNats
from bus.pull_loop import PullLoop
from bus.settings import Settings

SETTINGS = Settings(ack_wait_s=30.0, max_deliver=5)


@dataclass
class Stream:
    """A stream of its own for one test, with a durable name to read it by."""

    nc: Client
    js: JetStreamContext
    where: Durable

    async def publish(self, *bodies: bytes) -> None:
        for body in bodies:
            await self.js.publish(f"{self.where.stream}.x", body)

    async def pending(self) -> int:
        """Messages not yet acked (delivered and waiting, or never delivered)."""
        info = await self.js.consumer_info(self.where.stream, self.where.durable)
        return int(info.num_ack_pending or 0) + int(info.num_pending or 0)

    async def pull_stands(self) -> bool:
        """A pull request waits on the server for messages to come."""
        info = await self.js.consumer_info(self.where.stream, self.where.durable)
        return bool(info.num_waiting)


@pytest.fixture
async def stream(nats_server: EmbeddedNats) -> AsyncIterator[Stream]:
    nc: Client = await nats.connect(nats_server.url)
    js = nc.jetstream()
    name = f"pl{uuid.uuid4().hex[:8]}"
    await js.add_stream(StreamConfig(name=name, subjects=[f"{name}.>"]))
    yield Stream(nc, js, Durable(f"{name}.>", name, "d"))
    await js.delete_stream(name)
    await nc.close()


def loop(stream: Stream, **handlers: object) -> PullLoop:
    return PullLoop(stream.where, SETTINGS, tracer=trace.get_tracer("test"), **handlers)  # type: ignore[arg-type]


async def until(check: Callable[[], Awaitable[bool]]) -> None:
    async with asyncio.timeout(15.0):
        while not await check():  # noqa: ASYNC110 (polling the server's consumer state)
            await asyncio.sleep(0.02)


async def test_a_batch_goes_to_one_call_and_each_verdict_is_kept(stream: Stream) -> None:
    """Acked messages are done; a nacked one comes back once, after its delay."""
    seen: list[tuple[bytes, int]] = []
    calls: list[int] = []

    async def on_batch(msgs: Sequence[Msg]) -> list[Verdict]:
        calls.append(len(msgs))
        seen.extend((m.data, m.metadata.num_delivered) for m in msgs)
        return [0.3 if m.data == b"again" and m.metadata.num_delivered == 1 else None for m in msgs]

    await stream.publish(b"a", b"b", b"again", b"c")
    consumer = loop(stream, on_batch=on_batch, fetch=16)
    await consumer.start(stream.nc)
    try:
        await until(lambda: _done(stream, seen, 5))
    finally:
        await consumer.stop()
    assert sorted(seen) == [(b"a", 1), (b"again", 1), (b"again", 2), (b"b", 1), (b"c", 1)]
    assert calls[0] > 1  # the first fetch brought several messages to one call
    assert await stream.pending() == 0


async def _done(stream: Stream, seen: list[tuple[bytes, int]], n: int) -> bool:
    return len(seen) >= n and await stream.pending() == 0


async def test_a_raising_handler_loses_nothing(stream: Stream) -> None:
    """A batch handler that raises has every message redelivered; one message's handler
    that raises has that message redelivered; neither ends the loop."""
    tries: dict[bytes, int] = {}

    async def on_batch(msgs: Sequence[Msg]) -> list[Verdict]:
        for m in msgs:
            tries[m.data] = tries.get(m.data, 0) + 1
        if any(tries[m.data] == 1 for m in msgs):
            raise RuntimeError("first try fails")
        return [None] * len(msgs)

    await stream.publish(b"x", b"y")
    consumer = loop(stream, on_batch=on_batch)
    await consumer.start(stream.nc)
    try:
        await until(lambda: _all_acked(stream, tries, {b"x", b"y"}))
    finally:
        await consumer.stop()
    assert tries == {b"x": 2, b"y": 2}


async def _all_acked(stream: Stream, tries: dict[bytes, int], want: set[bytes]) -> bool:
    return set(tries) == want and await stream.pending() == 0


async def test_messages_run_at_most_workers_at_a_time_and_failures_come_back(
    stream: Stream,
) -> None:
    running = 0
    most = 0
    done: list[bytes] = []

    async def on_message(msg: Msg) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            await asyncio.sleep(0.05)
            if msg.data == b"m3" and msg.metadata.num_delivered == 1:
                raise ConnectionError("Redis away")
            done.append(msg.data)
        finally:
            running -= 1

    bodies = [f"m{i}".encode() for i in range(12)]
    await stream.publish(*bodies)
    consumer = loop(stream, on_message=on_message, workers=3, fetch=8)
    await consumer.start(stream.nc)
    try:
        await until(lambda: _finished(stream, done, 12))
    finally:
        await consumer.stop()
    assert sorted(done) == sorted(bodies)  # m3 too, on its second delivery
    assert 1 < most <= 3


async def _finished(stream: Stream, done: list[bytes], n: int) -> bool:
    return len(done) >= n and await stream.pending() == 0


async def test_stop_finishes_and_acks_the_batch_in_hand(stream: Stream) -> None:
    started = asyncio.Event()
    finished: list[int] = []

    async def on_batch(msgs: Sequence[Msg]) -> list[Verdict]:
        started.set()
        await asyncio.sleep(0.5)
        finished.append(len(msgs))
        return [None] * len(msgs)

    await stream.publish(b"1", b"2", b"3")
    consumer = loop(stream, on_batch=on_batch)
    await consumer.start(stream.nc)
    await asyncio.wait_for(started.wait(), 10)
    await consumer.stop()  # while the batch is being handled
    assert finished  # it was let finish
    handled = sum(finished)
    await until(lambda: _pending_is(stream, 3 - handled))  # and its messages were acked


async def _pending_is(stream: Stream, n: int) -> bool:
    return await stream.pending() == n


async def test_a_message_at_a_quiet_moment_is_not_held_for_company(stream: Stream) -> None:
    """With room for 64, one message published to an idle consumer is handed on as it
    arrives, not when the standing request fills or expires (EXPIRES_S, 5 s)."""
    batches: list[int] = []
    got = asyncio.Event()

    async def on_batch(msgs: Sequence[Msg]) -> list[Verdict]:
        batches.append(len(msgs))
        got.set()
        return [None] * len(msgs)

    consumer = loop(stream, on_batch=on_batch, fetch=64)
    await consumer.start(stream.nc)
    try:
        await until(stream.pull_stands)  # the pull request stands, nothing to deliver
        await stream.publish(b"alone")
        await asyncio.wait_for(got.wait(), 2.5)
    finally:
        await consumer.stop()
    assert batches == [1]


async def test_a_deleted_durable_is_made_again_without_a_storm_of_requests(
    stream: Stream,
) -> None:
    """Deleting the durable ends the standing request (409, then 503 for every new one):
    the loop neither asks again as fast as the server answers nor gives up; it makes the
    durable again and goes on."""
    seen: list[bytes] = []

    async def on_message(msg: Msg) -> None:
        seen.append(msg.data)

    consumer = loop(stream, on_message=on_message, workers=4)
    await consumer.start(stream.nc)
    pulls = 0
    publish = stream.nc.publish

    async def counting(subject: str, *args: Any, **kwargs: Any) -> None:
        nonlocal pulls
        pulls += "MSG.NEXT" in subject
        await publish(subject, *args, **kwargs)

    stream.nc.publish = counting  # type: ignore[method-assign]
    try:
        await stream.js.delete_consumer(stream.where.stream, stream.where.durable)
        await asyncio.sleep(1.0)
        assert pulls < 5  # the loop waits for its watch, not the next 503
        await stream.publish(b"later")
        await until(lambda: _seen(seen, b"later"))
    finally:
        stream.nc.publish = publish  # type: ignore[method-assign]
        await consumer.stop()


async def _seen(seen: list[bytes], body: bytes) -> bool:
    return body in seen


async def test_a_batch_handler_whose_work_was_cancelled_loses_nothing(stream: Stream) -> None:
    """A CancelledError out of the handler (a child task of its was cancelled, not the
    loop) has the batch tried again and the loop go on."""
    calls = 0
    done: list[bytes] = []

    async def on_batch(msgs: Sequence[Msg]) -> list[Verdict]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise asyncio.CancelledError
        done.extend(m.data for m in msgs)
        return [None] * len(msgs)

    consumer = loop(stream, on_batch=on_batch, fetch=8)
    await consumer.start(stream.nc)
    try:
        await stream.publish(b"first")
        await until(lambda: _called(calls))
        await stream.publish(*(str(i).encode() for i in range(20)))
        await until(lambda: _finished(stream, done, 21))
    finally:
        await consumer.stop()
    assert sorted(done) == sorted([b"first", *(str(i).encode() for i in range(20))])


async def _called(calls: int) -> bool:
    return calls > 0


async def test_a_lingering_batch_takes_what_arrives_within_its_linger(stream: Stream) -> None:
    """With a linger, events trickling in one by one go to one call rather than one each
    (at a quiet rate, a batch of one cost the ledger as much Redis work as a full one)."""
    batches: list[int] = []

    async def on_batch(msgs: Sequence[Msg]) -> list[Verdict]:
        batches.append(len(msgs))
        return [None] * len(msgs)

    # A linger of 1.5 s: the three publishes, about 0.1 s, still fall within it when the
    # test process stalls for a few hundred ms in between (a loaded machine).
    consumer = loop(stream, on_batch=on_batch, fetch=4, linger_s=1.5)
    await consumer.start(stream.nc)
    try:
        await until(stream.pull_stands)
        for i in range(3):  # 3 of a batch of 4, 50 ms apart: all within the linger
            await stream.publish(f"t{i}".encode())
            await asyncio.sleep(0.05)
        await until(lambda: _async_is(sum(batches) == 3))
        assert batches == [3]
    finally:
        await consumer.stop()


async def _async_is(value: bool) -> bool:
    return value
