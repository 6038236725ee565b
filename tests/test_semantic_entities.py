"""Entity extraction and matching for the semantic cache (pure, no servers)."""

from __future__ import annotations

import pytest

from bus.messages import ChatMessage, ImagePart, LlmRequest, LlmResult, Status, TextPart
from router.semantic import dates
from router.semantic.entities import conflict, extract, signature
from router.semantic.entity_types import Kind
from router.semantic.lexicon import stem
from router.semantic.request_view import MAX_QUESTION_CHARS, answer_key, view

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
        (
            "a Gray XL hoodie",
            {(Kind.ATTRIBUTE, "grey"), (Kind.ATTRIBUTE, "xl"), (Kind.PRODUCT, "hoodie")},
        ),
        ("size M, 12 oz", {(Kind.ATTRIBUTE, "m"), (Kind.NUMBER, "12oz")}),
        ("mail bob@shop.com", {(Kind.EMAIL, "bob@shop.com")}),
        ("see https://shop.com/a.", {(Kind.URL, "https://shop.com/a")}),
        ("due 2024-05-01", {(Kind.DATE, "2024-05-01/day")}),
        ("due May 1, 2024", {(Kind.DATE, "2024-05-01/day")}),
        ("what did I buy last week", {(Kind.DATE, "2000-12-25/week")}),
        ("deliver at 5pm", {(Kind.TIME, "17:00")}),
        ("deliver it this evening", {(Kind.TIME, "evening")}),
        ("Good morning, where is my card?", set()),
        ("a dark green hoodie", {(Kind.ATTRIBUTE, "dark green"), (Kind.PRODUCT, "hoodie")}),
        ("in extra large", {(Kind.ATTRIBUTE, "xl")}),
        ("my airpods", {(Kind.PRODUCT, "airpods")}),
        ("a double room", {(Kind.QUANTITY, "2x")}),
        ("don't cancel it", {(Kind.NEGATION, "not")}),
        ("ship to Toronto", {(Kind.PLACE, "toronto")}),
        ("ship to Turkey", {(Kind.NAME, "turkey")}),
        ("bills from Mr. Jones?", {(Kind.NAME, "jones")}),
        ("open a freemium account", {(Kind.ATTRIBUTE, "freemium")}),
        ("open anotherstandard account", {(Kind.ATTRIBUTE, "standard")}),
        ("two weeks ago", {(Kind.DATE, "2000-12-18/week")}),
        ("Where is my card? I am still waiting.", set()),
        ("may I cancel it?", set()),
        ("my PIN does not work at the ATM", {(Kind.NEGATION, "not")}),
        ("my PIN is blocked at the ATM", set()),
        ("works at -20 degrees", {(Kind.NUMBER, "-20")}),
        ("works at −20.5 degrees", {(Kind.NUMBER, "-20.5")}),
        ("a -5 kg change", {(Kind.NUMBER, "-5kg")}),
        ("SKU AB-1234", {(Kind.CODE, "AB-1234"), (Kind.NAME, "sku")}),
    ],
)
def test_extract(text: str, expected: set[tuple[Kind, str]]) -> None:
    """Each kind of entity is found and normalised; ordinary questions have none."""
    assert extract(text).kinds() == frozenset(expected)


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
        ("is this hoodie available in extra large", "is this hoodie available in large"),
        ("the dark green sofa", "the light green sofa"),
        ("deliver in the morning", "deliver in the evening"),
        ("what did I order last week", "what did I order last month"),
        ("book a double room", "book a single room"),
        ("my airpods won't pair", "my earbuds won't pair"),
        ("fix my ipad screen", "fix my iphone screen"),
        ("is the samsung tv on sale", "is the lg tv on sale"),
        ("cancel my subscription", "don't cancel my subscription"),
        ("move money from savings to checking", "move money from checking to savings"),
        ("convert USD to EUR", "convert EUR to USD"),
        ("call me at 5 pm", "call me at 5 am"),
        ("flights from new york to boston", "flights from boston to new york"),
        ("the item is available", "the item is unavailable"),
        ("lock my card", "unlock my card"),
        ("will it work at -20 degrees", "will it work at 20 degrees"),
        ("deliver it this friday", "deliver it next friday"),
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
        ("in extra large", "in XL"),
        ("what did I buy last week", "what did I buy a week ago"),
        ("on May 1, 2024", "on 1 May 2024"),
        ("my AirPods", "my airpods"),
        ("red and blue mugs", "blue and red mugs"),
    ],
)
def test_spellings_of_the_same_entities_match(one: str, other: str) -> None:
    """Normalisation makes spellings of the same entities agree."""
    assert signature(extract(one)) == signature(extract(other))


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("do you ship to germany", "do you ship to austria"),
        ("do you ship to sydney", "do you ship to melbourne"),
        ("is the dublin store open", "is the cork store open"),
        ("Germany: is VAT included?", "France: is VAT included?"),
        ("do you deliver to new york", "do you deliver to york"),
        ("is delivery free in ontario", "is delivery free in quebec"),
        ("do you ship to new south wales", "do you ship to queensland"),
        ("can I ship to the US", "can I ship to the UK"),
        ("ship to hong kong", "ship to singapore"),
    ],
)
def test_different_places_never_match(one: str, other: str) -> None:
    """Countries, states, provinces and cities of the gazetteer are entities in any case,
    multi-word names included, and at the start of a sentence."""
    assert signature(extract(one)) != signature(extract(other))


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("do you ship to Germany?", "do you ship to germany"),
        ("ship to the USA", "ship to the US"),
        ("ship to America", "ship to the United States"),
        ("delivery to São Paulo", "delivery to sao paulo"),
        ("ship to New York", "ship to NEW YORK"),
        ("what is Germany's VAT rate", "what is germany VAT rate"),
    ],
)
def test_spellings_of_one_place_match(one: str, other: str) -> None:
    """Case, accents, a possessive and the usual short forms name the same place."""
    assert signature(extract(one)) == signature(extract(other))


@pytest.mark.parametrize(
    "text",
    [
        "nice phone, is it new?",
        "I am reading the manual",
        "can you send us the invoice",
        "is the orange case back",
        "can I split the payment",
        "my mobile number changed",
        "a turkey for christmas",
        "I guess georgia sent it",
    ],
)
def test_common_words_are_not_places(text: str) -> None:
    """Place names that are everyday words (and "us") are no places in lower case."""
    assert all(kind is not Kind.PLACE for kind, _ in extract(text).items)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("my xbox one won't turn on", "my xbox series x won't turn on"),
        ("do you sell xbox series s", "do you sell xbox series x"),
        ("a case for the kindle paperwhite", "a case for the kindle oasis"),
        ("my echo dot won't turn on", "my echo show won't turn on"),
        ("do you sell the samsung frame tv", "do you sell the samsung neo tv"),
        ("is this coach bag authentic", "is this guess bag authentic"),
        ("do you have hoka trail shoes", "do you have brooks trail shoes"),
        ("my jordan sneakers are falling apart", "my yeezy sneakers are falling apart"),
        ("my echo dot is offline", "my echo is offline"),
    ],
)
def test_product_lines_and_brands_differ(one: str, other: str) -> None:
    """Product lines are phrases of a family word and the line; brands that are everyday
    words count before a product word."""
    assert signature(extract(one)) != signature(extract(other))


@pytest.mark.parametrize(
    "text",
    [
        "I guess my bag is lost",
        "the coach was late",
        "show me the dot on the map",
        "which one is it",
        "is there a champion of sellers",
        "what is my new balance",
    ],
)
def test_everyday_words_are_not_brands(text: str) -> None:
    """Brands that are everyday words, and the words of product lines, alone are no products."""
    values = {value for kind, value in extract(text).items if kind is Kind.PRODUCT}
    assert not values & {"coach", "guess", "champion", "new balance", "echo dot", "xbox one"}


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


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("how do I increase my limit", "how do I decrease my limit"),
        ("enable notifications", "disable notifications"),
        ("why did I get a refund", "why did I get a charge"),
        ("block my card", "allow my card"),
        ("turn on notifications", "turn off notifications"),
        ("upgrade my plan", "downgrade my plan"),
        ("my anker charger is broken", "my belkin charger is broken"),
    ],
)
def test_opposite_intents_and_unknown_names_conflict(one: str, other: str) -> None:
    """Pairwise checks tell opposite intents and different unknown names apart."""
    a, b = extract(one), extract(other)
    assert signature(a) == signature(b)  # the partition alone would not see it
    assert conflict(a, b) is not None and conflict(b, a) is not None


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("I want a refund", "can I get my money back"),
        ("how do I raise my limit", "how can I increase my limit"),
        ("how do I recieve my card", "where is my card"),
        ("cancel my order", "I'd like to cancel the order"),
    ],
)
def test_synonyms_and_absent_words_do_not_conflict(one: str, other: str) -> None:
    """Only a clash counts: a synonym the lists lack, or a typo on one side, is no conflict."""
    assert conflict(extract(one), extract(other)) is None


def test_order_matters_only_with_roles() -> None:
    """Entities keep their order where a word gives them roles, not otherwise."""
    assert extract("convert USD to EUR").ordered
    assert not extract("red and blue mugs").ordered


def test_stem_folds_inflections() -> None:
    """The action words' inflections fold together."""
    assert {stem(w) for w in ("increase", "increased", "increasing", "increases")} == {"increas"}
    assert stem("cancelled") == stem("cancel")


@pytest.mark.parametrize(
    "text",
    ["in 99999999999 days", "31st of february", "99/99/9999", "2024-13-45", "", "😀 中文 —"],
)
def test_odd_dates_and_text_never_raise(text: str) -> None:
    """Input is data: impossible dates and odd characters give entities, not exceptions."""
    found = extract(text)
    assert signature(found) == signature(extract(text))


def test_a_question_longer_than_the_embedder_reads_is_not_looked_at() -> None:
    """Over MAX_QUESTION_CHARS no view is made: no entity extraction over megabytes (it took
    seconds on the router's loop), and no semantic caching of a text read in part."""
    fits = "Is the teal mug dishwasher safe? " * (MAX_QUESTION_CHARS // 40)
    assert len(fits) <= MAX_QUESTION_CHARS and view(ask(fits), MODEL) is not None
    assert view(ask("Is the teal mug dishwasher safe? " * 100_000), MODEL) is None


def test_a_question_full_of_dates_reads_a_bounded_number_with_dateparser(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found by review: 800 distinct dates in an 8 KB question each went through dateparser
    on the router's loop (0.4 s; ten such questions stalled every tenant 2.9 s)."""
    parser = dates._parser()
    calls: list[str] = []
    real = parser.get_date_data

    def counted(text: str, *args: object, **kwargs: object) -> object:
        calls.append(text)
        return real(text, *args, **kwargs)

    monkeypatch.setattr(parser, "get_date_data", counted)
    dates.normalise.cache_clear()
    text = " ".join(f"{(i * 7) % 28 + 1} jan {1000 + (i * 800) % 8000}" for i in range(800))
    found, _ = dates.find(text[:8192])
    spans = [value for _, kind, value in found if kind == "date"]
    assert len(spans) > 500 and len(calls) <= dates.MAX_PARSED_SPANS
    assert len(set(spans)) > dates.MAX_PARSED_SPANS  # the rest are still told apart
