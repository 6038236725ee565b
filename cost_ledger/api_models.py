"""The JSON shapes of the cost API (cost_ledger/http.py): money in integer micro-dollars.

Rates, ratios and z-scores are floats; money never is. Days are "YYYY-MM-DD" and hours
"YYYY-MM-DDTHH", both UTC.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict


class _Shape(BaseModel):
    model_config = ConfigDict(frozen=True)


class Filter(_Shape):
    """What a response is about: a tenant (or all), an agent or a model or a workspace (and
    project), and a day range."""

    tenant: str | None = None
    agent: str | None = None
    model: str | None = None
    start: date | None = None
    """First UTC day included; None: from the first day in the ledger (at most
    slices.MAX_RANGE_DAYS days before the end)."""
    end: date | None = None
    """Last UTC day included; None: up to the last day in the ledger (at most
    slices.MAX_RANGE_DAYS days after the start). A range is at most MAX_RANGE_DAYS days."""
    workspace: str | None = None
    """One workspace of the tenant (not with agent or model)."""
    project: str | None = None
    """One project of the workspace (needs workspace)."""


class Metrics(_Shape):
    """Summed ledger events."""

    spend_micro_usd: int = 0
    baseline_micro_usd: int = 0
    savings_micro_usd: int = 0
    """Baseline minus spend."""
    calls: int = 0
    """Requests served, by any lever."""
    paid_calls: int = 0
    """Requests that paid for an upstream provider call."""
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    simulated_events: int = 0
    cost_per_call_micro_usd: int = 0
    """Spend over calls, rounded half up."""


class Row(Metrics):
    """Metrics of one member of a breakdown (a lever, an agent, a model, a day...)."""

    name: str


class Rates(_Shape):
    """Shares of calls served by each free lever, and the packing factor."""

    cache_hit_rate: float = 0.0
    """Exact plus semantic cache hits over calls."""
    exact_cache_hit_rate: float = 0.0
    semantic_cache_hit_rate: float = 0.0
    dedup_rate: float = 0.0
    """Calls answered by an identical call in flight, over calls."""
    packed_items: int = 0
    """Calls served inside a packed provider call."""
    packing_factor: float | None = None
    """Items per packed provider call; None when no packed call recorded its size."""


class Products(_Shape):
    """Cost per product: the spend of the events that belong to a workflow (one per product)."""

    products: int = 0
    spend_micro_usd: int = 0
    baseline_micro_usd: int = 0
    cost_per_product_micro_usd: int = 0


class SpendResponse(_Shape):
    """GET /api/cost/spend."""

    filter: Filter
    simulated: bool
    """Whether any event came from the simulated provider (no real money moved)."""
    totals: Metrics
    rates: Rates
    products: Products | None
    """None under an agent or model filter: the cube keeps workflows only for every event."""
    savings_by_lever: dict[str, int]
    """What each lever took off the naive cost, net of its own cost, micro-dollars: from each
    event's split (cost_ledger.savings) when the filter has no agent or model, else baseline
    minus actual of the calls each lever served."""
    by_lever: list[Row]
    by_agent: list[Row]
    """Cost per operation by agent: see cost_per_call_micro_usd."""
    by_model: list[Row]
    by_task_type: list[Row]
    by_tenant: list[Row]
    """Empty unless the filter is all tenants with no agent or model."""
    by_day: list[Row]
    by_workspace: list[Row] = []
    """Spend by workspace (empty under an agent or model filter)."""
    by_project: list[Row] = []
    """Spend by project, each named <workspace>/<project> (empty under an agent or model
    filter)."""
    gross_savings_by_lever: dict[str, int] = {}
    """Each lever's part of baseline minus actual before its own cost (the split summed);
    not its saving: savings_by_lever is, gross less lever_cost_micro_usd."""
    lever_cost_micro_usd: dict[str, int] = {}
    """What each lever's own calls cost, by the lever charged (routed: routing's shadow
    evaluations, judgements and the cascade's failed attempts; semantic_cache: its shadow
    checks). For each lever, savings_by_lever = gross_savings_by_lever - this."""


class BudgetRow(_Shape):
    """One budget (or tier quota) in its current period."""

    budget: str
    scope: str
    period: str
    period_key: str
    unit: Literal["usd", "messages"]
    """usd: limit, spent, reserved and remaining are micro-dollars; messages: messages."""
    policy: str
    limit: int
    spent: int
    reserved: int
    remaining: int
    utilization: float
    alerts_sent: list[int]
    """Thresholds in percent (50, 80, 100) alerted in this period."""


class BudgetsResponse(_Shape):
    """GET /api/cost/budgets."""

    filter: Filter
    budgets: list[BudgetRow]


class DayAmount(_Shape):
    """Spend of one day, with its interval when it is a forecast."""

    day: date
    spend_micro_usd: int
    lower_micro_usd: int | None = None
    upper_micro_usd: int | None = None


class HorizonForecast(_Shape):
    """Total spend forecast over the next `days` days, with its interval."""

    days: int
    spend_micro_usd: int
    lower_micro_usd: int
    upper_micro_usd: int


class ForecastResponse(_Shape):
    """GET /api/cost/forecast."""

    filter: Filter
    status: Literal["ok", "not_enough_history"]
    reason: str
    method: str
    confidence: float
    """Interval coverage, e.g. 0.9."""
    history_days: int
    min_history_days: int
    history: list[DayAmount]
    """The daily series the model was fitted on (missing days as 0)."""
    horizons: list[HorizonForecast]
    """30, 60 and 90 days; empty when status is not_enough_history."""
    daily: list[DayAmount]
    """Per-day forecast for the longest horizon, each day with its interval."""


class Cause(_Shape):
    """How much one agent, model or lever moved in an anomalous hour versus its baseline."""

    dimension: Literal["agent", "model", "lever"]
    name: str
    observed_micro_usd: int
    """Its spend in the hour (for a cost-per-call anomaly: its share of the cost per call)."""
    baseline_micro_usd: int
    """Its median hour (for a cost-per-call anomaly: its usual share of the cost per call)."""
    change_micro_usd: int


class SpendAnomaly(_Shape):
    """An hour whose spend is far above the usual hour."""

    hour: str
    spend_micro_usd: int
    baseline_micro_usd: int
    """The median hour of the window."""
    score: float
    """Robust z-score: 0.6745 (x - median) / MAD."""
    likely_cause: str
    causes: list[Cause]
    """Largest change first."""


class CostPerCallAnomaly(_Shape):
    """An hour in which one agent's cost per call was far above its usual."""

    agent: str
    hour: str
    calls: int
    cost_per_call_micro_usd: int
    baseline_cost_per_call_micro_usd: int
    score: float
    likely_cause: str
    causes: list[Cause]


class AnomaliesResponse(_Shape):
    """GET /api/cost/anomalies."""

    filter: Filter
    method: str
    threshold: float
    hours: int
    """Hours scanned (missing hours count as zero spend)."""
    spend: list[SpendAnomaly]
    cost_per_call: list[CostPerCallAnomaly]


class Recommendation(_Shape):
    """One way to spend less, with its estimated monthly saving."""

    kind: Literal["cheaper_tier", "cache_misses", "long_prompts"]
    title: str
    detail: str
    monthly_saving_micro_usd: int
    agent: str | None = None
    task_type: str | None = None
    model: str | None = None
    """The model it uses now (cheaper_tier)."""
    suggested_model: str | None = None
    evidence: dict[str, float | int | str] = {}


class RecommendationsResponse(_Shape):
    """GET /api/cost/recommendations."""

    filter: Filter
    window_days: int
    """Days of ledger the estimates are scaled from (monthly = 30 days)."""
    total_monthly_saving_micro_usd: int
    items: list[Recommendation]
    """Largest saving first."""


class TimeseriesResponse(_Shape):
    """GET /api/cost/timeseries: one value per day in `days`, for the dashboard's charts."""

    filter: Filter
    simulated: bool = False
    """Whether any event came from the simulated provider (no real money moved)."""
    days: list[date]
    spend_micro_usd: list[int]
    baseline_micro_usd: list[int]
    calls: list[int]
    savings_by_lever: dict[str, list[int]]
    """Per lever and day, as the spend view's savings_by_lever: net of the lever's own cost
    where the split is kept (no agent, model or workspace filter), else the served lever's."""
    spend_by_model: dict[str, list[int]]
    calls_by_model: dict[str, list[int]]
    """Routing mix: calls each model served per day."""
    products: list[int] | None
    """Distinct workflows (products) with events that day; None under an agent or model
    filter (not available there)."""
    cost_per_product_micro_usd: list[int] | None
    """None under an agent or model filter."""


class HourlyResponse(_Shape):
    """GET /api/cost/hourly: one value per UTC hour, for the dashboard when the ledger spans
    less than two days (a daily chart of one or two points says nothing)."""

    filter: Filter
    hours: list[str]
    """YYYY-MM-DDTHH, from the first to the last hour with events (at most HOURLY_MAX_HOURS,
    the most recent), missing hours included."""
    spend_micro_usd: list[int]
    calls: list[int]
    baseline_micro_usd: list[int] | None
    """None under an agent or model filter (not kept per hour there)."""
    calls_by_lever: dict[str, list[int]]
    """What served the calls of each hour: paid levers and zero-call ones (caches, dedup...)."""
    spend_by_model: dict[str, list[int]]
