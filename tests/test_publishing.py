"""Publishing into a stream is patient while the stream has no leader (bus.publishing), and a
requester finds a result its subscription missed in the results stream (bus.llm_client)."""

from __future__ import annotations

import asyncio
import uuid

import nats.js.errors
import pytest
from nats.js.api import StreamConfig

from bus import subjects
from bus.broker import make_broker
from bus.codec import encode
from bus.embedded import EmbeddedNats
from bus.llm_client import LlmClient
from bus.messages import ErrorCode, LlmResult, Status, Usage
from bus.publishing import publish
from bus.settings import Settings
from bus.streams import ensure_streams
from tests.helpers import make_request


async def test_a_publish_waits_for_a_stream_that_has_no_leader_yet(
    nats_server: EmbeddedNats,
) -> None:
    broker = make_broker(nats_server.url)
    await broker.connect()
    name = f"P{uuid.uuid4().hex[:8]}"
    js = broker.connection.jetstream()
    try:
        # Nobody answers for the subject yet: what a stream electing a leader looks like.
        publishing = asyncio.create_task(
            publish(broker, b"kept", f"{name}.x", stream=name, msg_id="one")
        )
        await asyncio.sleep(0.5)
        assert not publishing.done()
        await js.add_stream(StreamConfig(name=name, subjects=[f"{name}.>"]))
        ack = await asyncio.wait_for(publishing, 10)
        assert ack is not None and not ack.duplicate
        again = await publish(broker, b"kept", f"{name}.x", stream=name, msg_id="one")
        assert again is not None and again.duplicate  # a retry is stored once
        assert (await js.stream_info(name)).state.messages == 1
    finally:
        await js.delete_stream(name)
        await broker.stop()


async def test_a_publish_to_a_stream_that_never_comes_gives_up_with_the_error(
    nats_server: EmbeddedNats, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bus.publishing.ACK_TIMEOUT_S", 1.0)
    broker = make_broker(nats_server.url)
    await broker.connect()
    try:
        with pytest.raises(nats.js.errors.NoStreamResponseError):
            await publish(broker, b"x", "nowhere.at.all", stream="NOWHERE", msg_id="n")
    finally:
        await broker.stop()


async def test_a_requester_finds_a_result_its_subscription_never_saw(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("bus.llm_client.POLL_S", 0.3)
    server = EmbeddedNats()
    await server.start()
    broker = make_broker(server.url)
    await broker.connect()
    js = broker.connection.jetstream()
    await ensure_streams(js, Settings(nats_url=server.url))
    request = make_request(tenant="t1", agent="listing", text="Write a title.")
    result = LlmResult(request_id=request.id, tenant="t1", agent="listing", status=Status.OK,
                       content="A title", model="m", usage=Usage())  # fmt: skip
    subject = subjects.llm_result(request.tenant, request.agent, request.id)
    # A subscription that hears nothing, as one does while its connection moves to another
    # node; the result reaches only the stream.
    deaf = await broker.connection.subscribe(f"deaf.{uuid.uuid4().hex}")
    try:
        await js.publish(subject, encode(result), stream=subjects.STREAM_RESULTS)
        got = await LlmClient(broker)._wait(deaf, request, subject, timeout_s=5)
        assert got.status is Status.OK and got.content == "A title"
        missing = make_request(tenant="t1", agent="listing", text="Never answered.")
        late = await LlmClient(broker)._wait(
            deaf, missing, subjects.llm_result("t1", "listing", missing.id), timeout_s=0.7
        )
        assert late.error_code is ErrorCode.DEADLINE_EXCEEDED
        assert late.reason == "no result within 0.7s"
    finally:
        await broker.stop()
        await server.stop()
