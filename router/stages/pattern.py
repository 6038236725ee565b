"""Pattern responder: trivial conversational turns answered from templates, without a call."""

from __future__ import annotations

from collections.abc import Collection

from bus.messages import Lever, LlmResult, Status, Usage
from cost_ledger.catalog import PriceCatalog
from cost_ledger.pricing import baseline_micro_usd
from router.context import RequestContext
from router.levers.patterns import template_for, trivial_reply
from router.levers.trimming import prompt_tokens
from router.pipeline import Handler
from router.tokens import count_text_tokens


class PatternStage:
    """Answer "hi", "thanks", "ok, done" from a template; anything else goes to the rest."""

    name = "pattern"

    def __init__(
        self, task_types: Collection[str], catalog: PriceCatalog, baseline_model: str
    ) -> None:
        self._task_types = frozenset(task_types)
        self._catalog = catalog
        self._baseline_model = baseline_model

    async def __call__(self, ctx: RequestContext, call_next: Handler) -> LlmResult:
        """A template answer for a trivial turn, else the rest's answer."""
        request = ctx.request
        off = Lever.PATTERN in ctx.disabled_levers  # switched off by a flag
        intents = None if off else trivial_reply(request, self._task_types)
        if intents is None:
            return await call_next(ctx)
        reply = template_for(intents)
        # The naive path would have sent the whole request for an answer of about this size.
        naive = Usage(input_tokens=prompt_tokens(request), output_tokens=count_text_tokens(reply))
        return LlmResult(
            request_id=request.id,
            tenant=request.tenant,
            agent=request.agent,
            status=Status.OK,
            reason=f"trivial turn ({', '.join(intents)}) answered from a template",
            content=reply,
            cost_micro_usd=0,
            baseline_micro_usd=baseline_micro_usd(self._catalog, self._baseline_model, naive),
            lever=Lever.PATTERN,
            latency_ms=ctx.elapsed_ms(),
        )
