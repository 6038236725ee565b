"""Routing: choose the model and provider for a request, with fallbacks and a reason.

An explicit ``model_hint`` that a configured provider offers wins (agents' escalation
retries and experiments use it). Otherwise the pure policy (router.routing.policy.rank)
picks among the catalog models the providers offer, from the request's features, quality
floor (its own, or its task type's from routing.task_quality_floors), deadline and
priority, the tenant's budget pressure (router.routing.pressure) and the recorded quality
of each model on the task type (router.routing.quality_store: catalog prior plus signals,
shared through Redis); the policy is the flag override (ctx.routing_policy) or the
configured one. A share of requests (routing.explore_share, off by default) routes on
Thompson samples of that quality instead of its mean, so that other models get signals too.
The fallbacks are the same model at other providers, then the next-best models, best first.
A task type listed in routing.cascade_task_types whose answer has a schema starts a
cascade on the cheapest rung when that is expected to cost less than the policy's pick
(see router.stages.cascade).

Cost per request: about 0.2 ms of CPU for the features (regex cues, token estimate) and
0.05-0.1 ms for the ranking, on the workflow's prompts.

The reason goes into ctx.route (and so the result, the ledger and the dispatch span) and
onto this stage's span as flipsync.route_reason.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Protocol

from opentelemetry import trace

from bus.messages import LlmRequest, LlmResult
from cost_ledger.catalog import PriceCatalog
from router.context import Fallback, RequestContext, Route
from router.errors import NoRouteError
from router.pipeline import Handler
from router.providers.registry import ProviderRegistry
from router.routing.calibrate import ValueController
from router.routing.candidates import Candidate, candidates_from_catalog
from router.routing.cascade import applies, build_ladder
from router.routing.config import RoutingConfig
from router.routing.errors import NoCandidateError
from router.routing.explore import cheaper_pick, explores
from router.routing.features import RequestFeatures, extract, request_text
from router.routing.latency import MeasuredLatency
from router.routing.learned import PromptRouter
from router.routing.neighbours import OutcomeMemory
from router.routing.pinning import SessionPins, session_of
from router.routing.policy import Policy, RouteDecision, rank
from router.routing.predict import PromptPredictor, PromptView, prompt_text
from router.routing.pressure import BudgetPressure
from router.routing.quality_store import QualityView
from router.stages.cascade import rung_route

log = logging.getLogger(__name__)
ROUTE_REASON = "flipsync.route_reason"
MAX_FALLBACKS = 3


def offered_models(registry: ProviderRegistry) -> dict[str, tuple[str, ...]]:
    """Each model the providers offer, with the providers offering it, in registry order."""
    out: dict[str, list[str]] = {}
    for name in registry.names():
        for model in registry.get(name).config.models:
            out.setdefault(model, []).append(name)
    return {model: tuple(providers) for model, providers in out.items()}


class RouteStage:
    """Set ctx.route from the hint or the policy, then call the rest."""

    name = "route"

    def __init__(
        self,
        registry: ProviderRegistry,
        catalog: PriceCatalog,
        *,
        config: RoutingConfig | None = None,
        policy: Policy = Policy.BALANCED,
        cascade_task_types: Iterable[str] = (),
        quality: QualityView | None = None,
        pressure: BudgetPressure | None = None,
        learned: PromptRouter | None = None,
        learned_task_types: Iterable[str] = (),
        explore_share: float = 0.0,
        latency: MeasuredLatency | None = None,
        predictor: PromptPredictor | None = None,
        controller: ValueController | None = None,
        pins: SessionPins | None = None,
        after: Sequence[OffPath] = (),
        neighbours: OutcomeMemory | None = None,
    ) -> None:
        """explore_share: the share of requests (by request id) routed on Thompson samples of
        the quality estimates instead of their means, so that models the policy does not
        pick still get quality signals. predictor: per-prompt chances (value mode, when the
        config has a value_weight). after: routing's own off-path calls started once an
        answer is back (shadow evaluation, judge grading). neighbours: this replica's
        recorded outcomes by prompt vector (router.routing.neighbours), read with the
        predictor's chances; each routed prompt's vector is remembered for its verdict."""
        self._registry = registry
        self._after = tuple(after)
        value_mode = config is not None and config.value_weight is not None
        self._predictor = predictor if value_mode else None
        self._controller = controller if value_mode else None
        self._neighbours = neighbours if self._predictor is not None else None
        self._pins = pins
        self._latency = latency
        self._explore_share = explore_share
        self._config = config or RoutingConfig()
        self._policy = policy
        self._cascade = frozenset(cascade_task_types)
        self._quality = quality
        self._pressure = pressure
        self._learned = learned
        self._learned_tasks = frozenset(learned_task_types)
        self._providers = offered_models(registry)
        primary = {model: providers[0] for model, providers in self._providers.items()}
        self._candidates = candidates_from_catalog(catalog, offered=primary)
        self._models = tuple(c.model for c in self._candidates)
        self._qualities = {c.model: c.quality for c in self._candidates}
        if not self._candidates:
            raise NoRouteError("no configured provider offers a catalog model")

    @property
    def candidates(self) -> tuple[Candidate, ...]:
        """The candidates this stage chooses among, one per model at its first provider."""
        return self._candidates

    def alternates(self, model: str, but: str = "") -> tuple[Fallback, ...]:
        """The model at each provider offering it (except the provider but)."""
        providers = self._providers.get(model, ())
        return tuple(Fallback(model=model, provider=p) for p in providers if p != but)

    async def __call__(self, ctx: RequestContext, call_next: Handler) -> LlmResult:
        """Set ctx.route, then call the rest."""
        ctx.route = await self.route(ctx)
        trace.get_current_span().set_attribute(ROUTE_REASON, ctx.route.reason)
        result = await call_next(ctx)
        for off_path in self._after:  # never waits: the answer goes out now
            off_path.start(ctx, result, call_next)
        return result

    async def close(self) -> None:
        """Wait for routing's off-path calls under way (the service is stopping)."""
        await asyncio.gather(*(off_path.drain() for off_path in self._after))

    async def route(self, ctx: RequestContext) -> Route:
        """The route of a request (see the module docstring); raises NoRouteError."""
        request = ctx.request
        hint = request.model_hint
        if hint:
            client = self._registry.offering(hint)
            if client is not None:  # fallbacks: models at least as good as the one asked for
                floor = max(
                    self._config.floor(request.task_type, request.quality_floor),
                    self._qualities.get(hint, 0.0),
                )
                try:
                    picks = await self._rank(
                        ctx, self._features(ctx), floor, exclude=hint, count=MAX_FALLBACKS
                    )
                except NoCandidateError:
                    picks = []
                if self._neighbours is not None:  # the asked-for model's verdict teaches too
                    hinted = await self._prompt_view(request.task_type, prompt_text(request))
                    if hinted is not None:
                        self._neighbours.remember(request.id, request.task_type, hinted.vector)
                return Route(
                    model=hint,
                    provider=client.name,
                    reason=f"requested model {hint}",
                    fallbacks=self._fallbacks(hint, client.name, picks),
                )
        features = self._features(ctx)
        floor = self._config.floor(request.task_type, request.quality_floor)
        session = session_of(request) if self._pins is not None else None
        explore = session is None and self._explores(request.id)  # never mid-session
        prompt = await self._prompt_view(request.task_type, prompt_text(request))
        if prompt is not None:
            features = replace(features, complexity=prompt.complexity)
            if self._neighbours is not None:  # its verdict files the vector (any model)
                self._neighbours.remember(request.id, request.task_type, prompt.vector)
        # Every model is ranked only where any may be chosen (an exploring request takes a
        # cheaper one, a session keeps its pinned one); else the pick and its fallbacks.
        every = explore or session is not None
        picks = await self._rank(
            ctx, features, floor, explore=explore, prompt=prompt,
            count=None if every else MAX_FALLBACKS + 1,
        )  # fmt: skip
        decision = picks[0]
        if self._controller is not None and prompt is not None and not explore:
            self._controller.observe(request.task_type, decision.quality, decision.best_quality)
        if explore:
            decision = self._explore_cheaper(request.id, picks) or replace(
                decision, reason=f"exploring (sampled quality): {decision.reason}"
            )
        if session is not None:
            decision = await self._pinned(request, session, picks, decision, floor)
        if applies(features, self._cascade) and session is None:
            cascade = await self._cascade_route(ctx, features, floor, decision)
            if cascade is not None:
                return cascade
        rest = [p for p in picks if p.model != decision.model]
        return Route(
            model=decision.model,
            provider=decision.provider,
            reason=decision.reason,
            fallbacks=self._fallbacks(decision.model, decision.provider, rest),
        )

    async def _pinned(
        self,
        request: LlmRequest,
        session: str,
        picks: Sequence[RouteDecision],
        decision: RouteDecision,
        floor: float,
    ) -> RouteDecision:
        """The session's pinned model while it still serves it (router.routing.pinning),
        else the policy's pick, pinned from now on. Redis trouble: the pick, unpinned."""
        assert self._pins is not None
        try:
            pinned = await self._pins.get(request, session)
            keep = next((p for p in picks if p.model == pinned), None)
            if keep is not None and keep.quality >= floor - 1e-9:
                return replace(keep, reason=f"pinned to session: {keep.reason}")
            await self._pins.set(request, session, decision.model)
        except Exception:  # pinning is a preference; the request goes on
            log.warning("session pin of %s unavailable", request.id, exc_info=True)
        return decision

    def _features(self, ctx: RequestContext) -> RequestFeatures:
        request = ctx.request
        if self._learned is not None and request.task_type in self._learned_tasks:
            return extract(request, complexity=self._learned.complexity(request_text(request)))
        return extract(request)

    async def _prompt_view(self, task_type: str, text: str) -> PromptView | None:
        """What value mode reads of a prompt; None without a predictor or when the embedder
        fails (the tier rules then apply)."""
        if self._predictor is None or not text:
            return None
        try:  # static vectors: tens of microseconds, computed here (no thread hop)
            difficulty, vector = self._predictor.view_now(text)
        except Exception:  # routing goes on without the prediction
            log.warning("prompt difficulty unavailable; routing on task-level quality")
            return None
        mean = self._predictor.observe(task_type, difficulty)
        return PromptView(difficulty, mean, self._predictor.complexity(difficulty, mean), vector)

    def _explores(self, request_id: str) -> bool:
        """Whether this request explores (router.routing.explore)."""
        return self._quality is not None and explores(request_id, self._explore_share)

    def _explore_cheaper(
        self, request_id: str, picks: Sequence[RouteDecision]
    ) -> RouteDecision | None:
        """An exploring request's cheaper model among the ranked ones, or None."""
        head = picks[0]
        rest = list(picks[1:])
        other = cheaper_pick(
            request_id, rest, [p.estimated_cost_micro_usd for p in rest],
            head.estimated_cost_micro_usd,
        )  # fmt: skip
        if other is None:
            return None
        return replace(other, reason=f"exploring a cheaper model than {head.model}: {other.reason}")

    async def _rank(
        self,
        ctx: RequestContext,
        features: RequestFeatures,
        floor: float,
        exclude: str = "",
        *,
        explore: bool = False,
        prompt: PromptView | None = None,
        count: int | None = None,
    ) -> list[RouteDecision]:
        """The policy's pick and the next-best ones, best first, count of them (None: every
        candidate; at least one unless exclude left none); raises NoCandidateError when none
        can take the request."""
        known: Sequence[Candidate] = self._candidates
        if self._latency is not None:  # measured at the providers, where they were called
            known = await self._latency.candidates(known)
        candidates = [c for c in known if c.model != exclude]
        if not candidates:
            return []
        request = ctx.request
        remaining = ctx.remaining_s()
        estimates = None
        if self._quality is not None and explore:
            rng = random.Random(request.id)  # the same request explores the same way
            estimates = await self._quality.sample(request.task_type, self._models, rng)
        elif self._quality is not None:
            estimates = await self._quality.estimates(request.task_type, self._models)
        config = self._config
        if self._predictor is not None and prompt is not None:
            base = estimates if estimates is not None else self._qualities
            estimates = self._predictor.chances(base, prompt.difficulty, prompt.mean)
            if self._neighbours is not None:
                estimates = self._neighbours.blend(request.task_type, prompt.vector, estimates)
            if self._controller is not None:
                config = replace(config, value_weight=self._controller.weight(request.task_type))
        elif config.value_weight is not None:
            config = replace(config, value_weight=None)  # no per-prompt chances: tier rules
        pressure = await self._pressure.of(request) if self._pressure is not None else 0.0
        return rank(
            features,
            candidates,
            policy=self._policy_of(ctx),
            quality_floor=floor,
            deadline_ms=None if remaining is None else max(remaining, 0.0) * 1000,
            priority=request.priority,
            budget_pressure=pressure,
            quality_estimates=estimates,
            config=config,
            count=len(candidates) if count is None else count,
        )

    def _fallbacks(
        self, model: str, provider: str, picks: Sequence[RouteDecision]
    ) -> tuple[Fallback, ...]:
        """The model at other providers, then the next-best models at theirs, capped."""
        out = list(self.alternates(model, but=provider))
        for pick in picks:
            out.append(Fallback(model=pick.model, provider=pick.provider))
            out.extend(self.alternates(pick.model, but=pick.provider))
        return tuple(out[:MAX_FALLBACKS])

    async def _cascade_route(
        self,
        ctx: RequestContext,
        features: RequestFeatures,
        floor: float,
        decision: RouteDecision,
    ) -> Route | None:
        """A cascade route on the ladder's first rung, when it is expected to cost less."""
        request = ctx.request
        rates = None
        if self._quality is not None:
            rates = await self._quality.estimates(request.task_type, self._models)
        ladder = build_ladder(
            features,
            self._candidates,
            quality_floor=floor,
            pass_rates=rates,
            output_fill=self._config.output_fill,
        )
        if len(ladder.rungs) < 2:
            return None
        first = ladder.first()
        expected = ladder.expected_cost_micro_usd()
        if first.model != decision.model and expected >= decision.estimated_cost_micro_usd:
            return None
        path = " > ".join(r.model for r in ladder.rungs)
        reason = (
            f"cascade {path} on {features.task_type}: expected {expected} micro-USD "
            f"against {decision.estimated_cost_micro_usd} for {decision.model}"
        )
        alternates = self.alternates(first.model, but=first.provider)
        return rung_route(ladder, first.model, first.provider, reason, alternates)

    def _policy_of(self, ctx: RequestContext) -> Policy:
        override = ctx.routing_policy
        if override:
            try:
                return Policy(override)
            except ValueError:
                log.warning("unknown routing policy %r; using %s", override, self._policy)
        return self._policy


class OffPath(Protocol):
    """Routing's own calls after an answer (router.stages.route_shadow, router.stages.judge)."""

    def start(self, ctx: RequestContext, result: LlmResult, call_next: Handler) -> bool:
        """Begin one in the background if this answer is chosen; never waits."""
        ...

    async def drain(self) -> None:
        """Wait for the ones under way."""
        ...
