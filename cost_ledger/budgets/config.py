"""Budget configuration: the rules (budgets, tier quotas, request cap) and the engine settings.

The rules start from a TOML file (cost_ledger/budgets.toml by default) and then live in Redis,
changed at run time by BudgetChange messages; the engine settings come from the file only.
The file format is read in budgets_file.py.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import msgspec

from bus.messages import (
    BudgetChange,
    BudgetScope,
    BudgetSpec,
    RequestCap,
    TierQuota,
)
from bus.subjects import token
from cost_ledger.budgets.errors import BudgetConfigError

PACKAGED_BUDGETS = "budgets.toml"
CAP_FIELD = "cap"
BUDGET_FIELD = "budget:"
TIER_FIELD = "tier:"
NOTIFY_SCHEMES = ("https://", "http://", "mailto:")
"""What a budget's notify target may be: a webhook URL or an email address."""


@dataclass(frozen=True, kw_only=True)
class EngineSettings:
    """How reservations behave; from the [settings] table of the budgets file."""

    reservation_ttl_s: float = 30.0
    """A reservation not refreshed for this long (its request died) is released."""
    max_wait_s: float = 30.0
    """Longest a request waits for in-flight reservations to free room (or its deadline)."""
    period_overlap_s: int = 600
    """A request reserved this close to a period's end also holds room in the next period."""
    input_margin: Decimal = Decimal("1.10")
    """Estimated input tokens are multiplied by this before pricing the maximum cost."""
    default_tier: str = ""
    """Tier of a user whose request carries no tags["tier"]; empty means no quota."""
    refresh_s: float = 2.0
    """How often a replica checks that its copy of the live rules is current."""


@dataclass(frozen=True, kw_only=True)
class BudgetRules:
    """The budgets, the tier quotas and the request cap in force."""

    budgets: Mapping[str, BudgetSpec] = field(default_factory=lambda: MappingProxyType({}))
    tiers: Mapping[str, TierQuota] = field(default_factory=lambda: MappingProxyType({}))
    request_cap: RequestCap | None = None

    def apply(self, change: BudgetChange) -> BudgetRules:
        """These rules with a change applied; raises BudgetConfigError if it is invalid."""
        check_change(change)
        base = BudgetRules() if change.replace_all else self
        budgets = dict(base.budgets)
        tiers = dict(base.tiers)
        for name in change.remove_budgets:
            budgets.pop(name, None)
        for name in change.remove_tiers:
            tiers.pop(name, None)
        budgets.update((b.name, b) for b in change.set_budgets)
        tiers.update((t.tier, t) for t in change.set_tiers)
        cap = None if change.remove_request_cap else base.request_cap
        return BudgetRules(
            budgets=MappingProxyType(budgets),
            tiers=MappingProxyType(tiers),
            request_cap=change.request_cap or cap,
        )

    def as_change(self, change_id: str) -> BudgetChange:
        """A change that replaces any rules with these."""
        return BudgetChange(
            change_id=change_id,
            set_budgets=list(self.budgets.values()),
            set_tiers=list(self.tiers.values()),
            request_cap=self.request_cap,
            replace_all=True,
        )

    def fields(self) -> dict[str, bytes]:
        """The rules as the fields of the live-config hash in Redis."""
        out = {f"{BUDGET_FIELD}{n}": msgspec.json.encode(b) for n, b in self.budgets.items()}
        out.update({f"{TIER_FIELD}{n}": msgspec.json.encode(t) for n, t in self.tiers.items()})
        if self.request_cap is not None:
            out[CAP_FIELD] = msgspec.json.encode(self.request_cap)
        return out

    @classmethod
    def from_fields(cls, raw: Mapping[Any, bytes | str]) -> BudgetRules:
        """Rules from the live-config hash; a field that does not decode raises."""
        budgets: dict[str, BudgetSpec] = {}
        tiers: dict[str, TierQuota] = {}
        cap: RequestCap | None = None
        for key, value in raw.items():
            name = key.decode() if isinstance(key, bytes) else key
            try:
                if name.startswith(BUDGET_FIELD):
                    budgets[name.removeprefix(BUDGET_FIELD)] = msgspec.json.decode(
                        value, type=BudgetSpec
                    )
                elif name.startswith(TIER_FIELD):
                    tiers[name.removeprefix(TIER_FIELD)] = msgspec.json.decode(
                        value, type=TierQuota
                    )
                elif name == CAP_FIELD:
                    cap = msgspec.json.decode(value, type=RequestCap)
            except msgspec.DecodeError as exc:
                raise BudgetConfigError(f"live config field {name}", str(exc)) from exc
        return cls(
            budgets=MappingProxyType(dict(sorted(budgets.items()))),
            tiers=MappingProxyType(dict(sorted(tiers.items()))),
            request_cap=cap,
        )


@dataclass(frozen=True, kw_only=True)
class BudgetConfig:
    """A budgets file: the rules it seeds and the engine settings."""

    rules: BudgetRules
    engine: EngineSettings

    @classmethod
    def load(cls, path: Path | str | None = None) -> BudgetConfig:
        """Read a budgets file; by default the one shipped with cost_ledger."""
        where = str(path or PACKAGED_BUDGETS)
        try:
            if path is None:
                text = resources.files("cost_ledger").joinpath(PACKAGED_BUDGETS).read_text()
            else:
                text = Path(path).read_text(encoding="utf-8")
            data = tomllib.loads(text)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise BudgetConfigError(where, f"cannot read budgets: {exc}") from exc
        return cls.from_dict(data, where)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "budgets") -> BudgetConfig:
        """A config from parsed TOML; raises BudgetConfigError naming the bad entry."""
        from cost_ledger.budgets.budgets_file import parse  # the file format, on its own

        rules, engine = parse(data, where)
        return cls(rules=rules, engine=engine)


def check_change(change: BudgetChange) -> None:
    """Raise BudgetConfigError if a change holds a rule that cannot be used."""
    for spec in change.set_budgets:
        check_budget(spec, f"budget {spec.name!r}")
    for quota in change.set_tiers:
        check_name(quota.tier, f"tier {quota.tier!r}")
        if quota.messages < 0:
            raise BudgetConfigError(f"tier {quota.tier!r}", "messages must be >= 0")
    if change.request_cap is not None and change.request_cap.limit_micro_usd < 0:
        raise BudgetConfigError("request cap", "limit must be >= 0")


def check_budget(spec: BudgetSpec, where: str) -> None:
    """Raise BudgetConfigError if a budget cannot be used."""
    check_name(spec.name, where)
    if spec.limit_micro_usd < 0:
        raise BudgetConfigError(where, "limit must be >= 0")
    named = (spec.tenant, spec.agent, spec.workflow, spec.workspace, spec.project)
    if spec.scope is BudgetScope.GLOBAL and any(named):
        raise BudgetConfigError(
            where, "a global budget takes no tenant, agent, workflow, workspace or project"
        )
    if spec.agent and spec.scope is not BudgetScope.AGENT:
        raise BudgetConfigError(where, "agent is only for an agent-scope budget")
    if spec.workflow and spec.scope is not BudgetScope.WORKFLOW:
        raise BudgetConfigError(where, "workflow is only for a workflow-scope budget")
    if spec.workspace and spec.scope not in (BudgetScope.WORKSPACE, BudgetScope.PROJECT):
        raise BudgetConfigError(where, "workspace is only for a workspace or project budget")
    if spec.project and spec.scope is not BudgetScope.PROJECT:
        raise BudgetConfigError(where, "project is only for a project-scope budget")
    for value in (spec.tenant, spec.agent, spec.workspace, spec.project):
        if value:
            check_name(value, where)
    for target in spec.notify:
        if not target.startswith(NOTIFY_SCHEMES):
            raise BudgetConfigError(where, f"notify target {target!r} is not {NOTIFY_SCHEMES}")


def check_name(name: str, where: str) -> None:
    """Raise BudgetConfigError unless name is a subject token (safe in keys and subjects)."""
    try:
        token(name)
    except ValueError as exc:
        raise BudgetConfigError(where, str(exc)) from None
