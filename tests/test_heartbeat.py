"""bus.heartbeat: one task per loop beats every registered lease on time, a stuck beat holds
up no other, and in-progress acks through it keep a real JetStream message from being
redelivered while it is worked on."""

from __future__ import annotations

import asyncio
import uuid

import nats
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, StreamConfig
from nats.js.client import JetStreamContext

from bus.embedded import EmbeddedNats
from bus.heartbeat import beating, heartbeat
from tests.helpers import eventually


async def test_beats_repeat_while_registered_and_stop_after() -> None:
    """The first beat comes after every_s, then one every every_s; none after the block.
    Beats are timed on the loop's clock, so a stalled loop (a loaded CI machine) makes them
    late, never early: the test waits for them instead of counting them in a fixed time."""
    every_s = 0.05
    loop = asyncio.get_running_loop()
    beat_times: list[float] = []

    async def beat() -> None:
        beat_times.append(loop.time())

    async def three_beats() -> bool:
        return len(beat_times) >= 3

    async with beating(every_s, beat):
        start = loop.time()
        await asyncio.sleep(0.02)
        assert beat_times == []
        await eventually(three_beats, timeout_s=5.0)
    # A beat already started when the block ends may finish: let it, then none may follow.
    await asyncio.sleep(0)
    seen = len(beat_times)
    # Beat n runs no sooner than n intervals after registering (each is due every_s after the
    # previous one ran; a beat may itself run late, so gaps between two are not bounded).
    slack = 0.005  # loop.time() vs timer resolution
    since = [t - start for t in beat_times]
    assert all(s >= n * every_s - slack for n, s in enumerate(since, 1)), since
    await asyncio.sleep(4 * every_s)
    assert len(beat_times) == seen
    assert len(heartbeat()) == 0


async def test_a_stuck_or_failing_beat_holds_up_no_other() -> None:
    """A beat that never returns and one that raises do not stop a third from beating, and
    a shorter interval registered after a longer one is still beaten on time."""
    count = 0
    never = asyncio.Event()

    async def stuck() -> None:
        await never.wait()

    async def failing() -> None:
        raise RuntimeError("redis away")

    async def counted() -> None:
        nonlocal count
        count += 1

    async def three_counted() -> bool:
        return count >= 3

    async with beating(60.0, counted):  # alone: the loop's wake is a minute away
        await asyncio.sleep(0.01)
        async with beating(0.04, counted), beating(0.03, stuck), beating(0.03, failing):
            # The wake moved earlier for the shorter intervals: three beats of the 0.04 s one
            # come within 5 s even on a stalled loop, where a wake left at 60 s has none.
            await eventually(three_counted, timeout_s=5.0)
    never.set()


async def test_in_progress_acks_keep_a_message_from_redelivery(nats_server: EmbeddedNats) -> None:
    """ack_wait 2 s, a message held 5 s with a beat every 0.5 s: JetStream never sends it again;
    a second message held as long without beats is redelivered."""
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    name = f"hb{uuid.uuid4().hex[:8]}"
    try:
        await js.add_stream(StreamConfig(name=name, subjects=[f"{name}.>"]))
        await js.publish(f"{name}.a", b"beaten")
        sub = await js.pull_subscribe(
            f"{name}.>", durable="w", config=ConsumerConfig(ack_wait=2.0, max_deliver=5)
        )
        [msg] = await sub.fetch(1, timeout=5)
        async with beating(0.5, msg.in_progress):
            again = await _fetch_one(sub, 5.0)
        assert again is None  # not redelivered while beaten
        await msg.ack()

        await js.publish(f"{name}.b", b"silent")
        [quiet] = await sub.fetch(1, timeout=5)
        again = await _fetch_one(sub, 5.0)
        assert again is not None and again.data == b"silent"
        assert again.metadata.num_delivered == 2
        await again.ack()
    finally:
        await js.delete_stream(name)
        await nc.close()


async def _fetch_one(sub: JetStreamContext.PullSubscription, within_s: float) -> Msg | None:
    try:
        [msg] = await sub.fetch(1, timeout=within_s)
    except nats.errors.TimeoutError:
        return None
    return msg
