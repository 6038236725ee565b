"""The route and cascade stages as the settings ask for them (router.stages.route,
router.stages.cascade), with routing's off-path calls: shadow evaluation and judge grading."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

import redis.asyncio as aioredis

from bus.settings import Settings
from cost_ledger.budgets.store import BudgetStore
from cost_ledger.catalog import PriceCatalog
from router.providers.registry import ProviderRegistry
from router.routing.calibrate import ValueController
from router.routing.config import RoutingConfig
from router.routing.defaults import ShippedDefaults
from router.routing.difficulty import DifficultyModel
from router.routing.grades import GradeStore
from router.routing.latency import MeasuredLatency
from router.routing.learned import PromptRouter
from router.routing.neighbours import OutcomeMemory
from router.routing.pinning import SessionPins
from router.routing.policy import Policy
from router.routing.predict import PromptPredictor
from router.routing.pressure import BudgetPressure
from router.routing.quality_store import QualityStore, QualityView
from router.routing.static_embedder import StaticEmbedder
from router.stages.cascade import CascadeStage
from router.stages.judge import Judges
from router.stages.off_path import Book
from router.stages.route import OffPath, RouteStage, offered_models
from router.stages.route_shadow import RouteShadows

log = logging.getLogger(__name__)


def routing_stages(
    settings: Settings,
    registry: ProviderRegistry,
    catalog: PriceCatalog,
    redis: aioredis.Redis,
    budgets: BudgetStore,
    *,
    book: Book | None = None,
    catalog_version: Callable[[], str] = str,
    neighbours: OutcomeMemory | None = None,
    grades: GradeStore | None = None,
) -> tuple[RouteStage, CascadeStage]:
    """The route stage (before budget) and the cascade stage (after it), sharing the quality
    counts in Redis. With book (publishes ledger events), routing's own calls are booked as
    its lever cost: the cascade's failed attempts, shadow evaluations and judgements (the
    latter two run only with it). neighbours: this replica's outcomes by prompt, read by
    the route stage and fed by the cascade's failed rungs and the shadow evaluations (the
    quality consumer feeds it the agents' verdicts). grades: where judgements are graded
    (the quality consumer's, so both send its grade alerts; default: one without alerts)."""
    routing = settings.routing
    store = QualityStore(redis, discount=routing.quality_discount)
    config = RoutingConfig.from_settings(routing)
    predictor = None
    if routing.predict_per_prompt:
        predictor = _predictor()
    controller = None
    if predictor is not None and config.value_weight is None:
        shipped = ShippedDefaults.load()
        config = replace(config, value_weight=shipped.value_weight)
        controller = ValueController(start=shipped.value_weight, target=routing.quality_target)
    view = QualityView(
        store,
        {m.name: m.quality for m in catalog.models()},
        prior_strength=routing.quality_prior_strength,
        refresh_s=routing.quality_refresh_s,
        offset_sd=routing.quality_offset_sd,
    )
    learned = PromptRouter.load() if routing.learned_task_types else None
    grades = grades or GradeStore(redis, default=routing.grade, by_agent=routing.grade_by_agent)
    after = _off_path(settings, registry, grades, store, book, catalog_version, neighbours)
    route = RouteStage(
        registry,
        catalog,
        config=config,
        policy=Policy(routing.policy),
        cascade_task_types=routing.cascade_task_types,
        quality=view,
        pressure=BudgetPressure(budgets),
        learned=learned,
        learned_task_types=routing.learned_task_types,
        explore_share=routing.explore_share,
        latency=MeasuredLatency(redis, refresh_s=routing.quality_refresh_s),
        predictor=predictor,
        controller=controller,
        pins=SessionPins(redis),
        after=after,
        neighbours=neighbours,
    )
    alternates = {model: route.alternates(model) for model in offered_models(registry)}
    cascade = CascadeStage(
        catalog,
        quality=store,
        alternates=alternates,
        input_margin=budgets.engine.input_margin,
        book=book,
        neighbours=neighbours,
    )
    return route, cascade


def _off_path(
    settings: Settings,
    registry: ProviderRegistry,
    grades: GradeStore,
    store: QualityStore,
    book: Book | None,
    catalog_version: Callable[[], str],
    neighbours: OutcomeMemory | None = None,
) -> list[OffPath]:
    """Shadow evaluation and judge grading as configured (neither without a book)."""
    routing = settings.routing
    out: list[OffPath] = []
    if book is None:
        return out
    if routing.shadow_share > 0:
        out.append(
            RouteShadows(
                share=routing.shadow_share,
                book=book,
                catalog_version=catalog_version,
                quality=store,
                neighbours=neighbours,
            )
        )
    if routing.judge_models and routing.judge_share > 0:
        providers = {model: names[0] for model, names in offered_models(registry).items()}
        out.append(
            Judges(
                models=routing.judge_models,
                providers=providers,
                share=routing.judge_share,
                grades=grades,
                book=book,
                catalog_version=catalog_version,
            )
        )
    return out


def _predictor() -> PromptPredictor | None:
    """The per-prompt predictor (shipped difficulty weights on static MiniLM vectors), or
    None when it cannot be built (value mode then stays off)."""
    try:
        return PromptPredictor(DifficultyModel.load(), StaticEmbedder())
    except Exception:
        log.warning("no prompt difficulty model; routing by complexity tiers", exc_info=True)
        return None
