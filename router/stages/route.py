"""Routing: choose the model and provider for a request (first cut: hint, else default)."""

from __future__ import annotations

from bus.messages import LlmResult
from router.context import RequestContext, Route
from router.errors import NoRouteError
from router.pipeline import Handler
from router.providers.registry import ProviderRegistry


class RouteStage:
    """Pick the requested model if a provider offers it, else the default model."""

    name = "route"

    def __init__(self, registry: ProviderRegistry, default_model: str) -> None:
        self._registry = registry
        self._default_model = default_model

    async def __call__(self, ctx: RequestContext, call_next: Handler) -> LlmResult:
        """Set ctx.route, then call the rest."""
        hint = ctx.request.model_hint
        if hint and self._registry.offering(hint) is not None:
            model, reason = hint, f"requested model {hint}"
        else:
            model, reason = self._default_model, f"default model {self._default_model}"
        client = self._registry.offering(model)
        if client is None:
            raise NoRouteError(f"no configured provider offers {model}")
        ctx.route = Route(model=model, provider=client.name, reason=reason)
        return await call_next(ctx)
