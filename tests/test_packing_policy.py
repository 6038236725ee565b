"""The pure batching policy: the way each request goes, compatibility, windows, the packed
prompt and schema, the split, and the exact sharing of a call's cost. No server needed."""

from __future__ import annotations

import random
import uuid

import jsonschema
import msgspec
import pytest

from bus.messages import (
    ChatMessage,
    ImagePart,
    Lever,
    LlmRequest,
    LlmResult,
    OutputSchema,
    Priority,
    Status,
    TextPart,
    Usage,
)
from cost_ledger.catalog import PriceCatalog
from cost_ledger.pricing import cost_micro_usd
from router.batching.outcome import Alone, with_share
from router.batching.policy import (
    BatchPolicy,
    PackPolicy,
    Path,
    Window,
    decide,
    pack_key,
    unpackable,
)
from router.batching.prompt import build_packed_call, inline_index, packed_schema, shared_opening
from router.batching.shares import allocate, allocate_within, share_cost, share_usage
from router.batching.split import split_answer
from router.stages.budget import estimate_input_tokens
from router.tokens import count_messages_tokens, count_text_tokens
from simulator.content import generate
from simulator.request import parse_chat_request
from tests.helpers import TITLE_SCHEMA

NOW = 1_800_000_000_000
PACK = PackPolicy(max_items=4, window_ms=300, deadline_slack_ms=2000)
BATCH = BatchPolicy(turnaround_s=60, max_held=10)
INSTRUCTIONS = "Write an eBay title for the product below. Lead with brand and product name.\n\n"


def request(
    text: str = "Product: teal stoneware mug",
    *,
    tenant: str = "t1",
    system: str = "You write listings.",
    schema: OutputSchema | None = TITLE_SCHEMA,
    priority: Priority = Priority.STANDARD,
    deadline_ms: int = 0,
    max_output_tokens: int = 100,
    temperature: float = 0.0,
) -> LlmRequest:
    """A small structured request whose last message is its own part."""
    return LlmRequest(
        id=uuid.uuid4().hex,
        tenant=tenant,
        agent="listing",
        task_type="text_generation",
        messages=[
            ChatMessage(role="system", content=system),
            ChatMessage(role="user", content=INSTRUCTIONS + text),
        ],
        output_schema=schema,
        priority=priority,
        deadline_ms=deadline_ms,
        max_output_tokens=max_output_tokens,
        temperature=temperature,
    )


def way(req: LlmRequest, *, held: int = 0, batch: BatchPolicy = BATCH) -> Path:
    decision = decide(
        req, model="m", provider="p", now_ms=NOW, pack=PACK, batch=batch, batch_held=held
    )
    return decision.path


def test_standard_small_structured_requests_are_packed() -> None:
    assert way(request()) is Path.PACK
    assert way(request(priority=Priority.BULK, deadline_ms=NOW + 10_000)) is Path.PACK


def test_interactive_requests_are_never_held() -> None:
    assert way(request(priority=Priority.INTERACTIVE)) is Path.DIRECT


@pytest.mark.parametrize(
    ("req", "why"),
    [
        (request(schema=None), "schema"),
        (request(max_output_tokens=4096), "max_output_tokens"),
        (request("word " * 3000), "prompt over"),
        (request(deadline_ms=NOW + 1500), "deadline"),
    ],
)
def test_unpackable_requests_go_straight_on(req: LlmRequest, why: str) -> None:
    assert way(req) is Path.DIRECT
    assert why in unpackable(req, NOW, PACK)


def test_requests_with_images_or_ending_with_the_assistant_are_not_packed() -> None:
    image = request()
    image.messages[-1].content = [TextPart(text="mug"), ImagePart(url="https://x/y.png")]
    assert "images" in unpackable(image, NOW, PACK)
    last = request()
    last.messages.append(ChatMessage(role="assistant", content="Sure."))
    assert "last message" in unpackable(last, NOW, PACK)


def test_turns_that_send_tools_are_neither_packed_nor_batched() -> None:
    tools: list[dict[str, object]] = [{"type": "function", "function": {"name": "lookup"}}]
    standard = msgspec.structs.replace(request(), tools=tools)
    assert unpackable(standard, NOW, PACK) == "it sends tools"
    bulk = msgspec.structs.replace(request(priority=Priority.BULK), tools=tools)
    assert way(bulk) is Path.DIRECT


def test_packing_off_when_max_items_is_one() -> None:
    assert unpackable(request(), NOW, PackPolicy(max_items=1)) == "packing is off"


def test_bulk_goes_to_the_batch_api_when_its_deadline_can_wait() -> None:
    assert way(request(priority=Priority.BULK)) is Path.BATCH_API  # no deadline
    assert way(request(priority=Priority.BULK, deadline_ms=NOW + 61_000)) is Path.BATCH_API
    assert way(request(priority=Priority.BULK, deadline_ms=NOW + 59_000)) is Path.PACK


def test_bulk_goes_the_normal_way_when_the_replica_holds_enough_or_batches_are_off() -> None:
    bulk = request(priority=Priority.BULK)
    assert way(bulk, held=10) is Path.PACK
    assert way(bulk, batch=BatchPolicy(enabled=False)) is Path.PACK


def test_compatible_requests_share_a_key_and_others_do_not() -> None:
    base = pack_key(request("Product: mug"), "m", "p")
    assert pack_key(request("Product: lamp"), "m", "p") == base  # own parts differ: fine
    assert pack_key(request(tenant="t2"), "m", "p") != base  # never across tenants
    assert pack_key(request(), "other-model", "p") != base
    assert pack_key(request(system="You are terse."), "m", "p") != base
    assert pack_key(request(temperature=0.7), "m", "p") != base
    other_schema = OutputSchema(name="title", schema={"type": "object"})
    assert pack_key(request(schema=other_schema), "m", "p") != base


def test_window_closes_at_max_items() -> None:
    window: Window[int] = Window(opened_ms=NOW, window_ms=300, max_items=3)
    assert not window.add(1) and not window.add(2)
    assert window.add(3)
    assert window.due(NOW)


def test_window_closes_after_its_time() -> None:
    window: Window[int] = Window(opened_ms=NOW, window_ms=300, max_items=3)
    window.add(1)
    assert window.closes_at_ms() == NOW + 300
    assert not window.due(NOW + 299)
    assert window.due(NOW + 300)


def test_window_never_holds_a_request_past_its_deadline() -> None:
    window: Window[int] = Window(opened_ms=NOW, window_ms=5000, max_items=8, deadline_slack_ms=2000)
    window.add(1, deadline_ms=NOW + 10_000)
    assert window.closes_at_ms() == NOW + 5000
    window.add(2, deadline_ms=NOW + 3000)  # the earliest deadline brings the close forward
    window.add(3, deadline_ms=NOW + 4000)
    assert window.closes_at_ms() == NOW + 1000


def test_shared_paragraphs_are_hoisted_once() -> None:
    texts = [INSTRUCTIONS + "Product: mug", INSTRUCTIONS + "Product: lamp"]
    assert shared_opening(texts) == INSTRUCTIONS
    assert shared_opening(["short\n\nmug", "short\n\nlamp"]) == ""  # too short to matter
    assert shared_opening(["no paragraphs a", "no paragraphs b"]) == ""
    assert shared_opening([INSTRUCTIONS]) == ""


def test_packed_call_sends_instructions_once_and_saves_input_tokens() -> None:
    requests = [request(f"Product: teal mug number {i}") for i in range(4)]
    call = build_packed_call(requests, "pack-1")
    text = call.request.messages[-1].content
    assert isinstance(text, str)
    assert text.count("Lead with brand") == 1
    assert all(f"### Item {i}\n" in text for i in range(4))
    assert call.request.messages[0] == requests[0].messages[0]  # the system prompt, once
    assert sum(call.item_tokens) + call.shared_tokens < sum(call.alone_tokens)
    assert call.request.output_schema is not None and not call.request.output_schema.strict
    # Counted from the items' texts, the figures equal counting the packed prompt itself.
    blocks = text.split("\n\n")[-4:]
    assert call.item_tokens == tuple(count_text_tokens(block) for block in blocks)
    whole = [{"role": m.role, "content": m.content} for m in call.request.messages]
    assert call.shared_tokens + sum(call.item_tokens) == count_messages_tokens(whole)
    assert call.input_tokens == estimate_input_tokens(call.request)


@pytest.mark.parametrize(
    "texts",
    [
        ["Größe: 42 cm", "Größe: 44 cm", "価格 1200円"],
        ["12345", "67890"],
        ["same\n\nfirst", "same\n\nsecond", "___ under_score ___"],
    ],
)
def test_a_packed_calls_input_tokens_are_those_of_its_request_counted_whole(
    texts: list[str],
) -> None:
    """The packer books and bounds a packed call by input_tokens, counted from its items'
    cached counts: it must equal counting the packed request itself."""
    call = build_packed_call([request(INSTRUCTIONS + t) for t in texts], "pack-2")
    assert call.input_tokens == estimate_input_tokens(call.request)


def test_a_schema_that_branches_or_refers_is_not_packed() -> None:
    """Packed items are checked on the event loop: only schemas checked in linear time."""
    branching = OutputSchema(
        name="either", schema={"anyOf": [{"type": "string"}, {"type": "integer"}]}
    )
    assert "branches or refers" in unpackable(request(schema=branching), NOW, PACK)
    assert unpackable(request(), NOW, PACK) == ""


def test_packed_schema_pins_each_index_and_keeps_local_refs() -> None:
    answer = {
        "type": "object",
        "additionalProperties": False,
        "required": ["size"],
        "properties": {"size": {"$ref": "#/$defs/size"}},
        "$defs": {"size": {"enum": ["S", "M"]}},
    }
    assert inline_index(answer)
    schema = packed_schema(answer, 2)
    good = {"items": [{"index": 0, "size": "S"}, {"index": 1, "size": "M"}]}
    jsonschema.validate(good, schema)
    swapped = {"items": [good["items"][1], good["items"][0]]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(swapped, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"items": [{"index": 0, "size": "XL"}, good["items"][1]]}, schema)
    split = split_answer(msgspec.json.encode(good).decode(), [answer, answer], inline=True)
    assert [a.parsed for a in split] == [{"size": "S"}, {"size": "M"}]


def test_packed_schema_wraps_answers_that_are_not_plain_objects() -> None:
    answer: dict[str, object] = {"anyOf": [{"type": "string"}, {"type": "integer"}]}
    assert not inline_index(answer)
    assert not inline_index({"type": "object", "properties": {"index": {"type": "integer"}}})
    schema = packed_schema(answer, 2)
    good = {"items": [{"index": 0, "answer": "S"}, {"index": 1, "answer": 3}]}
    jsonschema.validate(good, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"items": [{"index": 0, "answer": 1.5}, good["items"][1]]}, schema)
    split = split_answer(msgspec.json.encode(good).decode(), [answer, answer])
    assert [a.parsed for a in split] == ["S", 3]


def test_simulated_answer_to_a_packed_call_splits_into_valid_items() -> None:
    requests = [request(f"Product: teal mug number {i}") for i in range(5)]
    call = build_packed_call(requests, "pack-2")
    assert call.request.output_schema is not None
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": m.role, "content": m.content} for m in call.request.messages],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "p", "schema": call.request.output_schema.schema},
        },
    }
    generated = generate(parse_chat_request(msgspec.json.encode(body)))
    answers = split_answer(generated.content, [TITLE_SCHEMA.schema] * 5, inline=True)
    assert [a.index for a in answers] == [0, 1, 2, 3, 4]
    assert all(a.ok and isinstance(a.parsed, dict) for a in answers), answers


def test_split_keeps_valid_items_and_flags_missing_or_invalid_ones() -> None:
    title = TITLE_SCHEMA.schema
    content = msgspec.json.encode(
        {
            "items": [
                {"index": 2, "answer": {"title": "A lamp of brass"}},
                {"index": 0, "answer": {"title": "no"}},  # too short
                {"index": 2, "answer": {"title": "a later duplicate"}},
                {"index": 9, "answer": {"title": "out of range"}},
            ]
        }
    ).decode()
    first, second, third = split_answer(content, [title, title, title])
    assert "minLength" in first.problem or "short" in first.problem
    assert second.problem == "item 1 is missing from the answer"
    assert third.ok and third.parsed == {"title": "A lamp of brass"}
    assert third.output_tokens > 0
    broken = split_answer("{not json", [title, title])
    assert all("not JSON" in a.problem for a in broken)
    assert all("items" in a.problem for a in split_answer('{"answers": []}', [title]))


def test_allocate_adds_up_exactly_and_follows_the_weights() -> None:
    assert allocate(10, [1, 1, 1]) == [4, 3, 3]
    assert allocate(100, [3, 1]) == [75, 25]
    assert allocate(7, [0, 0]) == [4, 3]
    assert allocate(0, [5, 1]) == [0, 0]
    assert allocate(5, []) == []
    rng = random.Random(7)
    for _ in range(500):
        weights = [rng.randint(0, 50) for _ in range(rng.randint(1, 9))]
        total = rng.randint(0, 100_000)
        parts = allocate(total, weights)
        assert sum(parts) == total and min(parts) >= 0
        if sum(weights):
            for part, weight in zip(parts, weights, strict=True):
                assert abs(part - total * weight / sum(weights)) < 1
    with pytest.raises(ValueError):
        allocate(-1, [1])


def test_shares_of_a_call_add_up_to_its_usage_and_cost() -> None:
    price = PriceCatalog.load().get("gpt-4o-mini")
    rng = random.Random(3)
    for _ in range(200):
        n = rng.randint(2, 8)
        inputs = rng.randint(50, 5000)
        usage = Usage(
            input_tokens=inputs,
            cached_input_tokens=rng.randint(0, inputs),
            output_tokens=rng.randint(10, 2000),
        )
        shares = share_usage(
            usage, [rng.randint(1, 300) for _ in range(n)], [rng.randint(0, 200) for _ in range(n)]
        )
        assert sum(s.input_tokens for s in shares) == usage.input_tokens
        assert sum(s.cached_input_tokens for s in shares) == usage.cached_input_tokens
        assert sum(s.output_tokens for s in shares) == usage.output_tokens
        assert all(s.cached_input_tokens <= s.input_tokens for s in shares)
        total = cost_micro_usd(price, usage)
        assert sum(share_cost(total, price, shares)) == total


def test_a_share_never_passes_its_cap_while_the_caps_hold_the_total() -> None:
    assert allocate_within(100, [1, 1], [30, 100]) == [30, 70]
    assert allocate_within(100, [9, 1, 0], [50, 40, 20]) == [50, 40, 10]
    assert allocate_within(10, [1, 3], [100, 100]) == [3, 7]  # no cap reached: in proportion
    # Past every cap, the rest is still booked (never absorbed), in proportion.
    assert allocate_within(130, [1, 1], [50, 50]) == [65, 65]
    rng = random.Random(11)
    for _ in range(500):
        n = rng.randint(1, 9)
        weights = [rng.randint(0, 50) for _ in range(n)]
        caps = [rng.randint(0, 500) for _ in range(n)]
        total = rng.randint(0, 2 * sum(caps) + 10)
        parts = allocate_within(total, weights, caps)
        assert sum(parts) == total and min(parts) >= 0
        if total <= sum(caps):
            assert all(p <= c for p, c in zip(parts, caps, strict=True)), (total, weights, caps)
    # A packed call's cost shared out within what each item reserved.
    price = PriceCatalog.load().get("gpt-4o-mini")
    usages = [Usage(input_tokens=100, output_tokens=400), Usage(input_tokens=100, output_tokens=10)]
    assert share_cost(200, price, usages) == [185, 15]
    assert share_cost(200, price, usages, [120, 120]) == [120, 80]
    assert share_cost(200, price, usages, [120, None]) == [185, 15]  # no budget: no caps


def test_a_retried_item_carries_its_share_of_the_packed_call() -> None:
    retry = LlmResult(
        request_id="r",
        tenant="t",
        agent="a",
        status=Status.OK,
        reason="default model",
        usage=Usage(input_tokens=100, output_tokens=20),
        cost_micro_usd=30,
        baseline_micro_usd=500,
        lever=Lever.ROUTED,
    )
    share = Alone(reason="item 1 is missing", usage=Usage(input_tokens=40), cost_micro_usd=7)
    merged = with_share(retry, share)
    assert merged.cost_micro_usd == 37 and merged.usage.input_tokens == 140
    assert merged.baseline_micro_usd == 500 and merged.lever is Lever.ROUTED
    assert "item 1 is missing" in merged.reason
    assert with_share(retry, Alone(reason="no company")) is retry


def test_each_priority_has_its_own_lane_and_window() -> None:
    policy = PackPolicy(window_ms=300, bulk_window_ms=1500)
    assert policy.window_for(Priority.INTERACTIVE) == 0
    assert policy.window_for(Priority.STANDARD) == 300
    assert policy.window_for(Priority.BULK) == 1500
    standard, bulk = request(), request(priority=Priority.BULK)
    # A bulk item never opens (or shortens) a standard window, nor the other way round.
    assert pack_key(standard, "m", "p") != pack_key(bulk, "m", "p")
    assert pack_key(standard, "m", "p") == pack_key(request("other item"), "m", "p")
    interactive = request(priority=Priority.INTERACTIVE)
    off = BatchPolicy(enabled=False)
    assert decide(interactive, model="m", provider="p", now_ms=0, pack=policy, batch=off).path is (
        Path.DIRECT
    )
