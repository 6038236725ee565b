"""Workspaces and projects: budgets by workspace and project (refusal naming the scope, limit
and spend), the wire fields' validation, `flipsync budget set --workspace --project`, and
reports grouped and filtered by workspace and project."""

from __future__ import annotations

import argparse
import uuid
from collections.abc import AsyncIterator

import msgspec
import pytest

from bus.llm_client import LlmClient
from bus.messages import (
    BudgetChange,
    BudgetPeriod,
    BudgetPolicy,
    BudgetScope,
    BudgetSpec,
    ErrorCode,
    LlmRequest,
    LlmResult,
)
from bus.settings import Settings
from cost_ledger.aggregates import AggregateStore
from cost_ledger.api_models import Filter
from cost_ledger.budgets import keys as budget_keys
from cost_ledger.budgets.cli import add_commands, run_command
from cost_ledger.budgets.config import check_budget
from cost_ledger.budgets.errors import BudgetConfigError
from cost_ledger.budgets.policy import Subject, applies, charges, scope_id
from cost_ledger.budgets.store import BudgetStore
from cost_ledger.pricing import to_usd
from cost_ledger.report import render_spend
from cost_ledger.slices import FilterError, check_filter
from cost_ledger.spend import spend_view
from flipsync.cost_report import print_report
from flipsync.stack import Stack, start_stack
from tests.helpers import eventually, make_request, put_budgets

AGENT = "listing"


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """An embedded stack with no budgets but the ones the tests set."""
    path = tmp_path_factory.mktemp("budgets") / "budgets.toml"
    path.write_text("[settings]\nmax_wait_s = 5\n")
    settings = Settings(sim_latency_ms=0, budget_config=path, extra_agents=frozenset({AGENT}))
    running = await start_stack(settings)
    yield running
    await running.stop()


def store(stack: Stack) -> BudgetStore:
    """The stack's budget store."""
    assert stack.budgets is not None
    return stack.budgets


def request(tenant: str, workspace: str, project: str) -> LlmRequest:
    """A unique small request made in a workspace and project."""
    base = make_request(tenant=tenant, agent=AGENT, text=f"Title for item {uuid.uuid4().hex}.")
    return msgspec.structs.replace(base, workspace=workspace, project=project)


async def ask(stack: Stack, req: LlmRequest) -> LlmResult:
    """Send a request and wait for its result."""
    return await LlmClient(stack.broker).request(req, timeout_s=30)


async def set_budget(stack: Stack, spec: BudgetSpec) -> None:
    """Put a budget in force through budget.control and wait until the stack has it."""
    await put_budgets(stack, BudgetChange(change_id=uuid.uuid4().hex, set_budgets=[spec]))


def test_workspace_and_project_scopes_are_within_the_tenant() -> None:
    subject = Subject(tenant="acme", agent="copy", workspace="eu", project="spring")
    assert scope_id(BudgetScope.WORKSPACE, subject) == "workspace:acme:eu"
    assert scope_id(BudgetScope.PROJECT, subject) == "project:acme:eu:spring"
    # Every counter of a tenant is in the tenant's hash-tag group: one slot per reservation.
    groups = {budget_keys.group_of(c.counter) for c in charges(subject, 0)}
    assert groups == {"t:acme", budget_keys.GLOBAL_GROUP}
    assert len(charges(subject, 0)) == 10  # global, tenant, agent, workspace, project x 2
    project = BudgetSpec(
        name="p", scope=BudgetScope.PROJECT, period=BudgetPeriod.DAY, limit_micro_usd=1,
        workspace="eu", project="spring",
    )  # fmt: skip
    assert applies(project, subject)
    assert not applies(project, Subject(tenant="acme", agent="copy", workspace="us",
                                        project="spring"))  # fmt: skip
    assert not applies(project, Subject(tenant="acme", agent="copy", workspace="eu",
                                        project="fall"))  # fmt: skip
    with pytest.raises(BudgetConfigError, match="project is only for a project-scope"):
        check_budget(msgspec.structs.replace(project, scope=BudgetScope.WORKSPACE), "b")
    with pytest.raises(BudgetConfigError, match="global budget takes no"):
        check_budget(msgspec.structs.replace(project, scope=BudgetScope.GLOBAL), "b")
    with pytest.raises(BudgetConfigError, match="not a valid subject token"):
        check_budget(msgspec.structs.replace(project, workspace="e u"), "b")


def test_a_report_filter_names_a_project_within_its_workspace() -> None:
    with pytest.raises(FilterError, match="within its workspace"):
        check_filter(Filter(project="spring"))
    with pytest.raises(FilterError, match="not both"):
        check_filter(Filter(workspace="eu", agent="copy"))
    with pytest.raises(FilterError, match="bad workspace"):
        check_filter(Filter(workspace="e.u"))


async def test_a_project_budget_refuses_naming_scope_limit_and_spend(stack: Stack) -> None:
    tenant = f"p{uuid.uuid4().hex[:8]}"
    spec = BudgetSpec(
        name=f"{tenant}-spring", scope=BudgetScope.PROJECT, period=BudgetPeriod.DAY,
        limit_micro_usd=100, policy=BudgetPolicy.REFUSE, tenant=tenant, workspace="eu",
        project="spring",
    )  # fmt: skip
    await set_budget(stack, spec)
    served: list[LlmResult] = []
    for _ in range(10):
        result = await ask(stack, request(tenant, "eu", "spring"))
        if not result.ok:
            break
        served.append(result)
    assert served, "the first request fits the budget"
    assert result.error_code is ErrorCode.OVER_BUDGET, result.reason
    spent = sum(r.cost_micro_usd for r in served)
    assert f"over budget '{tenant}-spring'" in result.reason
    assert f"project:{tenant}:eu:spring" in result.reason and "limit $0.000100" in result.reason
    assert f"spent ${to_usd(spent):.6f}" in result.reason
    assert spent <= 100
    # Another project of the workspace, and the same project name in another workspace,
    # are not counted by it.
    assert (await ask(stack, request(tenant, "eu", "fall"))).ok
    assert (await ask(stack, request(tenant, "us", "spring"))).ok
    rows = await store(stack).status(tenant, workspace="eu", project="spring")
    [row] = [r for r in rows if r.budget == spec.name]
    assert row.scope == f"project:{tenant}:eu:spring" and row.spent == spent


async def test_a_workspace_or_project_that_is_no_token_is_refused(stack: Stack) -> None:
    tenant = f"v{uuid.uuid4().hex[:8]}"
    for workspace, project in (("e u", "default"), ("eu", "x" * 65), ("eu", "")):
        result = await ask(stack, request(tenant, workspace, project))
        assert result.error_code is ErrorCode.MALFORMED, result.reason
        assert "letters, digits, _ and -" in result.reason


async def test_budget_set_takes_workspace_and_project(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    tenant = f"c{uuid.uuid4().hex[:8]}"
    settings = Settings(
        nats_url=stack.nats_url, redis_url=stack.redis_url,
        budget_config=stack.settings.budget_config,
    )  # fmt: skip
    name = f"{tenant}-ws"
    args = cli_args(
        "budget", "set", name, "--workspace", "eu", "--project", "spring", "--period", "month",
        "--limit", "1.25", "--tenant", tenant,
    )  # fmt: skip
    assert await run_command(args, settings) == 0
    assert "applied and published" in capsys.readouterr().out

    async def in_force() -> bool:
        return name in (await store(stack).live.current()).budgets

    await eventually(in_force)  # the stack's replicas reload the live rules by themselves
    spec = (await store(stack).live.current()).budgets[name]
    assert spec.scope is BudgetScope.PROJECT and (spec.workspace, spec.project) == ("eu", "spring")
    show = cli_args(
        "budget", "show", "--tenant", tenant, "--workspace", "eu", "--project", "spring"
    )
    assert await run_command(show, settings) == 0
    shown = capsys.readouterr().out
    assert name in shown and f"project:{tenant}:eu:spring" in shown and "$1.250000" in shown
    bare = cli_args("budget", "set", "x", "--period", "day", "--limit", "1")
    assert await run_command(bare, settings) == 2
    assert "--scope is required" in capsys.readouterr().err


async def test_reports_group_and_filter_by_workspace_and_project(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    tenant = f"g{uuid.uuid4().hex[:8]}"
    places = [("eu", "spring"), ("eu", "spring"), ("eu", "fall"), ("us", "spring")]
    results = [await ask(stack, request(tenant, w, p)) for w, p in places]
    assert all(r.ok for r in results), [r.reason for r in results]
    aggregates = AggregateStore(stack.redis)

    async def applied() -> bool:
        return (await aggregates.totals(tenant)).calls == len(places)

    await eventually(applied, timeout_s=30)
    view = await spend_view(aggregates, Filter(tenant=tenant))
    cost = [r.cost_micro_usd for r in results]
    by_workspace = {r.name: (r.calls, r.spend_micro_usd) for r in view.by_workspace}
    assert by_workspace == {"eu": (3, sum(cost[:3])), "us": (1, cost[3])}
    by_project = {r.name: (r.calls, r.spend_micro_usd) for r in view.by_project}
    assert by_project == {
        "eu/fall": (1, cost[2]), "eu/spring": (2, cost[0] + cost[1]), "us/spring": (1, cost[3]),
    }  # fmt: skip
    eu = await spend_view(aggregates, Filter(tenant=tenant, workspace="eu"))
    assert eu.totals.calls == 3 and eu.totals.spend_micro_usd == sum(cost[:3])
    assert {r.name for r in eu.by_project} == {"eu/fall", "eu/spring"}
    assert [r.calls for r in eu.by_agent] == [3] and eu.products is None
    spring = await spend_view(aggregates, Filter(tenant=tenant, workspace="eu", project="spring"))
    assert spring.totals.calls == 2 and spring.totals.spend_micro_usd == cost[0] + cost[1]
    text = render_spend(view, by="project")
    assert "By project" in text and "eu/spring" in text and "By agent" not in text
    assert "By workspace" in render_spend(view)  # more than one workspace: shown by default
    settings = Settings(redis_url=stack.redis_url, budget_config=stack.settings.budget_config)
    where = Filter(tenant=tenant, workspace="eu")
    assert await print_report(settings, tenant, where=where, by="project") == 0  # the CLI's
    printed = capsys.readouterr().out
    assert "workspace eu" in printed and "eu/fall" in printed and "us/spring" not in printed
    assert "By agent" not in printed


def cli_args(*argv: str) -> argparse.Namespace:
    """Arguments as `flipsync` parses them."""
    parser = argparse.ArgumentParser(prog="flipsync")
    add_commands(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)
