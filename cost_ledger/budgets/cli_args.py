"""The parsers of `flipsync ledger ...` and `flipsync budget ...`: argparse and the wire enums
only, so that `--help` answers without importing Redis, NATS or FastStream (cli.py runs them)."""

from __future__ import annotations

from typing import Any

from bus.messages import (
    DEFAULT_PROJECT,
    DEFAULT_WORKSPACE,
    BudgetPeriod,
    BudgetPolicy,
    BudgetScope,
)

_SHOW_FILTERS = {
    "tenant": "one seller's budgets (default: every tenant's)",
    "agent": "the budgets of one agent",
    "workflow": "the budgets of one workflow (one product)",
    "user": "the budgets of one chat user",
    "tier": "one tier's message quota",
    "workspace": f"the workspace of workspace/project budgets (default: {DEFAULT_WORKSPACE!r})",
    "project": f"the project of project budgets (default: {DEFAULT_PROJECT!r})",
}
_SET_SCOPE = {
    "tenant": "only this tenant (scopes tenant, agent, workflow; default: each tenant)",
    "agent": "only this agent (scope agent; default: each agent)",
    "workflow": "only this workflow (scope workflow; default: each workflow)",
    "workspace": "only this workspace (workspace and project scopes)",
    "project": "only this project of the workspace (project scope)",
}


def add_commands(commands: Any) -> None:
    """Add the ledger and budget commands to the `flipsync` subparsers."""
    ledger = commands.add_parser("ledger", help="the ledger stream and its Redis view")
    ledger_sub = ledger.add_subparsers(dest="ledger_command", required=True)
    rebuild_cmd = ledger_sub.add_parser(
        "rebuild", help="replay the LEDGER stream into the aggregates and budgets (idempotent)"
    )
    rebuild_cmd.add_argument(
        "--fresh",
        action="store_true",
        help="first delete the ledger's Redis view (stop the ledger services while it runs)",
    )
    budget = commands.add_parser("budget", help="show or change the live budgets")
    sub = budget.add_subparsers(dest="budget_command", required=True)
    show = sub.add_parser("show", help="each budget's limit, spent, reserved and alerts")
    for name, text in _SHOW_FILTERS.items():
        show.add_argument(f"--{name}", default=None, help=text)
    show.add_argument("--json", action="store_true", help="print GET /api/cost/budgets' JSON")
    put = sub.add_parser("set", help="add or replace a budget")
    put.add_argument("name", help="the budget's name (replaces one of that name)")
    put.add_argument(
        "--scope",
        default=None,
        choices=[s.value for s in BudgetScope],
        help="what it limits (default: the narrowest of --project, --workspace, --workflow, "
        "--agent, --tenant given; else required)",
    )
    put.add_argument(
        "--period",
        required=True,
        choices=[p.value for p in BudgetPeriod],
        help="when its spend starts again from zero (UTC)",
    )
    put.add_argument("--limit", required=True, help='dollars, e.g. "2.00"')
    put.add_argument(
        "--policy",
        default="refuse",
        choices=[p.value for p in BudgetPolicy],
        help="what happens at the limit (default: refuse)",
    )
    for name, text in _SET_SCOPE.items():
        put.add_argument(f"--{name}", default="", help=text)
    remove = sub.add_parser("remove", help="remove a budget")
    remove.add_argument("name", help="the budget's name")
    tier = sub.add_parser("tier", help="set (or --remove) a tier's message quota")
    tier.add_argument("name", help="the tier's name")
    tier.add_argument("--messages", type=int, help="messages allowed per period")
    tier.add_argument(
        "--period",
        default="day",
        choices=[p.value for p in BudgetPeriod],
        help="the quota's period (default: day)",
    )
    tier.add_argument("--remove", action="store_true", help="remove the tier's quota")
    cap = sub.add_parser("cap", help="set (or --remove) the per-request cap")
    cap.add_argument("--limit", help='dollars, e.g. "0.05"')
    cap.add_argument(
        "--policy",
        default="downgrade",
        choices=[p.value for p in BudgetPolicy],
        help="what happens to a request above the cap (default: downgrade)",
    )
    cap.add_argument("--remove", action="store_true", help="remove the cap")
    load = sub.add_parser("load", help="make a budgets file the live rules (all replaced)")
    load.add_argument(
        "file", nargs="?", default=None, help="a budgets TOML file (default: the configured one)"
    )
