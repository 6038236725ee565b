"""Hostile OpenAI bodies: a request larger on the wire than the router takes is a 413 at the
API (it used to be lost: no answer, no dead letter), a body of a million bad items is described
by its first error only, a dead letter always fits in a NATS message, and depth is still
measured right, walked a level at a time."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from api.openai_errors import OpenAIError
from api.openai_request import AUTO_MODEL, MAX_TOOLS, ChatCompletionBody, read_call
from bus.codec import encode
from bus.embedded.nats_server import MAX_PAYLOAD
from bus.limits import nesting_depth
from bus.messages import DeadLetter, ErrorCode
from bus.messages.llm import MAX_DEAD_PAYLOAD, PAYLOAD_BYTES_HEADER
from bus.settings import Settings

SETTINGS = Settings(max_request_bytes=64 * 1024)


def test_a_body_that_encodes_over_the_request_limit_is_refused_with_413() -> None:
    # 3,000 one-letter messages are 90 KB of JSON body but over 64 KiB as an LlmRequest.
    tiny = [{"role": "user", "content": "a"}] * 3000
    with pytest.raises(OpenAIError) as refused:
        read_call({"model": AUTO_MODEL, "messages": tiny}, {}, tenant="t", settings=SETTINGS)
    assert refused.value.status == 413
    assert refused.value.code == "request_too_large"
    small = read_call({"model": AUTO_MODEL, "messages": tiny[:10]}, {}, tenant="t",
                      settings=SETTINGS)  # fmt: skip
    assert len(encode(small.request)) <= SETTINGS.max_request_bytes


@pytest.mark.parametrize(
    "body",
    [
        {"model": AUTO_MODEL, "messages": [[]] * 100_000},
        {"model": AUTO_MODEL, "messages": [{"role": "user", "content": [[]] * 100_000}]},
        {"model": AUTO_MODEL, "messages": [{"role": "user", "tool_calls": [[]] * 100_000}]},
        {"model": AUTO_MODEL, "messages": [{"role": "user"}], "tools": [[]] * 100_000},
    ],
)
def test_a_body_of_many_bad_items_is_described_by_its_first_error(body: object) -> None:
    with pytest.raises(ValidationError) as bad:
        ChatCompletionBody.model_validate(body)
    assert bad.value.error_count() <= 3  # per branch of a union, not per item
    with pytest.raises(OpenAIError) as refused:
        read_call(body, {}, tenant="t", settings=Settings())
    assert refused.value.status == 400


def test_more_tools_than_openai_allows_are_refused() -> None:
    tools = [{"type": "function", "function": {"name": f"f{i}"}} for i in range(MAX_TOOLS + 1)]
    body = {"model": AUTO_MODEL, "messages": [{"role": "user"}], "tools": tools}
    with pytest.raises(OpenAIError) as refused:
        read_call(body, {}, tenant="t", settings=Settings())
    assert refused.value.param == "tools"
    body["tools"] = tools[:MAX_TOOLS]
    assert len(read_call(body, {}, tenant="t", settings=Settings()).request.tools) == MAX_TOOLS


def test_a_dead_letter_of_a_huge_message_fits_in_a_nats_message() -> None:
    payload = b"x" * (7 * 1024 * 1024)
    letter = DeadLetter.of("llm.request.t.a", ErrorCode.OVERSIZED, "too big", payload, {"h": "1"})
    assert len(encode(letter)) < MAX_PAYLOAD
    assert letter.payload == payload[:MAX_DEAD_PAYLOAD]
    assert letter.headers == {"h": "1", PAYLOAD_BYTES_HEADER: str(len(payload))}
    whole = DeadLetter.of("s", ErrorCode.MALFORMED, "bad", b"abc")
    assert whole.payload == b"abc" and whole.headers == {}


def test_depth_is_measured_a_level_at_a_time() -> None:
    deep: list[object] = []
    for _ in range(100):
        deep = [deep]
    values: list[object] = [1, [], [[]], {"a": [1, {}]}, deep, [[]] * 1_000_000]
    assert [nesting_depth(v, 64) for v in values] == [0, 1, 2, 3, 65, 2]
