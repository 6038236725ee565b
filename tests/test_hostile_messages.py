"""No drop without a trace: deep, badly named and colliding requests get a dead letter or a
result, and nothing another tenant sends can silence a request."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import msgspec
import nats
import pytest
from nats.aio.client import Client

from bus import subjects
from bus.codec import decode, encode, peek_ids
from bus.errors import WireError
from bus.llm_client import LlmClient
from bus.messages import DeadLetter, ErrorCode, LlmRequest, LlmResult, Status
from bus.publishing import publish, scoped_msg_id
from flipsync.stack import Stack
from tests.helpers import make_request, router_stack


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Stack]:
    """Provider, router and ledger, embedded."""
    async with router_stack(provider_max_retries=0) as running:
        yield running


def _deep(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


def test_tokens_are_matched_whole() -> None:
    with pytest.raises(ValueError):
        subjects.token("abc\n")
    assert subjects.token("abc-1_2") == "abc-1_2"


def test_deep_documents_are_malformed_not_a_crash() -> None:
    body = b'{"id":"r1","tenant":"t1","agent":"a","messages":[],"tools":' + _deep(3000) + b"}"
    with pytest.raises(WireError) as caught:
        decode(body, LlmRequest)
    assert caught.value.code is ErrorCode.MALFORMED and "deeper" in caught.value.reason
    assert peek_ids(body) == ("r1", "", "")
    with pytest.raises(WireError):  # deep, but under the interpreter's recursion limit
        decode(body.replace(_deep(3000), _deep(200)), LlmRequest)


async def _publish(stack: Stack, subject: str, body: bytes) -> tuple[DeadLetter, Client]:
    nc = await nats.connect(stack.nats_url)
    dlq = await nc.subscribe(subjects.dead_letter("router"))
    await nc.jetstream().publish(subject, body, headers={"Nats-Msg-Id": uuid.uuid4().hex})
    letter = decode((await dlq.next_msg(timeout=10)).data, DeadLetter)
    await dlq.unsubscribe()
    return letter, nc


async def test_deep_tools_get_a_dead_letter_and_an_error_result(stack: Stack) -> None:
    request = make_request(agent="listing")
    raw = msgspec.json.decode(encode(request))
    raw["tools"] = [0]
    body = msgspec.json.encode(raw).replace(b'"tools":[0]', b'"tools":' + _deep(3000))
    nc = await nats.connect(stack.nats_url)
    try:
        results = await nc.subscribe(subjects.llm_result(request.tenant, "listing", request.id))
        letter, other = await _publish(stack, subjects.llm_request(request.tenant, "listing"), body)
        await other.close()
        result = decode((await results.next_msg(timeout=10)).data, LlmResult)
    finally:
        await nc.close()
    assert letter.error_code is ErrorCode.MALFORMED and "deeper" in letter.reason
    assert result.error_code is ErrorCode.MALFORMED


async def test_a_newline_terminated_id_gets_a_dead_letter(stack: Stack) -> None:
    request = make_request(agent="listing", request_id="abc\n")
    letter, nc = await _publish(stack, subjects.llm_request("t1", "listing"), encode(request))
    await nc.close()
    assert letter.error_code is ErrorCode.MALFORMED
    assert "not a valid subject token" in letter.reason


async def test_an_id_another_tenant_used_first_still_gets_a_result(stack: Stack) -> None:
    shared = uuid.uuid4().hex
    client = LlmClient(stack.broker)
    first = await client.request(
        make_request(tenant="ta", agent="listing", request_id=shared), timeout_s=10
    )
    assert first.status is Status.OK
    second = await client.request(
        make_request(tenant="tb", agent="listing", request_id=shared), timeout_s=10
    )
    assert second.tenant == "tb" and second.error_code is ErrorCode.MALFORMED
    assert "already used" in second.reason


async def test_a_duplicate_ack_is_a_retry_only_for_the_same_body(stack: Stack) -> None:
    shared = uuid.uuid4().hex
    subject = subjects.llm_request("tc", "listing")
    msg_id = scoped_msg_id("tc", "listing", shared)
    other = encode(make_request(tenant="tc", agent="listing", request_id=shared, text="A mug"))
    mine = encode(make_request(tenant="tc", agent="listing", request_id=shared, text="My mug"))
    stream = subjects.STREAM_REQUESTS
    first = await publish(stack.broker, other, subject, stream=stream, msg_id=msg_id)
    again = await publish(stack.broker, mine, subject, stream=stream, msg_id=msg_id)
    assert first is not None and not first.duplicate
    assert again is not None and again.duplicate  # JetStream kept the first body only
    client = LlmClient(stack.broker)
    assert await client.same_as_stored(again.seq, other)  # a true retry
    assert not await client.same_as_stored(again.seq, mine)  # not ours: an error result
    # A retry rebuilt with a new deadline and creation time (an HTTP call sent again with
    # its Idempotency-Key, a resumed workflow) is the same request too.
    rebuilt = msgspec.structs.replace(
        decode(other, LlmRequest), deadline_ms=9_999_999_999_999, created_ms=1
    )
    assert await client.same_as_stored(again.seq, encode(rebuilt))


async def test_two_identical_calls_sent_together_share_one_answer(stack: Stack) -> None:
    """Found by review: the second of two identical /v1 calls with one Idempotency-Key got
    'request id ... was just used for another request' (its deadline differed)."""
    first = make_request(tenant="tc", agent="listing", text="A teal mug")
    second = msgspec.structs.replace(
        first, deadline_ms=first.created_ms + 60_000, created_ms=first.created_ms + 5
    )
    client = LlmClient(stack.broker)
    one, two = await asyncio.gather(
        client.request(first, timeout_s=10), client.request(second, timeout_s=10)
    )
    assert one.ok and two.ok, (one.reason, two.reason)
    assert one.content == two.content


@pytest.mark.parametrize(
    ("field", "value"),
    [("task_type", "t" * 100_000), ("task_type", "qa\n"), ("workflow_id", "wf.>")],
)
async def test_a_task_type_or_workflow_id_unfit_as_a_name_is_refused(
    stack: Stack, field: str, value: str
) -> None:
    """Both key routing state, caches, ledger rows: a sender must not invent huge ones."""
    request = msgspec.structs.replace(make_request(agent="listing"), **{field: value})
    client = LlmClient(stack.broker)
    result = await client.request(request, timeout_s=10)
    assert result.error_code is ErrorCode.MALFORMED, result
    assert field in result.reason and len(result.reason) < 200, result.reason


async def test_a_fresh_request_looks_for_a_stored_result_only_when_it_was_sent_before(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new request's publish is the common case: no direct get of the results stream
    before it (one NATS round trip per request saved); a retry within the duplicate window
    is acked as a duplicate and finds the stored result then; an old request (past half the
    window) is looked up first, since its publish would no longer be a duplicate."""
    client = LlmClient(stack.broker)
    looked: list[str] = []
    real = LlmClient._stored

    async def counted(self: LlmClient, subject: str) -> LlmResult | None:
        looked.append(subject)
        return await real(self, subject)

    monkeypatch.setattr(LlmClient, "_stored", counted)
    request = make_request()
    first = await client.request(request, timeout_s=10)
    assert first.ok and looked == []
    again = await client.request(request, timeout_s=10)  # a requester that restarted
    assert again == first and len(looked) == 1
    old = msgspec.structs.replace(make_request(), created_ms=request.created_ms - 10 * 60_000)
    assert (await client.request(old, timeout_s=10)).ok
    assert len(looked) == 2  # looked up before its publish
