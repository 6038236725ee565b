"""The pure budget arithmetic, without servers: scopes, periods, checks, thresholds, downgrade."""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from bus.messages import (
    BudgetChange,
    BudgetPeriod,
    BudgetPolicy,
    BudgetScope,
    BudgetSpec,
    ChatMessage,
    ImagePart,
    LlmRequest,
    RequestCap,
    TierQuota,
)
from cost_ledger.budgets.budgets_file import usd_to_micro
from cost_ledger.budgets.config import BudgetConfig, BudgetRules
from cost_ledger.budgets.downgrade import downgrade_choice
from cost_ledger.budgets.errors import BudgetConfigError
from cost_ledger.budgets.periods import (
    end_of_key_ms,
    period_end_ms,
    period_key,
    period_start,
    periods_held,
)
from cost_ledger.budgets.policy import (
    Subject,
    Unit,
    applies,
    charges,
    checks,
    scope_id,
    thresholds_reached,
)
from cost_ledger.catalog import PriceCatalog
from router.stages.budget import estimate_input_tokens, subject_of


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp() * 1000)


def spec(
    name: str,
    scope: BudgetScope,
    limit: int,
    *,
    period: BudgetPeriod = BudgetPeriod.DAY,
    policy: BudgetPolicy = BudgetPolicy.REFUSE,
    tenant: str = "",
    agent: str = "",
) -> BudgetSpec:
    """A budget rule."""
    return BudgetSpec(
        name=name,
        scope=scope,
        period=period,
        limit_micro_usd=limit,
        policy=policy,
        tenant=tenant,
        agent=agent,
    )


ACME = Subject(tenant="acme", agent="copy", workflow="wf-1", user="ann", tier="free")


def test_period_keys_and_ends_are_utc_calendar_periods() -> None:
    at = _ms("2026-11-30T23:59:59")
    assert period_key(BudgetPeriod.DAY, at) == "d2026-11-30"
    assert period_key(BudgetPeriod.MONTH, at) == "m2026-11"
    assert period_end_ms(BudgetPeriod.DAY, at) == _ms("2026-12-01T00:00:00")
    assert period_end_ms(BudgetPeriod.MONTH, _ms("2026-12-15T10:00:00")) == _ms("2027-01-01")
    assert end_of_key_ms("d2026-02-28") == _ms("2026-03-01")
    assert end_of_key_ms("m2026-02") == _ms("2026-03-01")
    with pytest.raises(ValueError):
        end_of_key_ms("x2026")


def test_a_reservation_near_the_period_end_also_holds_the_next_period() -> None:
    overlap = 600_000
    assert periods_held(BudgetPeriod.DAY, _ms("2026-11-02T12:00:00"), overlap) == ("d2026-11-02",)
    assert periods_held(BudgetPeriod.DAY, _ms("2026-11-02T23:55:00"), overlap) == (
        "d2026-11-02",
        "d2026-11-03",
    )
    assert periods_held(BudgetPeriod.MONTH, _ms("2026-11-30T23:59:00"), overlap) == (
        "m2026-11",
        "m2026-12",
    )


def test_scope_ids_keep_agents_and_workflows_within_their_tenant() -> None:
    assert scope_id(BudgetScope.GLOBAL, ACME) == "global"
    assert scope_id(BudgetScope.TENANT, ACME) == "tenant:acme"
    assert scope_id(BudgetScope.AGENT, ACME) == "agent:acme:copy"
    assert scope_id(BudgetScope.WORKFLOW, ACME) == "workflow:acme:wf-1"
    assert scope_id(BudgetScope.WORKFLOW, Subject(tenant="acme", agent="copy")) is None
    odd = scope_id(BudgetScope.WORKFLOW, Subject(tenant="acme", agent="a", workflow="x:y"))
    assert odd is not None and odd.count(":") == 2  # a name that is not a token is hashed


def test_scope_selection_by_tenant_agent_and_workflow_filters() -> None:
    assert applies(spec("g", BudgetScope.GLOBAL, 1), ACME)
    assert applies(spec("t", BudgetScope.TENANT, 1), ACME)
    assert not applies(spec("t", BudgetScope.TENANT, 1, tenant="other"), ACME)
    assert applies(spec("a", BudgetScope.AGENT, 1, agent="copy"), ACME)
    assert not applies(spec("a", BudgetScope.AGENT, 1, agent="pricing"), ACME)
    assert applies(spec("w", BudgetScope.WORKFLOW, 1), ACME)
    assert not applies(spec("w", BudgetScope.WORKFLOW, 1), Subject(tenant="acme", agent="copy"))


def test_checks_cover_every_applicable_budget_and_the_quota_tightest_limit_wins() -> None:
    budgets = [
        spec("daily", BudgetScope.TENANT, 2_000_000),
        spec("tight", BudgetScope.TENANT, 500_000),  # same counter: the tighter one binds
        spec("monthly", BudgetScope.TENANT, 30_000_000, period=BudgetPeriod.MONTH),
        spec("copy", BudgetScope.AGENT, 100_000, policy=BudgetPolicy.DOWNGRADE),
        spec("all", BudgetScope.GLOBAL, 9_000_000),
        spec("other", BudgetScope.TENANT, 1, tenant="other"),
    ]
    tiers = {"free": TierQuota(tier="free", messages=10)}
    at = _ms("2026-11-02T12:00:00")
    found = checks(budgets, tiers, ACME, max_cost=1234, at_ms=at, overlap_ms=600_000)
    by_counter = {c.counter: c for c in found}
    assert set(by_counter) == {
        "tenant:acme:d2026-11-02",
        "tenant:acme:m2026-11",
        "agent:acme:copy:d2026-11-02",
        "global:d2026-11-02",
        "user:acme:ann:d2026-11-02",
    }
    assert by_counter["tenant:acme:d2026-11-02"].budget == "tight"
    assert by_counter["agent:acme:copy:d2026-11-02"].policy is BudgetPolicy.DOWNGRADE
    quota = by_counter["user:acme:ann:d2026-11-02"]
    assert (quota.unit, quota.amount, quota.limit) == (Unit.MESSAGES, 1, 10)
    assert all(c.amount == 1234 for c in found if c.unit is Unit.USD)


def test_a_user_without_a_tier_gets_the_default_tier_and_no_user_means_no_quota() -> None:
    tiers = {"free": TierQuota(tier="free", messages=10)}
    at = _ms("2026-11-02T12:00:00")
    untiered = Subject(tenant="acme", agent="copy", user="bob")
    assert checks([], tiers, untiered, max_cost=1, at_ms=at, overlap_ms=0) == []
    found = checks([], tiers, untiered, max_cost=1, at_ms=at, overlap_ms=0, default_tier="free")
    assert [c.budget for c in found] == ["tier:free"]
    anonymous = Subject(tenant="acme", agent="copy")
    assert (
        checks([], tiers, anonymous, max_cost=1, at_ms=at, overlap_ms=0, default_tier="free") == []
    )


def test_charges_cover_every_scope_in_both_periods_whatever_the_budgets() -> None:
    found = charges(ACME, _ms("2026-11-02T12:00:00"))
    counters = {c.counter: c.unit for c in found}
    assert len(counters) == 10
    assert counters["workflow:acme:wf-1:m2026-11"] is Unit.USD
    assert counters["user:acme:ann:d2026-11-02"] is Unit.MESSAGES
    assert len(charges(Subject(tenant="acme", agent="copy"), 0)) == 6


@pytest.mark.parametrize(
    ("spent", "limit", "reached"),
    [
        (0, 1000, ()),
        (499, 1000, ()),
        (500, 1000, (50,)),
        (799, 1000, (50,)),
        (800, 1000, (50, 80)),
        (999, 1000, (50, 80)),
        (1000, 1000, (50, 80, 100)),
        (1, 3, ()),  # 33%: integer arithmetic, no rounding up to a threshold
        (2, 3, (50,)),
        (5, 0, (50, 80, 100)),
    ],
)
def test_threshold_crossing_is_exact(spent: int, limit: int, reached: tuple[int, ...]) -> None:
    assert thresholds_reached(spent, limit) == reached


def test_downgrade_goes_to_the_cheapest_model_of_the_next_lower_tier() -> None:
    catalog = PriceCatalog.load()
    everything = catalog.entries.__contains__
    choice = downgrade_choice(
        catalog, "gpt-4o", input_tokens=1000, max_output_tokens=500, offered=everything
    )
    assert choice is not None and choice.tier.value == "standard"
    standard = [m for m in catalog.models() if m.tier.value == "standard"]
    assert choice.name == min(standard, key=lambda m: m.input * 1000 + m.output * 500).name
    economy = downgrade_choice(
        catalog, choice.name, input_tokens=1000, max_output_tokens=500, offered=everything
    )
    assert economy is not None and economy.tier.value == "economy"
    assert (
        downgrade_choice(
            catalog, economy.name, input_tokens=1000, max_output_tokens=500, offered=everything
        )
        is None
    )


def test_downgrade_respects_providers_vision_and_the_quality_floor() -> None:
    catalog = PriceCatalog.load()
    openai_only = {m.name for m in catalog.models() if m.provider == "openai"}.__contains__
    choice = downgrade_choice(
        catalog, "gpt-4o", input_tokens=100, max_output_tokens=100, offered=openai_only
    )
    assert choice is not None and choice.provider == "openai" and choice.tier.value == "standard"
    sighted = downgrade_choice(
        catalog,
        "claude-sonnet-4",
        input_tokens=100,
        max_output_tokens=100,
        offered=catalog.entries.__contains__,
        needs_vision=True,
    )
    assert sighted is not None and sighted.vision
    picky = downgrade_choice(
        catalog,
        "gpt-4o",
        input_tokens=100,
        max_output_tokens=100,
        offered=catalog.entries.__contains__,
        quality_floor=0.95,
    )
    assert picky is None


def test_packaged_budgets_hold_the_seeds_limits() -> None:
    config = BudgetConfig.load()
    daily = config.rules.budgets["tenant-daily"]
    assert (daily.scope, daily.period, daily.limit_micro_usd) == (
        BudgetScope.TENANT,
        BudgetPeriod.DAY,
        2_000_000,
    )
    assert config.rules.request_cap == RequestCap(
        limit_micro_usd=50_000, policy=BudgetPolicy.DOWNGRADE
    )
    assert config.rules.tiers["free"].messages == 10
    assert config.engine.default_tier == "free"


def test_amounts_are_exact_decimal_strings(tmp_path: Path) -> None:
    assert usd_to_micro("2.00") == 2_000_000
    assert usd_to_micro("0.000001") == 1
    for bad in ("0.0000001", "-1", "abc", 2.0):
        with pytest.raises(BudgetConfigError):
            usd_to_micro(bad)
    path = tmp_path / "b.toml"
    path.write_text('[budgets.x]\nscope = "tenant"\nperiod = "week"\nlimit_usd = "1"\n')
    with pytest.raises(BudgetConfigError, match="week"):
        BudgetConfig.load(path)


def test_changes_set_remove_and_replace_rules() -> None:
    rules = BudgetConfig.load().rules
    changed = rules.apply(
        BudgetChange(
            change_id="c1",
            set_budgets=[spec("copy", BudgetScope.AGENT, 10, agent="copy")],
            remove_budgets=["tenant-daily"],
            remove_request_cap=True,
        )
    )
    assert set(changed.budgets) == {"copy"} and changed.request_cap is None
    assert changed.tiers == rules.tiers
    replaced = changed.apply(rules.as_change("c2"))
    assert replaced == rules
    assert BudgetRules.from_fields(rules.fields()) == rules
    with pytest.raises(BudgetConfigError):
        rules.apply(
            BudgetChange(change_id="c3", set_budgets=[spec("bad name", BudgetScope.TENANT, 1)])
        )


def test_request_subject_and_input_estimate() -> None:
    request = LlmRequest(
        id="r1",
        tenant="acme",
        agent="copy",
        workflow_id="wf-1",
        messages=[
            ChatMessage(role="user", content="hello there"),
            ChatMessage(role="user", content=[ImagePart(url="https://x/y.png", detail="low")]),
        ],
        tags={"user": "ann", "tier": "free"},
    )
    # A request names no workspace or project: it is in the default ones.
    assert subject_of(request) == dataclasses.replace(ACME, workspace="default", project="default")
    plain = estimate_input_tokens(request)
    assert plain > 85  # the low-detail image alone is 85 tokens
    assert estimate_input_tokens(request, Decimal("1.10")) == -(-plain * 11 // 10)


def test_period_keys_starts_and_ends_agree_with_the_calendar() -> None:
    """Worked out once per UTC day (cached), periods still follow the calendar at every
    millisecond, across day and month ends and a leap day."""
    rng = random.Random(5)
    edges = [
        int(datetime(2028, 2, 29, 23, 59, 59, 999000, tzinfo=UTC).timestamp() * 1000),
        int(datetime(2028, 3, 1, tzinfo=UTC).timestamp() * 1000),
        int(datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp() * 1000) + 999,
        int(datetime(2027, 1, 1, tzinfo=UTC).timestamp() * 1000),
    ]
    for at_ms in edges + [rng.randrange(1_700_000_000_000, 1_900_000_000_000) for _ in range(500)]:
        at = datetime.fromtimestamp(at_ms / 1000, tz=UTC)
        day = at.replace(hour=0, minute=0, second=0, microsecond=0)
        month = day.replace(day=1)
        next_month = (month + timedelta(days=32)).replace(day=1)
        assert period_key(BudgetPeriod.DAY, at_ms) == at.strftime("d%Y-%m-%d")
        assert period_key(BudgetPeriod.MONTH, at_ms) == at.strftime("m%Y-%m")
        assert period_start(BudgetPeriod.MONTH, at_ms) == month
        assert (
            period_end_ms(BudgetPeriod.DAY, at_ms)
            == int((day + timedelta(days=1)).timestamp()) * 1000
        )
        assert period_end_ms(BudgetPeriod.MONTH, at_ms) == int(next_month.timestamp()) * 1000
