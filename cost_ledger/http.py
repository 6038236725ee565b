"""The cost API: a FastAPI router over the ledger's Redis view (money in integer micro-dollars).

Every endpoint takes the query parameters ``tenant``, ``agent``, ``model`` (at most one of
agent and model), ``start`` and ``end`` (UTC days, YYYY-MM-DD, both included), echoes them
back as ``filter``, and answers 400 with code ``bad_filter`` for a bad one (a range of more
than slices.MAX_RANGE_DAYS days included; an open start or end is clamped to the days the
ledger has seen, then to MAX_RANGE_DAYS days). A refusal's HTTPException detail is
``{"message", "code", "param"}``, which the API (api.errors) answers in its one error shape,
``{"error": {"message", "type", "param", "code"}}``. Shapes (see
cost_ledger/api_models.py for every field):

- GET /api/cost/spend -> {filter, simulated, totals: Metrics, rates: {cache_hit_rate,
  exact_cache_hit_rate, semantic_cache_hit_rate, dedup_rate, packed_items, packing_factor},
  products: {products, spend_micro_usd, baseline_micro_usd, cost_per_product_micro_usd} or
  null under an agent or model filter (workflows are not kept per agent or model),
  savings_by_lever: {lever: micro}, by_lever|by_agent|by_model|by_task_type|by_tenant|by_day:
  [Row]}, where Metrics = {spend_micro_usd, baseline_micro_usd, savings_micro_usd, calls,
  paid_calls, input_tokens, cached_input_tokens, output_tokens, simulated_events,
  cost_per_call_micro_usd} and Row = Metrics + {name}.
- GET /api/cost/budgets -> {filter, budgets: [{budget, scope, period, period_key, unit,
  policy, limit, spent, reserved, remaining, utilization, alerts_sent: [50|80|100]}]}: each
  budget in its current period (tenant and agent narrow it; model, start, end do not).
- GET /api/cost/forecast -> {filter, status: "ok"|"not_enough_history", reason, method,
  confidence, history_days, min_history_days, history: [{day, spend_micro_usd}],
  horizons: [{days: 30|60|90, spend_micro_usd, lower_micro_usd, upper_micro_usd}],
  daily: [{day, spend_micro_usd, lower_micro_usd, upper_micro_usd}]}.
- GET /api/cost/anomalies -> {filter, method, threshold, hours, spend: [{hour,
  spend_micro_usd, baseline_micro_usd, score, likely_cause, causes: [Cause]}],
  cost_per_call: [{agent, hour, calls, cost_per_call_micro_usd,
  baseline_cost_per_call_micro_usd, score, likely_cause, causes: [Cause]}]}, where Cause =
  {dimension: agent|model|lever, name, observed_micro_usd, baseline_micro_usd,
  change_micro_usd}.
- GET /api/cost/recommendations -> {filter, window_days, total_monthly_saving_micro_usd,
  items: [{kind: cheaper_tier|cache_misses|long_prompts, title, detail,
  monthly_saving_micro_usd, agent, task_type, model, suggested_model, evidence: {}}]}.
- GET /api/cost/timeseries -> {filter, simulated, days: [day], spend_micro_usd: [int],
  baseline_micro_usd: [int], calls: [int], savings_by_lever: {lever: [int]} (as spend's),
  spend_by_model: {model: [int]}, calls_by_model: {model: [int]}, products: [int] | null,
  cost_per_product_micro_usd: [int] | null} (one value per day; the product series are null
  under an agent or model filter).
- GET /api/cost/hourly -> {filter, hours: ["YYYY-MM-DDTHH"], spend_micro_usd: [int],
  calls: [int], baseline_micro_usd: [int] | null, calls_by_lever: {lever: [int]},
  spend_by_model: {model: [int]}} (one value per UTC hour, the most recent 168 at most;
  the dashboard draws it when the ledger spans less than two days).

``workspace`` (and ``project``, named within its workspace) narrow spend, timeseries and
budgets (not with agent or model; spend then has no products and its savings_by_lever are the
served levers' baseline minus actual); spend adds by_workspace and by_project rows (a project
named <workspace>/<project>). The other views answer 400 to a workspace: they are not kept by
workspace, so a key bound to a workspace cannot read them.

An agent or model that is neither known (the agent specs, the price catalog: report.known_names)
nor in the filter's tenant's ledger is likely mistyped: every view answers 422 with code
``unknown_agent`` or ``unknown_model`` and a reason naming it and its close matches
(report.unknown_name, as `flipsync report` and `flipsync cost` say it), instead of zeros.

A model filter reads the model's own totals: its spend report has no breakdown by agent,
lever or task type, and its recommendations are only the cheaper tiers for that model.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

import redis.asyncio as aioredis
from fastapi import APIRouter, HTTPException, Query

from bus.settings import Settings
from cost_ledger.aggregates import AggregateStore
from cost_ledger.anomalies import anomalies_view
from cost_ledger.api_models import (
    AnomaliesResponse,
    BudgetsResponse,
    Filter,
    ForecastResponse,
    HourlyResponse,
    RecommendationsResponse,
    SpendResponse,
    TimeseriesResponse,
)
from cost_ledger.budgets.config import BudgetConfig
from cost_ledger.budgets.live import LiveBudgets
from cost_ledger.budgets.status import budget_row
from cost_ledger.budgets.store import BudgetStore
from cost_ledger.catalog import PriceCatalog
from cost_ledger.forecast import forecast_view
from cost_ledger.recommendations import QualitySource, recommendations_view, recorded_quality
from cost_ledger.report import known_names, unknown_name
from cost_ledger.slices import FilterError, check_filter
from cost_ledger.spend import hourly_view, spend_view, timeseries_view

PREFIX = "/api/cost"

Tenant = Annotated[str | None, Query(description="one tenant; all tenants when absent")]
Agent = Annotated[str | None, Query(description="one agent (not with model)")]
Model = Annotated[str | None, Query(description="one model (not with agent)")]
Start = Annotated[date | None, Query(description="first UTC day included, YYYY-MM-DD")]
End = Annotated[date | None, Query(description="last UTC day included, YYYY-MM-DD")]
Workspace = Annotated[
    str | None, Query(description="one workspace (spend, timeseries, budgets; not with agent)")
]
Project = Annotated[str | None, Query(description="one project of the workspace")]


def cost_api(
    redis: aioredis.Redis,
    settings: Settings,
    *,
    catalog: PriceCatalog | None = None,
    quality: QualitySource | None = None,
) -> APIRouter:
    """The /api/cost/* endpoints over a deployment's Redis.

    ``quality`` gives quality estimates per (model, task type) for the cheaper-tier
    recommendations; by default, the quality routing recorded in the same Redis (a pair with
    no record falls back to the catalog's placeholder).
    """
    router = APIRouter(prefix=PREFIX, tags=["cost"])
    store = AggregateStore(redis)
    prices = catalog or PriceCatalog.load()
    quality = quality or recorded_quality(redis, prices)
    budgets = BudgetStore(redis, LiveBudgets(redis, BudgetConfig.load(settings.budget_config)))

    async def checked(
        tenant: str | None, agent: str | None, model: str | None, start: date | None,
        end: date | None, workspace: str | None = None, project: str | None = None,
        *, places: bool = False,
    ) -> Filter:  # fmt: skip
        if not places and (workspace is not None or project is not None):
            raise refused(
                400,
                "this view is not kept by workspace or project (ask spend, timeseries or budgets)",
                code="not_kept_by_workspace",
                param="workspace" if workspace is not None else "project",
            )
        try:
            where = check_filter(
                Filter(
                    tenant=tenant, agent=agent, model=model, start=start, end=end,
                    workspace=workspace, project=project,
                )
            )  # fmt: skip
        except FilterError as exc:
            raise refused(400, str(exc), code="bad_filter") from None
        # A mistyped agent or model read as zero spend (the CLI already refused it): the
        # same check, on this tenant's ledger names only.
        known = await known_names(redis, settings, where)
        if unknown := await unknown_name(store, where, known, tenant_only=True):
            field = "agent" if where.agent is not None else "model"
            raise refused(422, unknown, code=f"unknown_{field}", param=field)
        return where

    @router.get("/spend")
    async def spend(
        tenant: Tenant = None, agent: Agent = None, model: Model = None,
        start: Start = None, end: End = None, workspace: Workspace = None,
        project: Project = None,
    ) -> SpendResponse:  # fmt: skip
        """Spend, savings per lever, cost per operation and per product, hit rates."""
        where = await checked(tenant, agent, model, start, end, workspace, project, places=True)
        return await spend_view(store, where)

    @router.get("/timeseries")
    async def timeseries(
        tenant: Tenant = None, agent: Agent = None, model: Model = None,
        start: Start = None, end: End = None, workspace: Workspace = None,
        project: Project = None,
    ) -> TimeseriesResponse:  # fmt: skip
        """Daily spend, savings per lever, routing mix and cost per product."""
        where = await checked(tenant, agent, model, start, end, workspace, project, places=True)
        return await timeseries_view(store, where)

    @router.get("/hourly")
    async def hourly(
        tenant: Tenant = None, agent: Agent = None, model: Model = None,
        start: Start = None, end: End = None,
    ) -> HourlyResponse:  # fmt: skip
        """Hourly spend, calls per lever and spend per model (the most recent week at most)."""
        return await hourly_view(store, await checked(tenant, agent, model, start, end))

    @router.get("/budgets")
    async def budget_rows(
        tenant: Tenant = None, agent: Agent = None, model: Model = None,
        start: Start = None, end: End = None, workspace: Workspace = None,
        project: Project = None,
    ) -> BudgetsResponse:  # fmt: skip
        """Each budget's limit, spent, reserved and alerts in its current period."""
        where = await checked(tenant, agent, model, start, end, workspace, project, places=True)
        rows = await budgets.status(
            where.tenant, agent=where.agent, workspace=where.workspace, project=where.project
        )
        return BudgetsResponse(
            filter=where,
            budgets=[budget_row(r) for r in rows],
        )

    @router.get("/forecast")
    async def forecast(
        tenant: Tenant = None, agent: Agent = None, model: Model = None,
        start: Start = None, end: End = None, workspace: Workspace = None,
        project: Project = None,
    ) -> ForecastResponse:  # fmt: skip
        """Spend over the next 30, 60 and 90 days, with an interval."""
        where = await checked(tenant, agent, model, start, end, workspace, project)
        return await forecast_view(store, where)

    @router.get("/anomalies")
    async def anomalies(
        tenant: Tenant = None, agent: Agent = None, model: Model = None,
        start: Start = None, end: End = None, workspace: Workspace = None,
        project: Project = None,
    ) -> AnomaliesResponse:  # fmt: skip
        """Hours of unusual spend, and of unusual cost per call per agent, with causes."""
        where = await checked(tenant, agent, model, start, end, workspace, project)
        return await anomalies_view(store, where)

    @router.get("/recommendations")
    async def recommendations(
        tenant: Tenant = None, agent: Agent = None, model: Model = None,
        start: Start = None, end: End = None, workspace: Workspace = None,
        project: Project = None,
    ) -> RecommendationsResponse:  # fmt: skip
        """Cheaper tiers at acceptable quality, cache misses, long prompts; monthly savings."""
        where = await checked(tenant, agent, model, start, end, workspace, project)
        return await recommendations_view(store, where, prices, quality)

    return router


def refused(status: int, message: str, *, code: str, param: str | None = None) -> HTTPException:
    """A refusal with its own code (and the parameter at fault), for api.errors to answer."""
    return HTTPException(status, {"message": message, "code": code, "param": param})
