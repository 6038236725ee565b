"""Budgets, quotas and their alerts and run-time changes."""

from __future__ import annotations

import enum

import msgspec

from bus.messages.base import WIRE_VERSION, now_ms


class BudgetAlert(msgspec.Struct, kw_only=True):
    """A budget crossed a threshold (0.5, 0.8, 1.0) in its period; sent once per threshold."""

    scope: str
    """The budget's scope instance: global, tenant:<t>, agent:<t>:<a>, workflow:<t>:<w>,
    workspace:<t>:<ws>, project:<t>:<ws>:<p>."""
    period: str
    """day or month."""
    threshold: float
    limit_micro_usd: int
    spent_micro_usd: int
    at_ms: int = msgspec.field(default_factory=lambda: now_ms())
    budget: str = ""
    """The name of the budget rule that crossed."""
    tenant: str = ""
    """The tenant it concerns; empty for a global budget."""
    period_key: str = ""
    """Which period: d2026-11-02 or m2026-11 (UTC)."""
    kind: str = "threshold"
    """"threshold" (a budget crossed 50, 80 or 100%), or "overrun": one answer cost more than
    the reservation made for it (limit is the reservation, spent the booked cost)."""
    request_id: str = ""
    """The request an overrun alert is about."""
    v: int = WIRE_VERSION


class BudgetScope(enum.StrEnum):
    """What a budget counts: every request, or a tenant's, an agent's, a workflow's, a
    workspace's or a project's."""

    GLOBAL = "global"
    TENANT = "tenant"
    AGENT = "agent"
    """An agent within a tenant (tenants never share a budget)."""
    WORKFLOW = "workflow"
    """A workflow within a tenant."""
    WORKSPACE = "workspace"
    """A workspace within a tenant (LlmRequest.workspace)."""
    PROJECT = "project"
    """A project within a tenant's workspace (LlmRequest.workspace and project)."""


class BudgetPeriod(enum.StrEnum):
    """The UTC calendar period a budget or quota counts over."""

    DAY = "day"
    MONTH = "month"


class BudgetPolicy(enum.StrEnum):
    """What happens to a request the budget cannot take."""

    REFUSE = "refuse"
    """An error result, code over_budget."""
    DOWNGRADE = "downgrade"
    """The cheapest model of a lower tier, if it fits; else refuse."""


class BudgetSpec(msgspec.Struct, kw_only=True):
    """One budget rule: a limit on the spend of a scope per period."""

    name: str
    scope: BudgetScope
    period: BudgetPeriod
    limit_micro_usd: int
    policy: BudgetPolicy = BudgetPolicy.REFUSE
    tenant: str = ""
    """Only this tenant; empty means each tenant (for every scope but global)."""
    agent: str = ""
    """Only this agent (agent scope); empty means each agent."""
    workflow: str = ""
    """Only this workflow (workflow scope); empty means each workflow."""
    workspace: str = ""
    """Only this workspace (workspace and project scopes); empty means each workspace."""
    project: str = ""
    """Only this project (project scope); empty means each project."""
    notify: list[str] = msgspec.field(default_factory=list)
    """Where this budget's alerts go: https:// webhook URLs (Slack-compatible JSON), mailto:
    addresses; the notifier delivers each alert to each once."""


class TierQuota(msgspec.Struct, kw_only=True):
    """How many paid LLM messages each user of a tier may send per period."""

    tier: str
    messages: int
    period: BudgetPeriod = BudgetPeriod.DAY


class RequestCap(msgspec.Struct, kw_only=True):
    """The most one request may cost (its estimated maximum), and what happens above it."""

    limit_micro_usd: int
    policy: BudgetPolicy = BudgetPolicy.DOWNGRADE


class BudgetChange(msgspec.Struct, kw_only=True):
    """A run-time change of the budgets, on budget.control; every replica applies it."""

    change_id: str
    """Unique; a change is applied to the live config once, whoever sees it first."""
    set_budgets: list[BudgetSpec] = []
    remove_budgets: list[str] = []
    set_tiers: list[TierQuota] = []
    remove_tiers: list[str] = []
    request_cap: RequestCap | None = None
    remove_request_cap: bool = False
    replace_all: bool = False
    """Drop every budget, tier and cap before applying the rest (loading a whole file)."""
    by: str = ""
    at_ms: int = msgspec.field(default_factory=lambda: now_ms())
    v: int = WIRE_VERSION
