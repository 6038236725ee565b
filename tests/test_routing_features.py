"""Content features of a request: tokens, images, schema size, reasoning cues, complexity."""

from __future__ import annotations

from bus.messages import ChatMessage, ImagePart, LlmRequest, OutputSchema, TextPart
from router.providers.messages import openai_messages
from router.routing.features import (
    extract,
    heuristic_complexity,
    request_text,
    schema_size,
    text_cues,
)
from router.tokens import count_messages_tokens, image_tokens


def _request(*messages: ChatMessage, schema: dict[str, object] | None = None) -> LlmRequest:
    return LlmRequest(
        id="r1",
        tenant="t",
        agent="a",
        task_type="extraction",
        messages=list(messages),
        output_schema=OutputSchema(name="out", schema=schema) if schema is not None else None,
        max_output_tokens=300,
    )


def test_tokens_images_and_task_type() -> None:
    photo = ImagePart(url="https://example.test/p.png", detail="high", width=1024, height=1024)
    request = _request(
        ChatMessage(role="system", content="You write listings."),
        ChatMessage(role="user", content=[TextPart(text="Describe this."), photo]),
    )
    features = extract(request)
    assert features.task_type == "extraction" and features.max_output_tokens == 300
    assert features.images == 1 and features.needs_vision
    assert features.image_tokens == image_tokens(1024, 1024, "high")
    assert features.input_tokens == count_messages_tokens(openai_messages(request.messages))
    assert not features.has_schema and features.schema_fields == 0
    assert request_text(request) == "You write listings.\nDescribe this."


def test_schema_size_counts_nested_fields_and_depth() -> None:
    schema: dict[str, object] = {
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "bullets": {"type": "array", "items": {"type": "string"}},
            "specs": {
                "type": "object",
                "properties": {"weight": {"type": "number"}, "size": {"type": "string"}},
            },
        },
    }
    assert schema_size(schema) == (5, 2)
    assert schema_size({"type": "string"}) == (0, 0)
    features = extract(_request(ChatMessage(role="user", content="x"), schema=schema))
    assert features.has_schema and (features.schema_fields, features.schema_depth) == (5, 2)


def test_reasoning_cues() -> None:
    math = text_cues("A shirt costs $12 and 3 cost 3 * 12 = 36. How many can I buy with 20%?")
    assert math.math == 1.0 and math.numbers >= 4
    steps = text_cues("First list the defects, then compare them, and finally explain why.")
    assert steps.multi_step >= 0.75 and steps.math == 0.0
    code = text_cues("```python\ndef f(x):\n    return x\n```")
    assert code.code >= 0.75
    plain = text_cues("A red cotton shirt")
    assert (plain.math, plain.multi_step, plain.code, plain.numbers) == (0.0, 0.0, 0.0, 0)


def test_heuristic_complexity_grows_with_cues_and_stays_in_range() -> None:
    easy = extract(_request(ChatMessage(role="user", content="Say thanks to the buyer.")))
    hard = extract(
        _request(
            ChatMessage(
                role="user",
                content="First compute 12 * 7 = ? then step by step solve the equation, "
                "compare the totals and explain why.\n```\ndef total(x):\n    return x\n```",
            )
        )
    )
    assert 0.0 <= easy.complexity < 0.3 <= hard.complexity <= 1.0
    assert easy.complexity == heuristic_complexity(easy)


def test_a_given_complexity_replaces_the_heuristic_and_is_clamped() -> None:
    request = _request(ChatMessage(role="user", content="hello"))
    assert extract(request, complexity=0.82).complexity == 0.82
    assert extract(request, complexity=1.7).complexity == 1.0
    assert extract(request, complexity=-1.0).complexity == 0.0
