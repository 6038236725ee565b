"""A request that meets Redis (or NATS) away before it paid anything is given back for a
later delivery, not answered with `internal`; once it paid, it is answered and booked."""

from __future__ import annotations

import pytest
from faststream.nats import NatsBroker
from redis.exceptions import ClusterDownError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError

from bus.consumers import redelivery_delay_s
from bus.messages import ChatMessage, ErrorCode, LlmRequest, LlmResult, Usage
from bus.settings import Settings
from router.context import PaidCall, RequestContext
from router.errors import UnavailableError
from router.pipeline import Handler
from router.service import RouterService, retry_later


class Failing:
    """A stage that fails with exc, after noting a paid call when paid."""

    name = "failing"

    def __init__(self, exc: Exception, *, paid: bool = False) -> None:
        self.exc = exc
        self.paid = paid

    async def __call__(self, ctx: RequestContext, call_next: Handler) -> LlmResult:
        if self.paid:
            usage = Usage(input_tokens=10, output_tokens=5)
            ctx.paid.append(PaidCall(model="gpt-4o-mini", provider="sim", usage=usage,
                                     cost_micro_usd=7, simulated=True))  # fmt: skip
        raise self.exc


async def never(ctx: RequestContext) -> LlmResult:
    raise AssertionError("the terminal handler must not be reached")


def service(stage: Failing) -> RouterService:
    return RouterService(
        settings=Settings(),
        stages=[stage],
        terminal=never,
        catalog_version="test",
        broker=NatsBroker(),  # never connected: answer() publishes nothing
    )


REQUEST = LlmRequest(
    id="r1",
    tenant="t1",
    agent="a1",
    task_type="text_generation",
    messages=[ChatMessage(role="user", content="a title for a mug")],
)


def test_a_store_away_is_retried_and_bad_data_is_not() -> None:
    assert retry_later(RedisConnectionError("Connection refused"))
    assert retry_later(ClusterDownError("CLUSTERDOWN The cluster is down"))
    assert retry_later(UnavailableError("budget counters are being rebuilt"))
    assert not retry_later(ResponseError("WRONGTYPE Operation against a key"))
    assert not retry_later(ValueError("bad"))
    assert [redelivery_delay_s(n) for n in (1, 2, 3, 4, 5, 9)] == [0.5, 1, 2, 4, 8, 8]


@pytest.mark.parametrize(
    "exc", [RedisConnectionError("refused"), UnavailableError("counters rebuilt")]
)
async def test_an_unpaid_request_is_given_back_for_a_redelivery(exc: Exception) -> None:
    with pytest.raises(type(exc)):
        await service(Failing(exc)).answer(REQUEST)


async def test_a_paid_request_is_answered_and_booked_not_paid_again() -> None:
    result = await service(Failing(RedisConnectionError("refused"), paid=True)).answer(REQUEST)
    assert result.error_code is ErrorCode.INTERNAL
    assert result.cost_micro_usd == 7  # booked: its ledger event settles what it paid
