"""Entity extraction and matching for the semantic cache (pure, no servers)."""

from __future__ import annotations

import pytest

from bus.messages import ChatMessage, ImagePart, LlmRequest, LlmResult, Status, TextPart
from router.semantic.entities import Kind, extract, signature
from router.semantic.request_view import answer_key, view

MODEL = "test-model"


def ask(text: str, *, system: str = "You help sellers.", task: str = "seller_chat") -> LlmRequest:
    """A seller-chat request asking text."""
    return LlmRequest(
        id="r1",
        tenant="t1",
        agent="chat",
        task_type=task,
        messages=[
            ChatMessage(role="system", content=system),
            ChatMessage(role="user", content=text),
        ],
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cancel order 113542617735902", {(Kind.NUMBER, "113542617735902")}),
        ("invoice #00108 please", {(Kind.NUMBER, "00108")}),
        ("refund $1,200.00", {(Kind.MONEY, "usd:1200")}),
        ("refund 1200 dollars", {(Kind.MONEY, "usd:1200")}),
        ("is SKU AB-1234 back?", {(Kind.CODE, "AB-1234"), (Kind.NAME, "sku")}),
        ("a Gray XL hoodie", {(Kind.ATTRIBUTE, "grey"), (Kind.ATTRIBUTE, "xl")}),
        ("size M, 12 oz", {(Kind.ATTRIBUTE, "m"), (Kind.NUMBER, "12oz")}),
        ("mail bob@shop.com", {(Kind.EMAIL, "bob@shop.com")}),
        ("see https://shop.com/a.", {(Kind.URL, "https://shop.com/a")}),
        ("due 2024-05-01", {(Kind.DATE, "2024-05-01")}),
        ("ship to Toronto", {(Kind.NAME, "toronto")}),
        ("bills from Mr. Jones?", {(Kind.NAME, "jones")}),
        ("open a freemium account", {(Kind.ATTRIBUTE, "freemium")}),
        ("open anotherstandard account", {(Kind.ATTRIBUTE, "standard")}),
        ("two weeks ago", {(Kind.NUMBER, "2")}),
        ("Where is my card? I am still waiting.", set()),
        ("may I cancel it?", set()),
        ("my PIN does not work at the ATM", set()),
    ],
)
def test_extract(text: str, expected: set[tuple[Kind, str]]) -> None:
    """Each kind of entity is found and normalised; ordinary questions have none."""
    assert extract(text) == frozenset(expected)


def test_the_issue_trap_pair_has_different_entities() -> None:
    """The two cancel requests of the issue never share a signature."""
    a = extract("cancel order 113542617735902")
    b = extract("cancel order 732201349959")
    assert signature(a) != signature(b)
    assert signature(extract("How can I cancel purchase 113542617735902?")) == signature(a)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("refund $20 please", "refund $200 please"),
        ("is the red XL hoodie in stock", "is the blue XL hoodie in stock"),
        ("deliver to Dublin", "deliver to Toronto"),
        ("upgrade to the pro plan", "upgrade to the premium plan"),
        ("order 00123842", "order 123842"),
        ("ship it tomorrow", "ship it today"),
        ("5 kg bag", "5 lb bag"),
    ],
)
def test_different_entities_never_match(one: str, other: str) -> None:
    """Texts that differ in an entity get different signatures."""
    assert signature(extract(one)) != signature(extract(other))


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("refund $1,200", "refund 1200 dollars"),
        ("invoice #12588", "invoice 12588"),
        ("a gray mug", "a Grey mug"),
        ("How do I change my shipping address?", "how can i update my address"),
    ],
)
def test_spellings_of_the_same_entities_match(one: str, other: str) -> None:
    """Normalisation makes spellings of the same entities agree."""
    assert signature(extract(one)) == signature(extract(other))


def test_partition_keeps_entities_and_instructions_apart() -> None:
    """Only the question may differ within a partition; entities and instructions may not."""
    base = view(ask("How do I cancel order 113542617735902?"), MODEL)
    paraphrase = view(ask("how can i cancel my order 113542617735902"), MODEL)
    trap = view(ask("How do I cancel order 732201349959?"), MODEL)
    other_system = view(ask("How do I cancel order 113542617735902?", system="Be terse."), MODEL)
    other_task = view(ask("How do I cancel order 113542617735902?", task="pricing"), MODEL)
    assert base is not None and paraphrase is not None
    assert base.partition == paraphrase.partition
    assert base.text == "How do I cancel order 113542617735902?"
    for other in (trap, other_system, other_task):
        assert other is not None and other.partition != base.partition


def test_requests_that_cannot_be_compared() -> None:
    """Images, tool turns and an assistant-last conversation are not cached semantically."""
    image = ask("what is this?")
    image.messages[-1].content = [TextPart(text="what is this?"), ImagePart(url="data:,x")]
    tools = ask("what is this?")
    tools.needs_tools = True
    assistant_last = ask("hi")
    assistant_last.messages.append(ChatMessage(role="assistant", content="hello"))
    for request in (image, tools, assistant_last):
        assert view(request, MODEL) is None


def test_answer_key_folds_spacing_and_orders_json() -> None:
    """Equal answers share a key; parsed output is compared canonically."""

    def result(content: str = "", parsed: object | None = None) -> LlmResult:
        return LlmResult(
            request_id="r", tenant="t", agent="a", status=Status.OK, content=content, parsed=parsed
        )

    assert answer_key(result("Go to  Settings.\n")) == answer_key(result("go to settings."))
    assert answer_key(result(parsed={"a": 1, "b": 2})) == answer_key(
        result(parsed={"b": 2, "a": 1})
    )
    assert answer_key(result("yes")) != answer_key(result("no"))
