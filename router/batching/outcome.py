"""What a held request gets back: its own result, or word to go the normal way alone."""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from bus.messages import ErrorCode, Lever, LlmResult, Status, Usage
from router.context import RequestContext
from router.validation import parse_answer


@dataclass(frozen=True, kw_only=True)
class Alone:
    """Go the normal way (a dispatch of its own), carrying any share already paid for it.

    A packed item that failed validation was still paid for: its share of the packed call is
    added to the result of its retry, so the shares of every call reach the ledger.
    """

    reason: str
    usage: Usage = field(default_factory=Usage)
    cost_micro_usd: int = 0


Outcome = LlmResult | Alone
"""What a packing window or a batch hands back to the request it held."""


def with_share(result: LlmResult, alone: Alone) -> LlmResult:
    """The result of a retry, with the share of the earlier call added to its usage and cost."""
    if not alone.cost_micro_usd and alone.usage == Usage():
        return result
    usage = Usage(
        input_tokens=result.usage.input_tokens + alone.usage.input_tokens,
        cached_input_tokens=result.usage.cached_input_tokens + alone.usage.cached_input_tokens,
        output_tokens=result.usage.output_tokens + alone.usage.output_tokens,
    )
    reason = f"{result.reason} (retried alone: {alone.reason})"
    return msgspec.structs.replace(
        result,
        usage=usage,
        cost_micro_usd=result.cost_micro_usd + alone.cost_micro_usd,
        reason=reason,
    )


def answered(
    ctx: RequestContext,
    *,
    content: str,
    model: str,
    provider: str,
    usage: Usage,
    cost_micro_usd: int,
    baseline_micro_usd: int,
    lever: Lever,
    reason: str,
    simulated: bool,
    pack_size: int = 0,
    savings_by_lever: dict[str, int] | None = None,
    checked: tuple[object | None, str] | None = None,
) -> LlmResult:
    """The result of a request answered by a packed call or a batch, validated as dispatch does:
    an answer invalid for the schema is an error result that still cost. checked: content's
    (parsed, problem) against the request's schema when the caller has already checked it."""
    request = ctx.request
    parsed: object | None = None
    status, code = Status.OK, None
    if request.output_schema is not None:
        if checked is None:
            checked = parse_answer(content, request.output_schema.schema)
        parsed, problem = checked
        if problem:
            status, code, reason = Status.ERROR, ErrorCode.SCHEMA_INVALID, problem
    return LlmResult(
        request_id=request.id,
        tenant=request.tenant,
        agent=request.agent,
        status=status,
        error_code=code,
        reason=reason,
        content=content,
        parsed=parsed,
        model=model,
        provider=provider,
        usage=usage,
        cost_micro_usd=cost_micro_usd,
        baseline_micro_usd=baseline_micro_usd,
        lever=lever,
        latency_ms=ctx.elapsed_ms(),
        simulated=simulated,
        pack_size=pack_size,
        savings_by_lever=savings_by_lever or {},
    )


def retry_refused(ctx: RequestContext, alone: Alone) -> LlmResult:
    """The over-budget result of a packed item whose retry alone no budget has room for; it
    carries the share already paid, so the ledger still records it (with no saving claimed)."""
    request = ctx.request
    route = ctx.route
    return LlmResult(
        request_id=request.id,
        tenant=request.tenant,
        agent=request.agent,
        status=Status.ERROR,
        error_code=ErrorCode.OVER_BUDGET,
        reason=f"{alone.reason}; a budget has no room to retry it alone",
        model=route.model if route else "",
        provider=route.provider if route else "",
        usage=alone.usage,
        cost_micro_usd=alone.cost_micro_usd,
        baseline_micro_usd=alone.cost_micro_usd,
        lever=Lever.PACKED,
        latency_ms=ctx.elapsed_ms(),
    )
