"""Token counts that bound the bill: each provider's image rule, the real offline tokenizer,
and an answer that still costs more than its reservation is booked, counted and alerted."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from bus.messages import (
    BudgetAlert,
    ChatMessage,
    ImagePart,
    LlmRequest,
    LlmResult,
    Status,
    TextPart,
)
from cost_ledger.budgets.config import BudgetRules, EngineSettings
from cost_ledger.budgets.gate import Reservation, Settlement
from cost_ledger.budgets.policy import Subject
from cost_ledger.budgets.scripts import Code
from cost_ledger.catalog import PriceCatalog
from router.context import RequestContext, Route
from router.reservation_overrun import OVERRUNS
from router.stages.budget import BudgetStage, estimate_input_tokens
from router.token_bound import bound_input_tokens, max_request_cost
from router.tokenizer import count_bpe_tokens
from router.tokens import image_tokens_by_rule

CATALOG = PriceCatalog.load()


@pytest.mark.parametrize(
    ("rule", "size", "detail", "tokens"),
    [
        # OpenAI's vision guide: gpt-4o 1024x1024 high = 4 tiles x 170 + 85; 2048x4096 = 1105.
        ("tile:85:170", (1024, 1024), "high", 765),
        ("tile:85:170", (2048, 4096), "high", 1105),
        ("tile:85:170", (4096, 4096), "low", 85),
        # gpt-4o-mini: 2833 base + 5667 per tile, about 33 times gpt-4o's count.
        ("tile:2833:5667", (1024, 1024), "high", 2833 + 4 * 5667),
        ("tile:2833:5667", (1024, 1024), "low", 2833),
        # Patch models: 1024x1024 = 1024 patches; 1800x2400 scales to 1452 patches (guide).
        ("patch:1.0", (1024, 1024), "auto", 1024),
        ("patch:1.0", (1800, 2400), "auto", 1452),
        ("patch:1.62", (1024, 1024), "auto", 1659),  # ceil(1024 x 1.62)
        # Anthropic: w*h/750, the long edge fitted into 1568px, about 1600 at most.
        ("anthropic", (1000, 1000), "auto", 1334),
        ("anthropic", (200, 200), "auto", 54),
        ("anthropic", (4000, 3000), "auto", 1600),
        # Gemini: 258 when both sides <= 384px, else 258 per 768x768 tile.
        ("gemini", (384, 384), "auto", 258),
        ("gemini", (1024, 1024), "auto", 4 * 258),
        ("none", (1024, 1024), "auto", 0),
    ],
)
def test_image_tokens_follow_each_providers_rule(
    rule: str, size: tuple[int, int], detail: str, tokens: int
) -> None:
    assert image_tokens_by_rule(rule, *size, detail) == tokens


def test_the_offline_tokenizer_is_real_o200k() -> None:
    assert count_bpe_tokens("hello world") == 2  # [24912, 2375] in o200k_base
    assert count_bpe_tokens("") == 0


def photo_request(detail: str = "low") -> LlmRequest:
    image = ImagePart(url="https://img.example/p.jpg", detail=detail, width=1024, height=1024)
    content: list[TextPart | ImagePart] = [TextPart(text="Describe this mug."), image]
    return LlmRequest(
        id="r1", tenant="t", agent="a", messages=[ChatMessage(role="user", content=content)],
        max_output_tokens=200,
    )  # fmt: skip


def test_a_photo_bounds_by_the_models_own_image_rule() -> None:
    request = photo_request()
    mini, big = CATALOG.get("gpt-4o-mini"), CATALOG.get("gpt-4o")
    # Low detail: 85 tokens on gpt-4o but 2,833 on gpt-4o-mini.
    assert bound_input_tokens(request, big) < 120
    assert bound_input_tokens(request, mini) > 2833
    # So the photo costs more on the "cheaper" model: 2,833+ tokens at $0.15 > ~100 at $2.50.
    in_mini = max_request_cost(request, mini) - 200 * mini.output
    in_big = max_request_cost(request, big) - 200 * big.output
    assert in_mini > in_big
    claude = CATALOG.get("claude-sonnet-4")
    assert bound_input_tokens(request, claude) >= 1399  # 1024*1024/750 = 1399 + text


def test_the_bound_is_never_below_the_routers_estimate_and_grows_with_margin() -> None:
    request = photo_request()
    price = CATALOG.get("gemini-2.5-flash")
    estimate = estimate_input_tokens(request)
    plain = bound_input_tokens(request, price, estimate=estimate)
    assert plain >= estimate
    assert bound_input_tokens(request, price, estimate=10**6) == 10**6
    from decimal import Decimal

    assert bound_input_tokens(request, price, Decimal("1.5"), estimate=estimate) == -(
        -plain * 3 // 2
    )


@dataclass
class Gate:
    """A budget gate stand-in that holds everything and records what is settled."""

    settled: list[int] = field(default_factory=list)
    engine: EngineSettings = field(default_factory=EngineSettings)

    async def rules(self) -> BudgetRules:
        return BudgetRules()

    async def reserve(self, request_id: str, subject: Subject, max_cost: int) -> Reservation:
        return Reservation(code=Code.RESERVED)

    async def extend(self, request_id: str, subject: Subject, extra_cost: int) -> Reservation:
        return Reservation(code=Code.RESERVED)

    async def settle(
        self, request_id: str, subject: Subject, *, cost: int, messages: int, at_ms: int
    ) -> Settlement:
        self.settled.append(cost)
        return Settlement(applied=True, held=True)

    async def release(self, request_id: str, subject: Subject | None = None) -> bool:
        return True

    def hold(self, request_id: str, subject: Subject) -> list[int]:
        return []

    def unhold(self, held: list[int]) -> None:
        return None

    async def wait_for_release(self, timeout_s: float) -> None:
        return None


async def test_an_answer_over_its_reservation_is_booked_counted_and_alerted() -> None:
    gate = Gate()
    alerts: list[tuple[BudgetAlert, str]] = []

    async def sink(alert: BudgetAlert, msg_id: str) -> None:
        alerts.append((alert, msg_id))

    stage = BudgetStage(gate, CATALOG, lambda model: "sim", overrun_alerts=sink)
    request = photo_request()
    ctx = RequestContext(request=request)
    ctx.route = Route(model="gpt-4o", provider="sim", reason="test")
    reserved = max_request_cost(
        request, CATALOG.get("gpt-4o"), gate.engine.input_margin,
        estimate=estimate_input_tokens(request),
    )  # fmt: skip
    billed = reserved + 1234

    async def provider(_: RequestContext) -> LlmResult:
        return LlmResult(
            request_id=request.id, tenant="t", agent="a", status=Status.OK, model="gpt-4o",
            cost_micro_usd=billed,
        )  # fmt: skip

    before = OVERRUNS.labels("t")._value.get()
    result = await stage(ctx, provider)
    assert result.cost_micro_usd == billed and gate.settled == [billed]  # booked in full
    assert OVERRUNS.labels("t")._value.get() == before + 1
    [(alert, msg_id)] = alerts
    assert (alert.kind, alert.limit_micro_usd, alert.spent_micro_usd) == (
        "overrun", reserved, billed
    )  # fmt: skip
    assert msg_id == "overrun-r1" and alert.request_id == "r1"


def test_routing_costs_a_photo_by_each_models_own_rule() -> None:
    from router.routing.features import extract

    features = extract(photo_request(detail="high"))
    mini = features.input_tokens_on(CATALOG.get("gpt-4o-mini").image_rule)
    big = features.input_tokens_on(CATALOG.get("gpt-4o").image_rule)
    gemini = features.input_tokens_on(CATALOG.get("gemini-2.0-flash-lite").image_rule)
    text = features.input_tokens - features.counted_image_tokens
    assert (mini - text, big - text, gemini - text) == (2833 + 4 * 5667, 765, 4 * 258)
    # So gpt-4o-mini is the dearer of the two OpenAI models for this photo.
    assert mini * CATALOG.get("gpt-4o-mini").input > big * CATALOG.get("gpt-4o").input


def test_a_text_of_millions_of_characters_is_counted_not_refused() -> None:
    """bpe-openai refuses to encode about a million characters at once; the router's 4 MiB
    request bound lets such a text in, so it is counted in pieces (it raised ValueError:
    "Input too long to encode safely", and the request ended as an internal error)."""
    text = "hello world " * 250_000  # 3,000,000 characters, 500,000 tokens
    assert abs(count_bpe_tokens(text) - 500_000) <= 50
    assert count_bpe_tokens("x" * 1_200_000) > 0
