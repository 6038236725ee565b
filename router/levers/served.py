"""Results of requests that a lever served without a paid call of their own, and attribution.

Such a result is the request's own (its id, tenant and agent), costs nothing, reports no
tokens (none were sent for it), and keeps as its baseline what the naive path would have
paid for the same answer, so the ledger shows the saving under the lever that made it.
"""

from __future__ import annotations

import msgspec

from bus.messages import ErrorCode, Lever, LlmRequest, LlmResult, Status, Usage

SHAREABLE_ERRORS = frozenset(
    {ErrorCode.PROVIDER_ERROR, ErrorCode.PROVIDER_RATE_LIMITED, ErrorCode.SCHEMA_INVALID}
)
"""Errors that would be the same for an identical request, so coalesced waiters share them.
Others (a passed deadline, a refused budget) belong to the one request and are not shared."""


def shareable(result: LlmResult) -> bool:
    """Whether an identical request may be given this outcome instead of asking again."""
    return result.ok or result.error_code in SHAREABLE_ERRORS


def served_copy(
    source: LlmResult, request: LlmRequest, lever: Lever, reason: str, latency_ms: float
) -> LlmResult:
    """source's answer as request's own result, served by lever at no cost."""
    if not source.ok:
        return LlmResult(
            request_id=request.id,
            tenant=request.tenant,
            agent=request.agent,
            status=Status.ERROR,
            error_code=source.error_code,
            reason=f"{reason}: {source.reason}",
            latency_ms=latency_ms,
            simulated=source.simulated,
        )
    return LlmResult(
        request_id=request.id,
        tenant=request.tenant,
        agent=request.agent,
        status=Status.OK,
        reason=reason,
        content=source.content,
        parsed=source.parsed,
        tool_calls=source.tool_calls,
        model=source.model,
        provider=source.provider,
        usage=Usage(),
        cost_micro_usd=0,
        baseline_micro_usd=source.baseline_micro_usd,
        lever=lever,
        latency_ms=latency_ms,
        simulated=source.simulated,
        finish_reason=source.finish_reason,
    )


def with_trim_savings(
    result: LlmResult, saved_micro_usd: int, saved_tokens: int, changes: tuple[str, ...]
) -> LlmResult:
    """result with the trimmed tokens' naive price added to its baseline.

    A paid call that trimming made cheaper is attributed to TRIMMED; a result another lever
    served keeps that lever, and the trimming only raises its baseline to the untrimmed one.
    """
    if saved_tokens <= 0 or result.baseline_micro_usd <= 0:
        return result
    lever = Lever.TRIMMED if result.lever is Lever.ROUTED else result.lever
    note = f"trimmed {saved_tokens} input tokens ({', '.join(changes)})"
    split = dict(result.savings_by_lever)
    split[Lever.TRIMMED.value] = split.get(Lever.TRIMMED.value, 0) + saved_micro_usd
    return msgspec.structs.replace(
        result,
        savings_by_lever=split,
        baseline_micro_usd=result.baseline_micro_usd + saved_micro_usd,
        lever=lever,
        reason=f"{result.reason}; {note}" if result.reason else note,
    )
