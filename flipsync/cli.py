"""The `flipsync` command: demo, run one service, report."""

from __future__ import annotations

import argparse
import functools
import importlib.metadata
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bus.logs import configure as configure_logging
from flipsync import data_dir
from flipsync.cli_parsing import (
    OneLineErrors,
    deepest,
    pop_verbosity,
    setting_name,
    setting_problem,
)
from flipsync.cost_report import on_local_ledger, print_report
from flipsync.exit_status import EXIT_BUSY, EXIT_CODES, run_for_status

if TYPE_CHECKING:
    from bus.settings import Settings
    from flipsync.stack import Stack


COMMAND_HELP = {
    "demo": "run everything embedded on the sample catalog",
    "upload": "upload products (a photo folder, a CSV export, a catalog.json) and wait",
    "chat": "ask seller chat about your own products",
    "report": "print the cost report from the ledger",
    "cost": "cost views: spend, forecast, anomalies, advice",
    "budget": "show or change the live budgets",
    "ledger": "the ledger stream and its Redis view",
    "providers": "print provider health, latency and cost",
    "flags": "list or change feature flags (live, no restart)",
    "experiment": "A/B experiments on prompts, models, levers",
    "prompt": "shorter prompt variants of an agent",
    "finetune": "fine-tune a model on a task type's best answers",
    "run": "run services until SIGTERM (uses NATS_URL, REDIS_URL)",
    "http": "serve the HTTP API (uploads, chat, cost, dashboard, /v1, /asyncapi)",
    "reset": "clear the local data directory the embedded servers keep between commands",
    "nats-auth": "write the NATS users file (auth.conf)",
}
"""Every command and its help line: `flipsync --help` lists them without importing any."""


READS_LOCAL_LEDGER = ("report", "cost", "providers")
"""Commands that read REDIS_URL or, with none set, the local data
(flipsync.cost_report.on_local_ledger)."""
NEEDS_DEPLOYMENT = ("budget", "ledger", "flags", "experiment", "finetune")
"""Commands that work only on a running deployment (NATS_URL and REDIS_URL)."""


RUNNABLE = ("provider", "router", "ledger", "workflow", "agents", "api", "notifier")
"""What `flipsync run` starts: flipsync.stack.Service's values, named here so that parsing the
command line does not import the stack (a test keeps the two equal)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `flipsync` command.

    Parsed in two steps so that `--help` answers at once: the command name first, then only
    that command's options, from the module that runs it (heavy imports stay there).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    listing = "\n".join(f"  {name:11} {text}" for name, text in COMMAND_HELP.items())
    parser = argparse.ArgumentParser(
        prog="flipsync",
        description=f"{__doc__}\n\ncommands:\n{listing}",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"flipsync {_version()}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="-v: info and library logs (FastStream, nats); -vv: debug",
    )
    parser.add_argument(
        "command",
        choices=list(COMMAND_HELP),
        metavar="COMMAND",
        help="one of the commands above; COMMAND --help for its options",
    )
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    first = parser.parse_args(argv)
    rest, later = pop_verbosity(first.rest)
    full = OneLineErrors(prog="flipsync")
    commands = full.add_subparsers(dest="command", required=True)
    _add_parser(first.command, commands)
    args, unknown = full.parse_known_args([first.command, *rest])
    if unknown:  # named by the (sub)command that did not take them, not by `flipsync`
        deepest(commands.choices[first.command], args).error(
            f"unrecognized arguments: {' '.join(unknown)}"
        )
    args.verbose = first.verbose + later
    configure_logging(args.verbose, service=args.command in ("run", "http"))
    if args.command == "nats-auth":
        tenants = [t for t in args.tenants.split(",") if t]
        return write_nats_auth(args.out, args.secrets, tenants)
    from pydantic import ValidationError

    from bus.settings import Settings

    try:
        settings = data_dir.local(Settings())  # embedded servers keep their data
    except ValidationError as exc:  # a setting in the environment: named, one line each
        for error in exc.errors():
            print(f"flipsync: {setting_name(error['loc'])}: {setting_problem(error['msg'])}",
                  file=sys.stderr)  # fmt: skip
        return 2
    if args.command != "reset" and (taken := data_dir.busy(settings.data_dir)) is not None:
        print(f"flipsync: {taken}", file=sys.stderr)  # before the command's slow imports
        return EXIT_BUSY
    execute = functools.partial(run_for_status, hold=settings.data_dir)
    if args.command == "reset":
        try:
            print(data_dir.reset(settings.data_dir or data_dir.DEFAULT.resolve()))
        except data_dir.DataDirBusy as exc:
            print(f"flipsync reset: {data_dir.reset_refused(exc)}", file=sys.stderr)
            return EXIT_BUSY
        except data_dir.NotOnlyData as exc:
            print(f"flipsync reset: {exc}", file=sys.stderr)
            return 2
        return 0
    if args.command == "demo":
        from flipsync.demo import run_demo

        return execute(run_demo(settings))
    if args.command == "run":
        from flipsync.serving import run_services
        from flipsync.stack import Service

        return execute(run_services(settings, [Service(s) for s in args.services]))
    if args.command in ("ledger", "budget"):
        from cost_ledger.budgets.cli import run_command as run_budget_command

        if args.command == "budget" and args.budget_command == "show":  # reads: local too
            return execute(
                on_local_ledger(settings, "budget show", lambda s: run_budget_command(args, s))
            )
        return execute(run_budget_command(args, settings))
    if args.command == "http":  # an alias of `flipsync run api` (plus the rest when embedded)
        from flipsync.serving import serve_api

        return execute(serve_api(settings, args.host, args.port))
    if args.command == "providers":
        from flipsync.provider_report import print_providers

        return execute(
            on_local_ledger(settings, "providers", lambda s: print_providers(s, as_json=args.json))
        )
    if args.command == "cost":
        from cost_ledger.cli import run_command as run_cost_command

        return execute(on_local_ledger(settings, "cost", lambda s: run_cost_command(args, s)))
    if args.command in ("flags", "experiment", "prompt", "finetune"):
        from optimizer.cli import run_command as run_optimizer_command

        return execute(run_optimizer_command(args, settings))
    if args.command in ("upload", "chat"):
        from agents.cli import run_command as run_agent_command

        return execute(run_agent_command(args, settings, _start_stack))
    from cost_ledger.cli_args import filter_of

    return execute(
        print_report(settings, args.tenant, where=filter_of(args), as_json=args.json, by=args.by)
    )


def full_parser() -> argparse.ArgumentParser:
    """Every command's parser at once (for the tests and docs; `main` builds only the one it
    runs). A module that adds two commands (upload and chat) is asked once."""
    full = argparse.ArgumentParser(prog="flipsync")
    commands = full.add_subparsers(dest="command", required=True)
    for command in COMMAND_HELP:
        if command not in commands.choices:
            _add_parser(command, commands)
    return full


def _add_parser(command: str, commands: Any) -> None:
    """Add command's parser (with every option it takes) to the subparsers; each command's
    `--help` starts with what it does and where it reads from."""
    _add_command_parser(command, commands)
    for name, parser in commands.choices.items():
        if parser.description is None:
            parser.description = _description(name)


def _description(command: str) -> str:
    """A command's help line as a sentence, and where it reads from when that matters."""
    from bus.settings import LOCAL_HINT

    text = COMMAND_HELP[command]
    text = f"{text[0].upper()}{text[1:]}."
    if command in READS_LOCAL_LEDGER:
        text += (
            " It reads REDIS_URL or, with none set, the local data `make demo` and"
            " `flipsync upload` keep (`flipsync reset` clears it)."
        )
    elif command == "budget":
        text += (
            " `budget show` reads REDIS_URL or, with none set, the local data; a change works"
            f" on a running deployment: set NATS_URL and REDIS_URL {LOCAL_HINT}."
        )
    elif command in NEEDS_DEPLOYMENT:
        text += f" It works on a running deployment: set NATS_URL and REDIS_URL {LOCAL_HINT}."
    return text


def _add_command_parser(command: str, commands: Any) -> None:
    """Add command's parser (with every option it takes) to the subparsers."""
    if command in ("upload", "chat"):
        from agents.cli import add_commands as add_agent_commands

        add_agent_commands(commands)
    elif command in ("ledger", "budget"):
        from cost_ledger.budgets.cli_args import add_commands as add_budget_commands

        add_budget_commands(commands)
    elif command in ("flags", "experiment", "prompt", "finetune"):
        from optimizer.cli.args import add_commands as add_optimizer_commands

        add_optimizer_commands(commands)
    elif command == "cost":
        from cost_ledger.cli_args import add_commands as add_cost_commands

        add_cost_commands(commands)
    else:
        _add_own_parser(command, commands)


def _add_own_parser(command: str, commands: Any) -> None:
    """The parsers of the commands this module runs itself."""
    sub = commands.add_parser(command, help=COMMAND_HELP[command])
    if command == "run":
        sub.add_argument("services", nargs="+", choices=RUNNABLE, help="the services to run")
    elif command == "report":
        from cost_ledger.cli_args import BREAKDOWNS, add_filters

        sub.add_argument("--tenant", default=None, help="one seller's report (default: all)")
        sub.add_argument("--json", action="store_true", help="print the report as JSON")
        add_filters(sub, tenant=False, places=True)
        sub.add_argument(
            "--by",
            default=None,
            choices=BREAKDOWNS,
            help="show spend by this only (default: every breakdown the ledger has)",
        )
    elif command == "providers":
        sub.add_argument("--json", action="store_true", help="print JSON instead of a table")
    elif command == "http":
        sub.add_argument("--host", default="127.0.0.1", help="address (default: 127.0.0.1)")
        sub.add_argument("--port", type=int, default=8080, help="port (default: 8080)")
    elif command == "nats-auth":
        sub.add_argument(
            "--out",
            type=Path,
            default=Path("deploy/nats/auth.conf"),
            help="where to write it (default: deploy/nats/auth.conf)",
        )
        sub.add_argument("--secrets", type=Path, default=None, help="also new passwords here")
        sub.add_argument(
            "--tenants", default="", help="comma-separated: agent users per agent and tenant"
        )


async def _start_stack(settings: Settings) -> Stack:
    """flipsync.stack.start_stack, imported only when a command starts the stack: against a
    running deployment (NATS_URL) `upload` and `chat` never import it (seconds of imports:
    the router, its models, the API), so a wrong NATS_URL is reported at once."""
    from flipsync.stack import start_stack

    return await start_stack(settings)


def write_nats_auth(out: Path, secrets_dir: Path | None, tenants: list[str] | None = None) -> int:
    """Write the NATS accounts and users (one per service, and per agent spec or per agent
    spec and tenant)."""
    from agents.specs import ALL_SPECS
    from bus.nats_auth import write_auth_files

    agents = [spec.name for spec in ALL_SPECS]
    print(write_auth_files(out, agents, secrets_dir, tenants or ()))
    return 0


def _version() -> str:
    try:
        return importlib.metadata.version("flipsync")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
