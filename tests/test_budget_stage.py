"""The budget stage in the real pipeline: refuse or downgrade, the request cap, message quotas,
and run-time changes through the budget.control subject and the `flipsync budget` command."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator

import msgspec
import pytest

from bus import subjects
from bus.codec import decode, encode
from bus.llm_client import LlmClient
from bus.messages import (
    BudgetAlert,
    BudgetChange,
    BudgetPeriod,
    BudgetPolicy,
    BudgetScope,
    BudgetSpec,
    ErrorCode,
    LlmRequest,
    LlmResult,
    RequestCap,
    TierQuota,
)
from bus.settings import Settings
from cost_ledger.aggregates import AggregateStore
from cost_ledger.api_models import Filter
from cost_ledger.budgets.cli import add_commands, run_command
from cost_ledger.budgets.config import BudgetConfig
from cost_ledger.budgets.live import LiveBudgets
from cost_ledger.budgets.store import BudgetStore
from cost_ledger.pricing import to_usd
from cost_ledger.report import SIMULATED_NOTE, simulated_note
from flipsync.cost_report import print_report
from flipsync.stack import Stack, start_stack
from tests.helpers import eventually, make_request, put_budgets

AGENT = "listing"


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """An embedded stack whose budgets file holds only the request cap and engine settings."""
    path = tmp_path_factory.mktemp("budgets") / "budgets.toml"
    path.write_text(
        '[settings]\nmax_wait_s = 5\n\n[request_cap]\nlimit_usd = "0.05"\npolicy = "downgrade"\n'
    )
    settings = Settings(
        sim_latency_ms=0, budget_config=path, extra_agents=frozenset({AGENT})
    )  # fmt: skip
    running = await start_stack(settings)
    yield running
    await running.stop()


def store(stack: Stack) -> BudgetStore:
    """The stack's budget store."""
    assert stack.budgets is not None
    return stack.budgets


async def change(stack: Stack, **fields: object) -> None:
    """Apply a BudgetChange through budget.control and wait until the stack runs with it."""
    message = msgspec.convert({"change_id": uuid.uuid4().hex, **fields}, BudgetChange)
    await put_budgets(stack, message)


def request(tenant: str, **kw: object) -> LlmRequest:
    """A unique small request (unique, so no cache or dedup lever answers it)."""
    base = make_request(tenant=tenant, agent=AGENT, text=f"Title for item {uuid.uuid4().hex}.")
    return msgspec.structs.replace(base, **kw)


async def ask(stack: Stack, req: LlmRequest) -> LlmResult:
    """Send a request and wait for its result."""
    return await LlmClient(stack.broker).request(req, timeout_s=30)


def tenant_budget(tenant: str, limit: int, policy: BudgetPolicy) -> dict[str, object]:
    """A BudgetChange field setting a daily budget of one tenant."""
    spec = BudgetSpec(
        name=f"{tenant}-daily",
        scope=BudgetScope.TENANT,
        period=BudgetPeriod.DAY,
        limit_micro_usd=limit,
        policy=policy,
        tenant=tenant,
    )
    return {"set_budgets": [msgspec.to_builtins(spec)]}


async def test_refuse_policy_answers_over_budget_naming_scope_limit_and_spent(
    stack: Stack,
) -> None:
    tenant = f"r{uuid.uuid4().hex[:8]}"
    await change(stack, **tenant_budget(tenant, 100, BudgetPolicy.REFUSE))
    served: list[LlmResult] = []
    for _ in range(10):
        result = await ask(stack, request(tenant))
        if not result.ok:
            break
        served.append(result)
    assert served, "the first request fits the budget"
    assert result.error_code is ErrorCode.OVER_BUDGET
    spent = sum(r.cost_micro_usd for r in served)
    assert f"over budget '{tenant}-daily'" in result.reason
    assert f"tenant:{tenant}" in result.reason and "limit $0.000100" in result.reason
    assert f"spent ${to_usd(spent):.6f}" in result.reason
    assert spent <= 100


async def test_downgrade_policy_routes_to_the_cheapest_lower_tier_model(stack: Stack) -> None:
    tenant = f"d{uuid.uuid4().hex[:8]}"
    await change(stack, **tenant_budget(tenant, 500, BudgetPolicy.DOWNGRADE))
    result = await ask(stack, request(tenant, model_hint="gpt-4o"))  # premium: ~1,200 max
    assert result.ok, result.reason
    price = stack.catalog.get(result.model)
    assert price.tier.value == "standard"
    assert "downgraded from gpt-4o" in result.reason
    assert 0 < result.cost_micro_usd <= 500


async def test_the_request_cap_downgrades_or_refuses(stack: Stack) -> None:
    tenant = f"c{uuid.uuid4().hex[:8]}"
    big = request(tenant, model_hint="gpt-4o", max_output_tokens=6000)  # 6,000 x $10/M > $0.05
    downgraded = await ask(stack, big)
    assert downgraded.ok, downgraded.reason
    assert stack.catalog.get(downgraded.model).tier.value != "premium"
    cap = RequestCap(limit_micro_usd=50_000, policy=BudgetPolicy.REFUSE)
    await change(stack, request_cap=msgspec.to_builtins(cap))
    try:
        refused = await ask(stack, request(tenant, model_hint="gpt-4o", max_output_tokens=6000))
        assert refused.error_code is ErrorCode.OVER_BUDGET
        assert "'request-cap'" in refused.reason and "limit $0.050000" in refused.reason
    finally:
        back = RequestCap(limit_micro_usd=50_000, policy=BudgetPolicy.DOWNGRADE)
        await change(stack, request_cap=msgspec.to_builtins(back))


async def test_a_tier_quota_counts_each_users_paid_messages(stack: Stack) -> None:
    tenant = f"q{uuid.uuid4().hex[:8]}"
    quota = TierQuota(tier="trial", messages=2, period=BudgetPeriod.DAY)
    await change(stack, set_tiers=[msgspec.to_builtins(quota)])
    tags = {"user": "ann", "tier": "trial"}
    first = [await ask(stack, request(tenant, tags=tags)) for _ in range(2)]
    assert all(r.ok for r in first), [r.reason for r in first]
    third = await ask(stack, request(tenant, tags=tags))
    assert third.error_code is ErrorCode.OVER_BUDGET
    assert "'tier:trial'" in third.reason and "limit 2 messages" in third.reason
    other_user = await ask(stack, request(tenant, tags={"user": "bob", "tier": "trial"}))
    assert other_user.ok, other_user.reason


async def test_a_change_on_the_subject_reaches_every_replica_and_survives_restarts(
    stack: Stack,
) -> None:
    tenant = f"n{uuid.uuid4().hex[:8]}"
    spec = BudgetSpec(
        name=f"{tenant}-zero", scope=BudgetScope.TENANT, period=BudgetPeriod.DAY,
        limit_micro_usd=0, tenant=tenant,
    )  # fmt: skip
    message = BudgetChange(change_id=uuid.uuid4().hex, set_budgets=[spec], by="test")
    # A plain NATS publish on the subject, as any tool could send it.
    await stack.broker.connection.publish(subjects.BUDGET_CONTROL, encode(message))

    async def in_force() -> bool:
        return spec.name in (await store(stack).live.current()).budgets

    await eventually(in_force)
    refused = await ask(stack, request(tenant))
    assert refused.error_code is ErrorCode.OVER_BUDGET
    restarted = LiveBudgets(stack.redis, BudgetConfig.load(stack.settings.budget_config))
    assert (await restarted.load()).budgets[spec.name] == spec
    info = await stack.broker.connection.jetstream().stream_info(
        subjects.STREAM_LEDGER, subjects_filter=subjects.BUDGET_CONTROL
    )
    assert info.state.messages >= 1  # kept in the ledger stream, for a rebuild


async def test_budget_command_sets_and_shows_a_budget(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    tenant = f"k{uuid.uuid4().hex[:8]}"
    env = {"NATS_URL": stack.nats_url, "REDIS_URL": stack.redis_url}
    env["FLIPSYNC_BUDGET_CONFIG"] = str(stack.settings.budget_config)
    name = f"{tenant}-cli"
    out = await _flipsync(
        env, "budget", "set", name, "--scope", "tenant", "--period", "month",
        "--limit", "1.25", "--tenant", tenant,
    )  # fmt: skip
    assert "applied and published" in out

    async def in_force() -> bool:
        return name in (await store(stack).live.current()).budgets

    await eventually(in_force)
    assert (await ask(stack, request(tenant))).ok

    async def booked() -> bool:  # the answer comes before the ledger applies its event
        note = await simulated_note(AggregateStore(stack.redis), Filter(tenant=tenant))
        return note != ""

    await eventually(booked)
    settings = Settings(
        nats_url=stack.nats_url, redis_url=stack.redis_url,
        budget_config=stack.settings.budget_config,
    )  # fmt: skip
    assert await run_command(cli_args("budget", "show", "--tenant", tenant), settings) == 0
    shown = capsys.readouterr().out
    assert name in shown and "$1.250000" in shown
    assert SIMULATED_NOTE in shown  # the tenant's one request went to the simulated provider
    quiet = f"q{uuid.uuid4().hex[:8]}"  # a tenant with no events: nothing simulated to own up to
    assert await run_command(cli_args("budget", "show", "--tenant", quiet), settings) == 0
    assert SIMULATED_NOTE not in capsys.readouterr().out
    as_json = cli_args("budget", "show", "--tenant", tenant, "--json")
    assert await run_command(as_json, settings) == 0
    rows = json.loads(capsys.readouterr().out)["budgets"]  # GET /api/cost/budgets' shape
    mine = [r for r in rows if r["budget"] == name]
    assert mine and mine[0]["limit"] == 1_250_000 and mine[0]["scope"] == f"tenant:{tenant}"
    assert await print_report(settings, tenant) == 0  # `flipsync report` shows budgets too
    report = capsys.readouterr().out
    assert "FlipSync cost report" in report and name in report
    bad = cli_args("budget", "set", "x", "--scope", "tenant", "--period", "day", "--limit", "1e-9")
    assert await run_command(bad, settings) == 2
    assert "micro-dollar" in capsys.readouterr().err
    # Without a deployment's URLs the flags are still checked first: the missing --scope is
    # named before the URLs (a newcomer set the URLs, then learnt the flag was missing).
    unscoped = cli_args("budget", "set", "x", "--period", "day", "--limit", "5")
    assert await run_command(unscoped, Settings(nats_url=None, redis_url=None)) == 2
    said = capsys.readouterr().err
    assert "--scope" in said and "NATS_URL" not in said
    # A budget set under what the tenant already spent is past its thresholds now: its
    # alerts go out at once (they waited for a settle that a used-up budget never makes).
    under = f"{tenant}-under"
    out = await _flipsync(
        env, "budget", "set", under, "--scope", "tenant", "--period", "month",
        "--limit", "0.000001", "--tenant", tenant,
    )  # fmt: skip
    assert f"alert sent: {under} at 100% in tenant:{tenant}" in out
    assert out.count("alert sent:") == 3  # 50%, 80% and 100%, once each
    js = stack.broker.connection.jetstream()
    stored = await js.get_last_msg(subjects.STREAM_LEDGER, subjects.budget_alert(tenant))
    assert stored.data is not None and decode(stored.data, BudgetAlert).budget == under
    again = await _flipsync(
        env, "budget", "set", under, "--scope", "tenant", "--period", "month",
        "--limit", "0.000001", "--tenant", tenant,
    )  # fmt: skip
    assert "alert sent" not in again  # sent once


async def test_removing_an_unknown_budget_says_so_and_publishes_nothing(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(
        nats_url=stack.nats_url, redis_url=stack.redis_url,
        budget_config=stack.settings.budget_config,
    )  # fmt: skip
    js = stack.broker.connection.jetstream()

    async def changes() -> int:
        info = await js.stream_info(subjects.STREAM_LEDGER, subjects_filter=subjects.BUDGET_CONTROL)
        return info.state.messages

    before = await changes()
    for argv in (("budget", "remove", "no-such-budget"), ("budget", "tier", "gold", "--remove")):
        assert await run_command(cli_args(*argv), settings) == 2, argv
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1 and argv[2] in err, (argv, err)
    assert await changes() == before
    name = f"r{uuid.uuid4().hex[:8]}"
    put = ("budget", "set", name, "--scope", "tenant", "--tenant", name, "--period", "day",
           "--limit", "1")  # fmt: skip
    assert await run_command(cli_args(*put), settings) == 0
    assert await run_command(cli_args("budget", "remove", name), settings) == 0
    assert "applied and published" in capsys.readouterr().out
    assert name not in (await store(stack).live.load()).budgets


def cli_args(*argv: str) -> argparse.Namespace:
    """Arguments as `flipsync` parses them."""
    parser = argparse.ArgumentParser(prog="flipsync")
    add_commands(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


async def _flipsync(env: dict[str, str], *args: str, expect: int = 0) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flipsync", *args,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate()
    assert proc.returncode == expect, out.decode()
    return out.decode()
