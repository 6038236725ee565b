"""Recommendations from the ledger and quality data, each with an estimated monthly saving.

- cheaper_tier: an agent's spend on a model re-priced on a cheaper-tier model whose quality
  on the agent's task types is acceptable (at least MIN_QUALITY and at most MAX_QUALITY_DROP
  below the current model's).
- cache_misses: task types whose cache hit rate is below the fleet's; the saving is the
  extra hits at the fleet's rate times what a miss of that task type costs.
- long_prompts: agents whose input/output token ratio is far above the fleet's median; the
  saving is the input cost above that median ratio.

Savings are measured over the filter's days and scaled to 30 days. Quality estimates per
(model, task type) come from a QualitySource; a pair it does not know falls back to the
catalog's placeholder quality of the model.
"""

from __future__ import annotations

import statistics
from collections.abc import Awaitable, Callable, Mapping
from decimal import ROUND_HALF_UP, Decimal

import redis.asyncio as aioredis

from cost_ledger.aggregates import AggregateStore, Totals
from cost_ledger.api_models import Filter, Recommendation, RecommendationsResponse
from cost_ledger.catalog import ModelPrice, PriceCatalog, Tier
from cost_ledger.cube import CubeDim, agent_slice, day_bucket
from cost_ledger.report import usd
from cost_ledger.slices import Cube, CubeReader, check_filter

QualityEstimates = Mapping[tuple[str, str], float]
"""Estimated answer quality (0..1) per (model, task type)."""
QualitySource = Callable[[], Awaitable[QualityEstimates]]
"""Reads the current quality estimates (e.g. router/routing quality data in Redis)."""

MIN_QUALITY = 0.7
MAX_QUALITY_DROP = 0.05
MIN_TASK_SHARE = 0.1
"""Task types below this share of an agent's calls do not veto a cheaper model."""
MIN_CALLS = 20
"""Fewer calls than this and a rate or ratio is noise."""
LONG_PROMPT_FACTOR = 2.0
"""An agent's input/output ratio must be this many times the fleet median to be flagged."""
WINDOW_DAYS = 30
"""Days read when the filter has no start: the ledger's last 30 days."""
MONTH_DAYS = 30
_TIER_RANK = {Tier.ECONOMY: 0, Tier.STANDARD: 1, Tier.PREMIUM: 2}


def recorded_quality(redis: aioredis.Redis, catalog: PriceCatalog) -> QualitySource:
    """The quality routing records (router/routing/quality_store.py), as posterior means."""

    async def read() -> QualityEstimates:
        # Imported here: the router depends on the ledger, not the other way round.
        from router.routing.quality_store import quality_estimates

        estimates = await quality_estimates(redis, catalog=catalog)
        return {pair: estimate.mean for pair, estimate in estimates.items()}

    return read


async def recommendations_view(
    store: AggregateStore,
    where: Filter,
    catalog: PriceCatalog,
    quality: QualitySource | None = None,
) -> RecommendationsResponse:
    """Every recommendation for a filter, largest monthly saving first."""
    reader = CubeReader(
        store, check_filter(where).model_copy(update={"agent": None, "model": None})
    )
    days = await reader.days()
    if where.start is None:
        days = days[-WINDOW_DAYS:]
    buckets = [day_bucket(d) for d in days]
    scale = Decimal(MONTH_DAYS) / len(days) if days else Decimal(0)
    whole = await reader.summed(buckets)
    agents = sorted(whole.of(CubeDim.AGENT)) if where.agent is None else [where.agent]
    per_agent = {a: await reader.summed(buckets, agent_slice(a)) for a in agents}
    estimates = await quality() if quality is not None else {}
    items: list[Recommendation] = []
    for agent, cube in per_agent.items():
        items += cheaper_tier(agent, cube, catalog, estimates, scale, only_model=where.model)
    if where.model is None:
        if where.agent is None:
            items += cache_misses(whole, scale)
        fleet = long_prompt_median(whole)
        for agent, cube in per_agent.items():
            items += long_prompts(agent, cube, catalog, fleet, scale)
    items.sort(key=lambda r: (-r.monthly_saving_micro_usd, r.kind, r.agent or "", r.title))
    return RecommendationsResponse(
        filter=where,
        window_days=len(days),
        total_monthly_saving_micro_usd=sum(r.monthly_saving_micro_usd for r in items),
        items=items,
    )


def quality_of(
    estimates: QualityEstimates, catalog: PriceCatalog, model: str, task_type: str
) -> float:
    """The estimated quality of a model on a task type (catalog placeholder if unknown)."""
    if (model, task_type) in estimates:
        return estimates[(model, task_type)]
    return catalog.get(model).quality if model in catalog else 0.0


def list_cost(price: ModelPrice, t: Totals) -> Decimal:
    """What some tokens cost at a model's list prices, in micro-dollars (no batch discount)."""
    uncached = t.input_tokens - t.cached_input_tokens
    return (
        uncached * price.input
        + t.cached_input_tokens * price.cached_input
        + t.output_tokens * price.output
    )


def cheaper_tier(
    agent: str,
    cube: Cube,
    catalog: PriceCatalog,
    estimates: QualityEstimates,
    scale: Decimal,
    *,
    only_model: str | None = None,
) -> list[Recommendation]:
    """For each model an agent pays for, the cheaper-tier model of acceptable quality that
    saves most, if any."""
    tasks = cube.of(CubeDim.TASK_TYPE)
    total_calls = sum(t.calls for t in tasks.values()) or 1
    main_tasks = [name for name, t in tasks.items() if t.calls / total_calls >= MIN_TASK_SHARE]
    out: list[Recommendation] = []
    for model, used in cube.of(CubeDim.MODEL).items():
        if model not in catalog or used.spend_micro_usd <= 0 or used.calls < MIN_CALLS:
            continue  # a handful of calls (a shadow check, say) says nothing about a tier
        if only_model is not None and model != only_model:
            continue
        current = catalog.get(model)
        best: tuple[Decimal, ModelPrice, float] | None = None
        for cand in catalog.models():
            if _TIER_RANK[cand.tier] >= _TIER_RANK[current.tier] or not cand.routable:
                continue
            if current.vision and not cand.vision:
                continue
            worst = min(
                (
                    quality_of(estimates, catalog, cand.name, task)
                    - max(
                        MIN_QUALITY, quality_of(estimates, catalog, model, task) - MAX_QUALITY_DROP
                    )
                    for task in main_tasks
                ),
                default=quality_of(estimates, catalog, cand.name, "")
                - max(MIN_QUALITY, current.quality - MAX_QUALITY_DROP),
            )
            if worst < 0:
                continue
            saving = Decimal(used.spend_micro_usd) - list_cost(cand, used)
            if saving > 0 and (best is None or saving > best[0]):
                q = min(
                    (quality_of(estimates, catalog, cand.name, t) for t in main_tasks),
                    default=cand.quality,
                )
                best = (saving, cand, q)
        if best is None:
            continue
        saving, cand, q = best
        monthly = _micro(saving * scale)
        if monthly <= 0:
            continue
        out.append(
            Recommendation(
                kind="cheaper_tier",
                title=f"{agent}: {model} -> {cand.name}",
                detail=(
                    f"{agent} spent {usd(used.spend_micro_usd)} on {model} ({current.tier}) over "
                    f"{used.calls} calls; the same tokens on {cand.name} ({cand.tier}) cost "
                    f"{usd(_micro(list_cost(cand, used)))}, at estimated quality {q:.2f} on "
                    f"{', '.join(main_tasks) or 'its tasks'}"
                ),
                monthly_saving_micro_usd=monthly,
                agent=agent,
                task_type=main_tasks[0] if len(main_tasks) == 1 else None,
                model=model,
                suggested_model=cand.name,
                evidence={
                    "calls": used.calls,
                    "spend_micro_usd": used.spend_micro_usd,
                    "candidate_cost_micro_usd": _micro(list_cost(cand, used)),
                    "candidate_quality": round(q, 3),
                },
            )
        )
    return out


def cache_misses(whole: Cube, scale: Decimal) -> list[Recommendation]:
    """Task types whose cache hit rate is below the fleet's, and what misses cost them."""
    t = whole.totals
    if t.calls == 0:
        return []
    fleet_rate = Decimal(t.exact_hits + t.semantic_hits) / t.calls
    out: list[Recommendation] = []
    for task, row in whole.of(CubeDim.TASK_TYPE).items():
        hits = row.exact_hits + row.semantic_hits
        misses = row.calls - hits
        if row.calls < MIN_CALLS or misses <= 0:
            continue
        rate = Decimal(hits) / row.calls
        if rate >= fleet_rate:
            continue
        extra_hits = row.calls * (fleet_rate - rate)
        per_miss = Decimal(row.spend_micro_usd) / misses
        monthly = _micro(extra_hits * per_miss * scale)
        if monthly <= 0:
            continue
        out.append(
            Recommendation(
                kind="cache_misses",
                title=f"task type {task} misses the cache",
                detail=(
                    f"{task}: {hits} of {row.calls} calls hit the cache ({rate:.1%}) against "
                    f"{fleet_rate:.1%} fleet-wide; a miss costs {usd(_micro(per_miss))}. "
                    "Normalise its prompts (ids, dates, whitespace) or widen its semantic cache."
                ),
                monthly_saving_micro_usd=monthly,
                task_type=task,
                evidence={
                    "calls": row.calls,
                    "hits": hits,
                    "hit_rate": round(float(rate), 4),
                    "fleet_hit_rate": round(float(fleet_rate), 4),
                    "cost_per_miss_micro_usd": _micro(per_miss),
                },
            )
        )
    return out


def long_prompt_median(whole: Cube) -> float | None:
    """The fleet's median input/output token ratio over agents with enough calls."""
    ratios = [
        t.input_tokens / t.output_tokens
        for t in whole.of(CubeDim.AGENT).values()
        if t.calls >= MIN_CALLS and t.output_tokens > 0
    ]
    return statistics.median(ratios) if ratios else None


def long_prompts(
    agent: str, cube: Cube, catalog: PriceCatalog, fleet: float | None, scale: Decimal
) -> list[Recommendation]:
    """An agent whose prompts are far longer for their output than the fleet's median."""
    t = cube.totals
    if fleet is None or t.calls < MIN_CALLS or t.output_tokens <= 0 or t.input_tokens <= 0:
        return []
    ratio = t.input_tokens / t.output_tokens
    if ratio < LONG_PROMPT_FACTOR * fleet:
        return []
    excess = Decimal(1) - Decimal(fleet * t.output_tokens) / t.input_tokens
    input_cost = sum(
        (
            (u.input_tokens - u.cached_input_tokens) * catalog.get(m).input
            + u.cached_input_tokens * catalog.get(m).cached_input
            for m, u in cube.of(CubeDim.MODEL).items()
            if m in catalog
        ),
        Decimal(0),
    )
    monthly = _micro(excess * input_cost * scale)
    if monthly <= 0:
        return []
    return [
        Recommendation(
            kind="long_prompts",
            title=f"{agent}: prompts {ratio:.0f}x their output",
            detail=(
                f"{agent} sends {t.input_tokens} input tokens for {t.output_tokens} output "
                f"tokens ({ratio:.1f}:1, fleet median {fleet:.1f}:1); trimming its prompts to "
                f"the fleet's ratio saves {excess:.0%} of its input cost."
            ),
            monthly_saving_micro_usd=monthly,
            agent=agent,
            evidence={
                "input_tokens": t.input_tokens,
                "output_tokens": t.output_tokens,
                "ratio": round(ratio, 2),
                "fleet_median_ratio": round(fleet, 2),
                "input_cost_micro_usd": _micro(input_cost),
            },
        )
    ]


def _micro(value: Decimal) -> int:
    return int(value.to_integral_value(ROUND_HALF_UP))
