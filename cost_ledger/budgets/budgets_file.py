"""The budgets file format (TOML): [settings], [request_cap], [budgets.<name>], [tiers.<name>].

Amounts are decimal strings of dollars ("2.00"), exact to the micro-dollar, never floats.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any, TypeVar

from bus.messages import BudgetPeriod, BudgetPolicy, BudgetScope, BudgetSpec, RequestCap, TierQuota
from cost_ledger.budgets.config import BudgetRules, EngineSettings, check_budget, check_name
from cost_ledger.budgets.errors import BudgetConfigError

MICRO = Decimal(1_000_000)
E = TypeVar("E", BudgetScope, BudgetPeriod, BudgetPolicy)


def parse(data: Mapping[str, Any], where: str) -> tuple[BudgetRules, EngineSettings]:
    """Rules and engine settings of a parsed budgets file; raises BudgetConfigError."""
    budgets = {
        name: _budget(name, raw, f"{where} [budgets.{name}]")
        for name, raw in _table(data, "budgets", where).items()
    }
    tiers = {
        name: _tier(name, raw, f"{where} [tiers.{name}]")
        for name, raw in _table(data, "tiers", where).items()
    }
    cap_raw = data.get("request_cap")
    cap = None
    if cap_raw is not None:
        cap = RequestCap(
            limit_micro_usd=usd_to_micro(_get(cap_raw, "limit_usd", f"{where} [request_cap]")),
            policy=_enum(BudgetPolicy, cap_raw.get("policy", "downgrade"), where),
        )
    rules = BudgetRules(
        budgets=MappingProxyType(budgets), tiers=MappingProxyType(tiers), request_cap=cap
    )
    return rules, _engine(_table(data, "settings", where), where)


def usd_to_micro(value: object) -> int:
    """Dollars as a decimal string ("2.00") to exact micro-dollars; raises BudgetConfigError."""
    if not isinstance(value, str):
        raise BudgetConfigError("amount", f'{value!r} must be a decimal string such as "2.00"')
    try:
        amount = Decimal(value) * MICRO
    except InvalidOperation:
        raise BudgetConfigError("amount", f"{value!r} is not a decimal number") from None
    if not amount.is_finite() or amount < 0 or amount != amount.to_integral_value():
        raise BudgetConfigError("amount", f"{value!r} must be >= 0 and exact to the micro-dollar")
    return int(amount)


def _table(data: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise BudgetConfigError(where, f"[{key}] must be a table")
    return value


def _get(raw: object, key: str, where: str) -> object:
    if not isinstance(raw, dict) or key not in raw:
        raise BudgetConfigError(where, f"{key} is required")
    return raw[key]


def _enum(kind: type[E], value: object, where: str) -> E:
    try:
        return kind(str(value))
    except ValueError:
        choices = [k.value for k in kind]
        raise BudgetConfigError(where, f"{value!r} is not one of {choices}") from None


def _budget(name: str, raw: object, where: str) -> BudgetSpec:
    if not isinstance(raw, dict):
        raise BudgetConfigError(where, "must be a table")
    try:
        limit = usd_to_micro(_get(raw, "limit_usd", where))
    except BudgetConfigError as exc:
        raise BudgetConfigError(where, f"limit_usd: {exc.reason}") from None
    spec = BudgetSpec(
        name=name,
        scope=_enum(BudgetScope, _get(raw, "scope", where), where),
        period=_enum(BudgetPeriod, _get(raw, "period", where), where),
        limit_micro_usd=limit,
        policy=_enum(BudgetPolicy, raw.get("policy", "refuse"), where),
        tenant=str(raw.get("tenant", "")),
        agent=str(raw.get("agent", "")),
        workflow=str(raw.get("workflow", "")),
        workspace=str(raw.get("workspace", "")),
        project=str(raw.get("project", "")),
        notify=_strings(raw.get("notify", []), f"{where} notify"),
    )
    check_budget(spec, where)
    return spec


def _strings(raw: object, where: str) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        raise BudgetConfigError(where, "must be a list of strings")
    return list(raw)


def _tier(name: str, raw: object, where: str) -> TierQuota:
    messages = _get(raw, "messages", where)
    if not isinstance(messages, int) or isinstance(messages, bool) or messages < 0:
        raise BudgetConfigError(where, "messages must be an integer >= 0")
    check_name(name, where)
    period = _enum(BudgetPeriod, raw.get("period", "day") if isinstance(raw, dict) else "", where)
    return TierQuota(tier=name, messages=messages, period=period)


def _engine(raw: Mapping[str, Any], where: str) -> EngineSettings:
    engine = EngineSettings()
    known = {f for f in EngineSettings.__dataclass_fields__}
    unknown = set(raw) - known
    if unknown:
        raise BudgetConfigError(f"{where} [settings]", f"unknown keys {sorted(unknown)}")
    values: dict[str, Any] = dict(raw)
    for key, value in values.items():
        if key in ("default_tier", "input_margin"):
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise BudgetConfigError(f"{where} [settings]", f"{key} must be a number > 0")
    if not isinstance(values.get("default_tier", ""), str):
        raise BudgetConfigError(f"{where} [settings]", "default_tier must be a string")
    if "input_margin" in values:
        try:
            values["input_margin"] = Decimal(str(values["input_margin"]))
        except InvalidOperation:
            raise BudgetConfigError(f"{where} [settings]", "input_margin is not a number") from None
        if values["input_margin"] < 1:
            raise BudgetConfigError(f"{where} [settings]", "input_margin must be >= 1")
    return replace(engine, **values)
