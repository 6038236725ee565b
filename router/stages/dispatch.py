"""Dispatch: the one stage that pays, calling the routed provider and pricing its answer."""

from __future__ import annotations

from opentelemetry import trace

from bus.messages import ErrorCode, Lever, LlmResult, Status
from cost_ledger.catalog import PriceCatalog
from cost_ledger.pricing import baseline_micro_usd, cost_micro_usd
from router.context import RequestContext
from router.errors import DeadlineExceededError, NoRouteError
from router.providers.registry import ProviderRegistry
from router.validation import parse_answer


class Dispatcher:
    """Terminal handler: call the provider, validate the answer, price it against the baseline."""

    def __init__(
        self,
        registry: ProviderRegistry,
        catalog: PriceCatalog,
        baseline_model: str,
        tracer: trace.Tracer,
    ) -> None:
        self._registry = registry
        self._catalog = catalog
        self._baseline_model = baseline_model
        self._tracer = tracer

    async def __call__(self, ctx: RequestContext) -> LlmResult:
        """Make the paid call; a schema-invalid answer is an error result that still costs."""
        route = ctx.route
        if route is None:
            raise NoRouteError("the request reached dispatch without a route")
        remaining = ctx.remaining_s()
        if remaining is not None and remaining <= 0:
            raise DeadlineExceededError("the deadline passed before dispatch")
        client = self._registry.get(route.provider)
        request = ctx.request
        with self._tracer.start_as_current_span(
            f"chat {route.model}", kind=trace.SpanKind.CLIENT
        ) as span:
            span.set_attribute("flipsync.route_reason", route.reason)
            completion = await client.complete(request, route.model, remaining)
            cost = cost_micro_usd(self._catalog.get(route.model), completion.usage)
            baseline = baseline_micro_usd(self._catalog, self._baseline_model, completion.usage)
            span.set_attribute("flipsync.cost_micro_usd", cost)
            span.set_attribute("flipsync.baseline_micro_usd", baseline)
        parsed: object | None = None
        status, code, reason = Status.OK, None, route.reason
        if request.output_schema is not None:
            parsed, problem = parse_answer(completion.content, request.output_schema.schema)
            if problem:
                status, code, reason = Status.ERROR, ErrorCode.SCHEMA_INVALID, problem
        return LlmResult(
            request_id=request.id,
            tenant=request.tenant,
            agent=request.agent,
            status=status,
            error_code=code,
            reason=reason,
            content=completion.content,
            parsed=parsed,
            tool_calls=completion.tool_calls,
            model=completion.model,
            provider=client.name,
            usage=completion.usage,
            cost_micro_usd=cost,
            baseline_micro_usd=baseline,
            lever=Lever.ROUTED,
            latency_ms=ctx.elapsed_ms(),
            simulated=client.config.simulated,
        )
