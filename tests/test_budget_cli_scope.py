"""`flipsync budget set` takes its scope from the narrowest option given when --scope is not
(found by a newcomer: `budget set tiny --tenant demo --period day --limit 0.01` said
"--scope is required")."""

from __future__ import annotations

import pytest

from bus.messages import BudgetScope
from cost_ledger.budgets.cli import _scope
from cost_ledger.budgets.errors import BudgetConfigError
from tests.test_budget_workspaces import cli_args

BASE = ("budget", "set", "tiny", "--period", "day", "--limit", "0.01")


@pytest.mark.parametrize(
    ("options", "scope"),
    [
        (("--tenant", "demo"), BudgetScope.TENANT),
        (("--tenant", "demo", "--agent", "ebay_listing"), BudgetScope.AGENT),
        (("--tenant", "demo", "--workflow", "wf-1"), BudgetScope.WORKFLOW),
        (("--tenant", "demo", "--workspace", "eu"), BudgetScope.WORKSPACE),
        (("--tenant", "demo", "--workspace", "eu", "--project", "p"), BudgetScope.PROJECT),
        (("--tenant", "demo", "--scope", "global"), BudgetScope.GLOBAL),
    ],
)
def test_the_scope_follows_the_narrowest_option(
    options: tuple[str, ...], scope: BudgetScope
) -> None:
    assert _scope(cli_args(*BASE, *options)) is scope


def test_no_option_still_asks_for_a_scope() -> None:
    with pytest.raises(BudgetConfigError, match="--scope is required"):
        _scope(cli_args(*BASE))
