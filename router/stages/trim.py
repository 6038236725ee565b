"""Prompt trimming: the request is sent trimmed, and its baseline stays the untrimmed one."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

from bus.messages import Lever, LlmRequest, LlmResult, Usage
from cost_ledger.catalog import PriceCatalog
from cost_ledger.pricing import baseline_micro_usd
from router.context import RequestContext
from router.levers.served import with_trim_savings
from router.levers.trimming import Trimmed, TrimPolicy, trim
from router.pipeline import Handler

THREAD_ABOVE_CHARS = 64 * 1024
"""Requests with more text than this are trimmed in a worker thread."""


class TrimStage:
    """Trim each request by its task type's policy; price the tokens saved into the baseline."""

    name = "trim"

    def __init__(
        self,
        policies: Mapping[str, TrimPolicy],
        catalog: PriceCatalog,
        baseline_model: str,
        default: TrimPolicy | None = None,
    ) -> None:
        self._policies = dict(policies)
        self._default = default or TrimPolicy()
        self._catalog = catalog
        self._baseline_model = baseline_model
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="trim")

    async def __call__(self, ctx: RequestContext, call_next: Handler) -> LlmResult:
        """Replace ctx.request by its trimmed form, then call the rest."""
        if Lever.TRIMMED in ctx.disabled_levers:  # switched off by a flag
            return await call_next(ctx)
        policy = self._policies.get(ctx.request.task_type, self._default)
        if _text_chars(ctx.request) > THREAD_ABOVE_CHARS:
            # Counting a long history's tokens takes tens of ms of CPU. In one worker thread
            # the event loop still gets its share of the GIL, so heartbeats, dedup claims and
            # short requests go on meanwhile; more threads would starve the loop instead.
            loop = asyncio.get_running_loop()
            trimmed: Trimmed = await loop.run_in_executor(self._worker, trim, ctx.request, policy)
        else:
            trimmed = trim(ctx.request, policy)
        ctx.request = trimmed.request
        result = await call_next(ctx)
        if trimmed.saved_input_tokens <= 0:
            return result
        saved = Usage(input_tokens=trimmed.saved_input_tokens)
        saved_micro = baseline_micro_usd(self._catalog, self._baseline_model, saved)
        return with_trim_savings(result, saved_micro, trimmed.saved_input_tokens, trimmed.changes)


def _text_chars(request: LlmRequest) -> int:
    """Characters of text in the messages: a cheap measure of how long trimming will take."""
    return sum(len(text) for message in request.messages for text in message.texts())


def trim_policies(
    history_budget: Mapping[str, int], output_cap: Mapping[str, int], step: int
) -> dict[str, TrimPolicy]:
    """One TrimPolicy per task type named in either setting."""
    return {
        task: TrimPolicy(
            history_budget=history_budget.get(task, 0),
            step=step,
            output_cap=output_cap.get(task, 0),
        )
        for task in {*history_budget, *output_cap}
    }
