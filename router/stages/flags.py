"""Feature flags, the outermost stage: levers off, routing policy, model, prompt variant and
experiment arm, as the live flags say for this request. Only in-memory work per request."""

from __future__ import annotations

import msgspec

from bus.messages import LlmResult
from router.context import RequestContext
from router.flags.decide import FlagDecision, apply_prompt
from router.flags.live import LiveFlags
from router.pipeline import Handler


class FlagsStage:
    """Apply the flags' decision to the request's context, then call the rest."""

    name = "flags"

    def __init__(self, live: LiveFlags) -> None:
        self.live = live

    async def __call__(self, ctx: RequestContext, call_next: Handler) -> LlmResult:
        """Set ctx.disabled_levers, routing_policy, arm and the request's model hint."""
        flags = await self.live.current()
        decision = flags.decide(ctx.request) if flags else None
        if decision is not None:
            apply_decision(ctx, decision)
        return await call_next(ctx)


def apply_decision(ctx: RequestContext, decision: FlagDecision) -> None:
    """Write a flag decision into a request's context."""
    ctx.disabled_levers = ctx.disabled_levers | decision.disabled
    if decision.routing_policy:
        ctx.routing_policy = decision.routing_policy
    if decision.arm:
        ctx.arm = decision.arm
    request = ctx.request
    if decision.prompt is not None:
        request = apply_prompt(request, decision.prompt)
    if decision.model:
        request = msgspec.structs.replace(request, model_hint=decision.model)
    ctx.request = request
