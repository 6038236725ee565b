"""Where each budget stands: limit, spent, reserved, period and alerts sent, and a table of it."""

from __future__ import annotations

import io
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from decimal import Decimal

from rich.table import Table

from bus.messages import (
    DEFAULT_PROJECT,
    DEFAULT_WORKSPACE,
    BudgetAlert,
    BudgetPeriod,
    BudgetPolicy,
    BudgetScope,
    BudgetSpec,
    now_ms,
)
from cost_ledger.aggregates import AggregateStore
from cost_ledger.api_models import BudgetRow
from cost_ledger.budgets import keys
from cost_ledger.budgets.crossings import Crossing
from cost_ledger.budgets.periods import period_key
from cost_ledger.budgets.policy import (
    THRESHOLDS,
    Subject,
    Unit,
    scope_id,
    thresholds_reached,
    user_scope_id,
)
from cost_ledger.budgets.store import BudgetStore
from cost_ledger.keys import Dimension
from cost_ledger.pricing import to_usd
from cost_ledger.text_console import plain_console


@dataclass(frozen=True, kw_only=True)
class BudgetStatus:
    """One budget (or tier quota) in one scope and the current period."""

    budget: str
    scope: str
    """Scope id: global, tenant:<t>, agent:<t>:<a>, workflow:<t>:<w>, workspace:<t>:<ws>,
    project:<t>:<ws>:<p>, user:<t>:<u>."""
    period: BudgetPeriod
    period_key: str
    unit: Unit
    """usd: amounts in micro-dollars; messages: amounts in messages."""
    policy: BudgetPolicy
    limit: int
    spent: int
    """Settled."""
    reserved: int
    """Held by requests in flight."""
    alerts_sent: tuple[int, ...]
    """Thresholds (percent) already alerted in this period, at this limit."""

    @property
    def remaining(self) -> int:
        """What is left for new requests, counting in-flight reservations."""
        return max(self.limit - self.spent - self.reserved, 0)

    @property
    def utilization(self) -> Decimal:
        """Spent over limit (0 for a zero limit)."""
        return Decimal(self.spent) / self.limit if self.limit else Decimal(0)


async def budget_status(
    store: BudgetStore,
    tenant: str | None = None,
    *,
    agent: str | None = None,
    workflow: str | None = None,
    user: str | None = None,
    tier: str | None = None,
    at_ms: int | None = None,
    workspace: str | None = None,
    project: str | None = None,
) -> list[BudgetStatus]:
    """Every budget that concerns a tenant (or all tenants) in its current period.

    Global budgets are listed only for all tenants (no tenant given): their spend is every
    tenant's, so a tenant's view (a tenant's API key is always one) would read the others'
    spend from it (found by review: three calls of tenant "victim" moved the global row a
    tenant "attacker" read). Agent budgets without a named agent are listed for each agent
    the ledger has seen; workflow budgets need a workflow (theirs or the argument); a tier
    quota needs a user; workspace and project budgets without a named one are listed for the
    argument's, else for the default workspace and project.
    """
    place = (workspace or DEFAULT_WORKSPACE, project or DEFAULT_PROJECT)
    rules = await store.live.current()
    at = at_ms or now_ms()
    seen = AggregateStore(store.redis)
    tenants = [tenant] if tenant else await seen.members(Dimension.TENANT)
    rows: list[tuple[BudgetSpec | None, Subject, str, BudgetPeriod, int, BudgetPolicy, Unit]] = []
    for spec in rules.budgets.values():
        found = await _subjects(
            spec, seen, tenants, agent, workflow, place, one_tenant=tenant is not None
        )
        for subject in found:
            scope = scope_id(spec.scope, subject)
            if scope is not None:
                rows.append(
                    (spec, subject, scope, spec.period, spec.limit_micro_usd, spec.policy, Unit.USD)
                )
    if user and tenant:
        subject = Subject(tenant=tenant, agent="", user=user, tier=tier or "")
        quota = rules.tiers.get(subject.tier or store.live.engine.default_tier)
        scope = user_scope_id(subject)
        if quota is not None and scope is not None:
            rows.append(
                (None, subject, scope, quota.period, quota.messages, BudgetPolicy.REFUSE,
                 Unit.MESSAGES)
            )  # fmt: skip
    async with store.redis.pipeline(transaction=False) as pipe:
        for row_spec, _, scope, period, limit, _, _ in rows:
            counter = f"{scope}:{period_key(period, at)}"
            pipe.hmget(keys.counter(counter), ["spent", "reserved"])
            for percent in THRESHOLDS:
                name = row_spec.name if row_spec is not None else ""
                pipe.exists(keys.alert(name, counter, limit, percent))
        replies = await pipe.execute()
    out: list[BudgetStatus] = []
    step = 1 + len(THRESHOLDS)
    for i, (row_spec, subject, scope, period, limit, policy, unit) in enumerate(rows):
        (spent, reserved), *marks = replies[i * step : (i + 1) * step]
        quota_name = f"tier:{subject.tier or store.live.engine.default_tier}"
        out.append(
            BudgetStatus(
                budget=row_spec.name if row_spec is not None else quota_name,
                scope=scope,
                period=period,
                period_key=period_key(period, at),
                unit=unit,
                policy=policy,
                limit=limit,
                spent=int(spent or 0),
                reserved=int(reserved or 0),
                alerts_sent=tuple(p for p, m in zip(THRESHOLDS, marks, strict=True) if m),
            )
        )
    return out


async def _subjects(
    spec: BudgetSpec,
    seen: AggregateStore,
    tenants: list[str],
    agent: str | None,
    workflow: str | None,
    place: tuple[str, str] = (DEFAULT_WORKSPACE, DEFAULT_PROJECT),
    *,
    one_tenant: bool = False,
) -> list[Subject]:
    if spec.scope is BudgetScope.GLOBAL:
        return [Subject(tenant="", agent="")] if not one_tenant else []
    names = [spec.tenant] if spec.tenant else tenants
    if spec.tenant and tenants and spec.tenant not in tenants:
        return []
    out: list[Subject] = []
    for name in names:
        if spec.scope is BudgetScope.TENANT:
            out.append(Subject(tenant=name, agent=""))
        elif spec.scope is BudgetScope.AGENT:
            if spec.agent and agent and spec.agent != agent:
                continue
            named = spec.agent or agent
            agents = [named] if named else await seen.members(Dimension.AGENT, name)
            out.extend(Subject(tenant=name, agent=a) for a in agents)
        elif spec.scope in (BudgetScope.WORKSPACE, BudgetScope.PROJECT):
            where = spec.workspace or place[0]
            out.append(
                Subject(tenant=name, agent="", workspace=where, project=spec.project or place[1])
            )
        elif spec.workflow or workflow:
            out.append(Subject(tenant=name, agent="", workflow=spec.workflow or workflow or ""))
    return out


async def alert_standing(store: BudgetStore, budgets: Collection[str]) -> list[BudgetAlert]:
    """Send the alerts that spend already owes to these budgets: one set at or below what its
    scopes have spent this period is past its thresholds now, not at its next settle (which
    may never come: a budget used up refuses every request). Each alert once (its marker)."""
    owed = [
        Crossing(
            budget=row.budget,
            scope=row.scope,
            period=row.period,
            period_key=row.period_key,
            limit=row.limit,
            spent=row.spent,
            percent=percent,
        )
        for row in await store.status()
        if row.budget in budgets and row.spent > 0
        for percent in thresholds_reached(row.spent, row.limit)
        if percent not in row.alerts_sent
    ]
    return await store.alerter.fire(owed)


def render_status(rows: Iterable[BudgetStatus], *, width: int | None = None) -> str:
    """Budgets as a plain text table (width: the terminal's when None)."""
    out = io.StringIO()
    console = plain_console(out, width)
    table = Table(title="Budgets", title_justify="left")
    for column in ("budget", "scope", "period", "limit", "spent", "reserved", "used", "alerts"):
        named = column in ("budget", "scope")
        # On a narrow terminal a value wraps, never cut: "$5.0000…" hid a limit (review).
        table.add_column(column, justify="left" if named else "right", overflow="fold")
    any_row = False
    for row in rows:
        any_row = True
        table.add_row(
            row.budget,
            row.scope,
            row.period_key[1:],  # the key's d/m marks day or month; the date says it
            _amount(row.limit, row.unit),
            _amount(row.spent, row.unit),
            _amount(row.reserved, row.unit),
            f"{row.utilization * 100:.1f}%",
            " ".join(f"{p}%" for p in row.alerts_sent) or "-",
        )
    if not any_row:
        return "Budgets: none apply\n"
    console.print(table)
    return out.getvalue()


def budget_row(row: BudgetStatus) -> BudgetRow:
    """One budget in the API's shape (GET /api/cost/budgets, `flipsync budget show --json`)."""
    return BudgetRow(
        budget=row.budget,
        scope=row.scope,
        period=row.period.value,
        period_key=row.period_key,
        unit=row.unit.value,
        policy=row.policy.value,
        limit=row.limit,
        spent=row.spent,
        reserved=row.reserved,
        remaining=row.remaining,
        utilization=float(row.utilization),
        alerts_sent=list(row.alerts_sent),
    )


def _amount(value: int, unit: Unit) -> str:
    return f"${to_usd(value):,.6f}" if unit is Unit.USD else str(value)
