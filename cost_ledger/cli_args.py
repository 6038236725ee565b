"""The parsers of `flipsync cost ...` and the filters of `flipsync report`: argparse only, so
that `--help` answers without importing Redis, rich or the views (cli.py runs them)."""

from __future__ import annotations

import argparse
from datetime import date
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cost_ledger.api_models import Filter

VIEWS = ("spend", "timeseries", "forecast", "anomalies", "recommend")
VIEW_HELP = {
    "spend": "spend, savings per lever, cost per operation and product, hit rates",
    "timeseries": "daily spend, savings per lever and routing mix (always JSON)",
    "forecast": "spend over the next 30, 60 and 90 days, with an interval",
    "anomalies": "hours of unusual spend or cost per call, with their likely cause",
    "recommend": "cheaper tiers, cache misses, long prompts, with monthly savings",
}


PLACE_VIEWS = ("spend", "timeseries")
"""The views that can be narrowed to a workspace or project."""
BREAKDOWNS = ("lever", "tenant", "agent", "model", "task_type", "day", "workspace", "project")
"""What `flipsync report --by` can show spend by."""


def utc_day(text: str) -> date:
    """A --start or --end day as argparse reads it; a clear error for anything else."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a day as YYYY-MM-DD, got {text!r}") from None


def add_filters(
    parser: argparse.ArgumentParser, *, tenant: bool = True, places: bool = False
) -> None:
    """The report filters: --tenant (unless the parser has it) --agent --model --start --end,
    and with places --workspace --project."""
    if tenant:
        parser.add_argument("--tenant", default=None, help="one seller (default: all)")
    parser.add_argument("--agent", default=None, help="one agent (not with --model)")
    parser.add_argument("--model", default=None, help="one model (not with --agent)")
    parser.add_argument("--start", type=utc_day, default=None, help="first UTC day, YYYY-MM-DD")
    parser.add_argument("--end", type=utc_day, default=None, help="last UTC day, YYYY-MM-DD")
    if places:
        parser.add_argument(
            "--workspace", default=None, help="one workspace (not with --agent or --model)"
        )
        parser.add_argument(
            "--project", default=None, help="one project of the workspace (with --workspace)"
        )


def filter_of(args: argparse.Namespace) -> Filter:
    """The Filter the parsed arguments ask for."""
    from cost_ledger.api_models import Filter

    return Filter(
        tenant=args.tenant,
        agent=getattr(args, "agent", None),
        model=getattr(args, "model", None),
        start=getattr(args, "start", None),
        end=getattr(args, "end", None),
        workspace=getattr(args, "workspace", None),
        project=getattr(args, "project", None),
    )


def is_filtered(where: Filter) -> bool:
    """Whether a filter narrows more than the tenant (so `flipsync report` shows render_spend)."""
    narrowing = (where.agent, where.model, where.start, where.end, where.workspace, where.project)
    return any(v is not None for v in narrowing)


def add_commands(commands: Any) -> None:
    """Add `flipsync cost ...` to the `flipsync` subparsers."""
    cost = commands.add_parser("cost", help="cost views: spend, forecast, anomalies, advice")
    sub = cost.add_subparsers(dest="cost_command", required=True)
    for name in VIEWS:
        view = sub.add_parser(name, help=VIEW_HELP[name])
        add_filters(view, places=name in PLACE_VIEWS)
        view.add_argument("--json", action="store_true", help="print the API's JSON")
    ref = sub.add_parser("vs-reference", help="each agent's cost per operation vs reference")
    ref.add_argument("--tenant", default=None, help="one seller (default: all)")
    ref.add_argument("--file", default=None, help="a reference file (default: the packaged one)")
    ref.add_argument("--json", action="store_true", help="print JSON instead of a table")
