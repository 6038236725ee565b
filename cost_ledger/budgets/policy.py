"""The budget arithmetic, pure: which budgets a request meets, what it holds, what alerts fire.

Nothing here does I/O; the store runs these decisions through its Redis scripts.

Scopes are counted per UTC period in counters named ``<scope>:<period key>``:

- ``global``, ``tenant:<t>``, ``agent:<t>:<a>``, ``workflow:<t>:<w>``, ``workspace:<t>:<ws>``,
  ``project:<t>:<ws>:<p>``: micro-dollars;
- ``user:<t>:<u>``: paid messages, for the message quotas of user tiers.

Agents, workflows, workspaces, projects and users are counted within their tenant (a project
within its workspace): tenants never share a budget, and every counter of a tenant carries
its hash tag (keys.group_of), so one reserve script stays in one Redis Cluster slot.
"""

from __future__ import annotations

import enum
import functools
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bus.memo import text_memo
from bus.messages import BudgetPeriod, BudgetPolicy, BudgetScope, BudgetSpec, LedgerEvent, TierQuota
from bus.subjects import token
from cost_ledger.budgets.keys import COUNTER_KEEP_S
from cost_ledger.budgets.periods import DAY_MS, period_end_ms, period_key, periods_held

THRESHOLDS = (50, 80, 100)
"""Alert thresholds, in percent of a budget's limit."""


class Unit(enum.StrEnum):
    """What a counter counts."""

    USD = "usd"
    """Micro-dollars."""
    MESSAGES = "messages"
    """Paid LLM messages of a user."""


@dataclass(frozen=True, kw_only=True)
class Subject:
    """Who a request is for: the parts of it that budgets and quotas are kept by."""

    tenant: str
    agent: str
    workflow: str = ""
    user: str = ""
    """LlmRequest.tags["user"]: the end user, for message quotas; empty means none."""
    tier: str = ""
    """LlmRequest.tags["tier"]: the user's tier; empty means the configured default tier."""
    workspace: str = ""
    """LlmRequest.workspace; empty (a subject built before workspaces) counts in none."""
    project: str = ""
    """LlmRequest.project, within the workspace; empty counts in none."""


@dataclass(frozen=True, kw_only=True)
class Check:
    """One counter a reservation must fit in, under the tightest budget on it."""

    counter: str
    """Counter id: <scope>:<period key>."""
    limit: int
    amount: int
    """What the request holds there: its maximum cost, or 1 message."""
    budget: str
    """The budget (or tier:<name>) whose limit this is."""
    scope: str
    period: BudgetPeriod
    period_key: str
    policy: BudgetPolicy
    unit: Unit
    expire_at_s: int
    """When Redis may drop the counter: COUNTER_KEEP_S after its period ends."""


@dataclass(frozen=True, kw_only=True)
class Charge:
    """One counter a settled request adds to."""

    counter: str
    scope: str
    period: BudgetPeriod
    period_key: str
    unit: Unit
    expire_at_s: int


@text_memo(4096)  # a user tag or workflow id can be megabytes: such a one is not kept
def name_token(value: str) -> str:
    """value if it is a safe key part, else a stable hash of it (~ and 20 hex digits)."""
    try:
        return token(value)
    except ValueError:
        return "~" + hashlib.blake2b(value.encode(), digest_size=10).hexdigest()


def scope_id(scope: BudgetScope, subject: Subject) -> str | None:
    """The scope instance of a subject, or None (a workflow scope without a workflow)."""
    if scope is BudgetScope.GLOBAL:
        return "global"
    tenant = name_token(subject.tenant)
    if scope is BudgetScope.TENANT:
        return f"tenant:{tenant}"
    if scope is BudgetScope.AGENT:
        return f"agent:{tenant}:{name_token(subject.agent)}"
    if scope is BudgetScope.WORKSPACE:
        if not subject.workspace:
            return None
        return f"workspace:{tenant}:{name_token(subject.workspace)}"
    if scope is BudgetScope.PROJECT:
        if not subject.workspace or not subject.project:
            return None
        return f"project:{tenant}:{name_token(subject.workspace)}:{name_token(subject.project)}"
    if not subject.workflow:
        return None
    return f"workflow:{tenant}:{name_token(subject.workflow)}"


def user_scope_id(subject: Subject) -> str | None:
    """The message-quota scope of a subject's user, or None without a user."""
    if not subject.user:
        return None
    return f"user:{name_token(subject.tenant)}:{name_token(subject.user)}"


def applies(spec: BudgetSpec, subject: Subject) -> bool:
    """Whether a budget counts a subject's requests."""
    if spec.scope is BudgetScope.GLOBAL:
        return True
    if spec.tenant and spec.tenant != subject.tenant:
        return False
    if spec.scope is BudgetScope.AGENT:
        return spec.agent in ("", subject.agent)
    if spec.scope is BudgetScope.WORKFLOW:
        return bool(subject.workflow) and spec.workflow in ("", subject.workflow)
    if spec.scope is BudgetScope.WORKSPACE:
        return bool(subject.workspace) and spec.workspace in ("", subject.workspace)
    if spec.scope is BudgetScope.PROJECT:
        return (
            bool(subject.workspace and subject.project)
            and spec.workspace in ("", subject.workspace)
            and spec.project in ("", subject.project)
        )
    return True


def expire_at_s(period: BudgetPeriod, at_ms: int) -> int:
    """When a counter of the period holding at_ms may go."""
    return period_end_ms(period, at_ms) // 1000 + COUNTER_KEEP_S


def checks(
    budgets: Iterable[BudgetSpec],
    tiers: Mapping[str, TierQuota],
    subject: Subject,
    *,
    max_cost: int,
    at_ms: int,
    overlap_ms: int,
    default_tier: str = "",
) -> list[Check]:
    """Every counter a request must fit in, one per counter (the tightest limit on it wins)."""
    found: dict[str, Check] = {}

    def add(check: Check) -> None:
        held = found.get(check.counter)
        if held is None or check.limit < held.limit:
            found[check.counter] = check

    for spec in budgets:
        scope = scope_id(spec.scope, subject)
        if scope is None or not applies(spec, subject):
            continue
        for key in periods_held(spec.period, at_ms, overlap_ms):
            add(
                Check(
                    counter=f"{scope}:{key}",
                    limit=spec.limit_micro_usd,
                    amount=max_cost,
                    budget=spec.name,
                    scope=scope,
                    period=spec.period,
                    period_key=key,
                    policy=spec.policy,
                    unit=Unit.USD,
                    expire_at_s=expire_at_s(spec.period, at_ms + overlap_ms),
                )
            )
    user = user_scope_id(subject)
    quota = tiers.get(subject.tier or default_tier)
    if user is not None and quota is not None:
        for key in periods_held(quota.period, at_ms, overlap_ms):
            add(
                Check(
                    counter=f"{user}:{key}",
                    limit=quota.messages,
                    amount=1,
                    budget=f"tier:{quota.tier}",
                    scope=user,
                    period=quota.period,
                    period_key=key,
                    policy=BudgetPolicy.REFUSE,
                    unit=Unit.MESSAGES,
                    expire_at_s=expire_at_s(quota.period, at_ms + overlap_ms),
                )
            )
    return list(found.values())


def charges(subject: Subject, at_ms: int) -> list[Charge]:
    """Every counter a request finished at at_ms adds to, whether or not a budget reads it.

    Keeping them all means a budget added in mid-period sees the period's whole spend, and a
    rebuild from the ledger gives the same counters whatever the budgets were.
    """
    return list(_charges_on_day(subject, at_ms // DAY_MS))


@functools.lru_cache(maxsize=4096)  # a workflow's requests share their subject
def _charges_on_day(subject: Subject, day: int) -> tuple[Charge, ...]:
    at_ms = day * DAY_MS  # every period is a function of the UTC day (budgets.periods)
    out: list[Charge] = []
    money = (
        BudgetScope.GLOBAL, BudgetScope.TENANT, BudgetScope.AGENT, BudgetScope.WORKFLOW,
        BudgetScope.WORKSPACE, BudgetScope.PROJECT,
    )  # fmt: skip
    scopes: list[tuple[str | None, Unit]] = [(scope_id(s, subject), Unit.USD) for s in money]
    scopes.append((user_scope_id(subject), Unit.MESSAGES))
    for scope, unit in scopes:
        if scope is None:
            continue
        for period in BudgetPeriod:
            key = period_key(period, at_ms)
            out.append(
                Charge(
                    counter=f"{scope}:{key}",
                    scope=scope,
                    period=period,
                    period_key=key,
                    unit=unit,
                    expire_at_s=expire_at_s(period, at_ms),
                )
            )
    return tuple(out)


def event_messages(event: LedgerEvent) -> int:
    """The user messages a ledger event charges: one for a user's paid call, none for a call
    booked at its bound under its own id (reserved_by: lost, or billed and unusable), as its
    request charges the message when it settles, however many of its calls were booked."""
    return 1 if event.user and event.paid_call and not event.reserved_by else 0


def thresholds_reached(spent: int, limit: int) -> tuple[int, ...]:
    """The alert thresholds (percent) that spent has reached; exact integer arithmetic."""
    if limit <= 0:
        return THRESHOLDS
    return tuple(p for p in THRESHOLDS if spent * 100 >= p * limit)
