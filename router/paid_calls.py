"""What a request paid: the provider calls noted on its context, and a result that carries them.

Dispatch makes each provider call through router.paid_answers.PaidAnswers (kept answers, lost
calls booked), or, without a store, notes it here (``paid_call``). Whatever fails after a
paid answer, the request's result still carries its cost (``booked``), so the call is in the
ledger and its reservation settled.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec

from bus.messages import Lever, LlmRequest, LlmResult, Usage
from cost_ledger.budgets.config import EngineSettings
from cost_ledger.catalog import PriceCatalog
from cost_ledger.pricing import cost_micro_usd
from router.context import PaidCall, RequestContext
from router.paid_answers import PaidAnswers
from router.providers.client import Completion
from router.token_bound import max_request_cost


def booked(ctx: RequestContext, result: LlmResult) -> LlmResult:
    """result, carrying the cost of the calls ctx paid for when it carries none itself.

    An error after a provider answered (a bug, a failed stage) would otherwise leave a
    paid call out of the ledger and its reservation unsettled.
    """
    if result.cost_micro_usd > 0 or not (ctx.paid or ctx.shared_micro_usd):
        return result
    usage = Usage(
        input_tokens=sum(p.usage.input_tokens for p in ctx.paid),
        cached_input_tokens=sum(p.usage.cached_input_tokens for p in ctx.paid),
        output_tokens=sum(p.usage.output_tokens for p in ctx.paid),
    )
    cost = paid_micro_usd(ctx)  # a packed share paid before going alone included
    if ctx.paid:
        last = ctx.paid[-1]
        model, provider, simulated, lever = last.model, last.provider, last.simulated, Lever.ROUTED
    else:  # only a packed call's share: it was paid on the route's model
        route = ctx.route
        model, provider = (route.model, route.provider) if route else (result.model, "")
        simulated, lever = result.simulated, Lever.PACKED
    return msgspec.structs.replace(
        result,
        model=model,
        provider=provider,
        usage=usage,
        cost_micro_usd=cost,
        baseline_micro_usd=cost,  # no saving is claimed for a failed request
        lever=lever,
        simulated=simulated,
    )


def call_bound(
    answers: PaidAnswers | None,
    catalog: PriceCatalog,
    request: LlmRequest,
    model: str,
    input_tokens: int,
) -> int:
    """The most one call of request to model can cost: what it is booked at if lost
    (PaidAnswers.most, with the budgets' input margin), else with the default margin."""
    if answers is not None:
        return answers.most(request, model, input_tokens)
    margin = EngineSettings().input_margin
    return max_request_cost(request, catalog.get(model), margin, estimate=input_tokens)


def paid_micro_usd(ctx: RequestContext) -> int:
    """What ctx's request has paid providers so far, for its own settle: its calls and a
    packed call's share it paid before going alone (not what was booked for it elsewhere)."""
    return sum(p.cost_micro_usd for p in ctx.paid) + ctx.shared_micro_usd


async def paid_call(
    answers: PaidAnswers | None,
    ctx: RequestContext,
    *,
    provider: str,
    model: str,
    input_tokens: int,
    simulated: bool,
    catalog: PriceCatalog,
    make: Callable[[], Awaitable[Completion]],
) -> Completion:
    """One provider call through answers, or, without a store, just noted on ctx."""
    if answers is not None:
        return await answers.call(
            ctx,
            provider=provider,
            model=model,
            input_tokens=input_tokens,
            simulated=simulated,
            make=make,
        )
    completion = await make()
    cost = cost_micro_usd(catalog.get(model), completion.usage)
    ctx.paid.append(PaidCall(model=model, provider=provider, usage=completion.usage,
                             cost_micro_usd=cost, simulated=simulated))  # fmt: skip
    return completion
