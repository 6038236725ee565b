"""The `flipsync` command: demo, run one service, report."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import importlib.metadata
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from bus.logs import configure as configure_logging
from flipsync import data_dir
from flipsync.cli_parsing import (
    OneLineErrors,
    deepest,
    pop_verbosity,
    setting_name,
    setting_problem,
)

if TYPE_CHECKING:
    from bus.settings import Settings
    from cost_ledger.api_models import Filter
    from flipsync.stack import Stack

EXIT_CODES = """exit status:
  0    done
  1    done, but some products' workflows failed (each one is named); or an
       upload failed midway (what failed is named, the rest cancelled); or a
       flag, experiment or prompt change was refused, or a chat question got
       no answer (the reason is printed)
  2    bad usage, input or setting (a file, a column, a flag, a name that
       does not exist, a NATS_URL that is not a URL): nothing was started or
       changed
  3    NATS or Redis cannot be reached, or NATS stopped answering during an
       upload (the URL is named, and what to check)
  4    --timeout passed: what finished is written, the rest is not
  5    another flipsync command is using the local data directory
  130  interrupted (Ctrl-C): what finished is written, nothing is left running
  141  the output pipe closed early (| head): the rest was not printed
  143  terminated (SIGTERM): as for Ctrl-C
"""
EXIT_UNREACHABLE = 3
EXIT_BUSY = 5


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
"""Commands that read REDIS_URL or, with none set, the local data (_on_local_ledger)."""
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
    execute = functools.partial(_run, hold=settings.data_dir)
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
                _on_local_ledger(settings, "budget show", lambda s: run_budget_command(args, s))
            )
        return execute(run_budget_command(args, settings))
    if args.command == "http":  # an alias of `flipsync run api` (plus the rest when embedded)
        from flipsync.serving import serve_api

        return execute(serve_api(settings, args.host, args.port))
    if args.command == "providers":
        from flipsync.provider_report import print_providers

        return execute(
            _on_local_ledger(settings, "providers", lambda s: print_providers(s, as_json=args.json))
        )
    if args.command == "cost":
        from cost_ledger.cli import run_command as run_cost_command

        return execute(_on_local_ledger(settings, "cost", lambda s: run_cost_command(args, s)))
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


def _run(coro: Coroutine[Any, Any, int], hold: Path | None = None) -> int:
    """Run a command; an unreachable server, Ctrl-C or SIGTERM end it with one line and a
    stated exit status (see EXIT_CODES), never a traceback."""
    import uvloop

    from bus.reachable import Unreachable
    from bus.redis_memory import EvictingRedis
    from flipsync.providers import ProviderConfigError

    try:
        with data_dir.held(hold):
            status = uvloop.run(_signalled(coro))
        if status in STOPPED:
            _leave_now(status)
        return status
    except Unreachable as exc:
        print(f"flipsync: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except (ProviderConfigError, EvictingRedis) as exc:  # a setting to change, in one line
        print(f"flipsync: {exc}", file=sys.stderr)
        return 2
    except data_dir.DataDirBusy as exc:
        coro.close()
        print(f"flipsync: {exc}", file=sys.stderr)
        return EXIT_BUSY
    except BrokenPipeError:  # `flipsync report | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 128 + signal.SIGPIPE
    except KeyboardInterrupt:  # a second Ctrl-C before the handler was in place
        print("flipsync: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT


STOPPED = (4, 128 + signal.SIGINT, 128 + signal.SIGTERM)
"""Statuses of a run cut short (--timeout, Ctrl-C, SIGTERM): its process exits at once."""


def _leave_now(status: int) -> NoReturn:
    """Exit without the interpreter's finalization: everything is stopped and said by now,
    and collecting the heap (the router's models, tokenizers) took ~5 s after a Ctrl-C."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(status)


async def _signalled(coro: Coroutine[Any, Any, int]) -> int:
    """Await coro; the first SIGINT or SIGTERM cancels it (its clean-up runs: a stack stops
    within its grace) and the status is 128 + the signal. A second one cancels the clean-up
    too: what is left of it is stopping the servers (flipsync.stack.Stack.stop)."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    got: list[int] = []

    def cancel(sig: int) -> None:
        got.append(sig)
        task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, cancel, sig)
    try:
        status = await coro
    except asyncio.CancelledError:
        if not got:
            raise
        print("flipsync: interrupted", file=sys.stderr)
        return 128 + got[0]
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 128 + got[0] if got else status


async def _on_local_ledger(
    settings: Settings, name: str, command: Callable[[Settings], Awaitable[int]]
) -> int:
    """Run a command that reads the ledger against REDIS_URL, or, with none set, against
    the ledger an earlier local command (`make demo`, `flipsync upload`) left behind."""
    async with data_dir.local_ledger(settings) as local:
        if local.redis_url != settings.redis_url and settings.nats_url is not None:
            # NATS_URL says "a deployment", but the ledger is in Redis: without REDIS_URL
            # this reads the local data, and the figures would pass for the deployment's.
            print(f"flipsync {name}: {reads_local_data(local)}", file=sys.stderr)
        return await command(local)


def reads_local_data(settings: Settings) -> str:
    """Why a ledger read with NATS_URL set but no REDIS_URL shows the local data."""
    return (
        f"REDIS_URL is unset: this reads this folder's own data ({settings.data_dir}), not "
        "the servers NATS_URL names; set REDIS_URL to read theirs"
    )


async def print_report(
    settings: Settings,
    tenant: str | None,
    *,
    where: Filter | None = None,
    as_json: bool = False,
    by: str | None = None,
) -> int:
    """Print the ledger report of a running deployment (REDIS_URL); ``where`` narrows it to
    an agent, a model, a workspace or project or a day range (--agent --model --workspace
    --project --start --end); ``by`` shows only that breakdown (--by)."""
    from bus.reachable import open_redis
    from cost_ledger.aggregates import AggregateStore
    from cost_ledger.api_models import Filter
    from cost_ledger.budgets.cli import budget_status
    from cost_ledger.budgets.status import render_status
    from cost_ledger.cli import unknown_to_deployment
    from cost_ledger.report import build_report, render_report
    from cost_ledger.slices import FilterError, check_filter
    from router.routing.grade_report import render_standings, standings

    try:
        where = check_filter(where if where is not None else Filter(tenant=tenant))
    except FilterError as exc:
        print(f"flipsync report: {exc}", file=sys.stderr)
        return 2
    if settings.redis_url is None:
        if not data_dir.has_data(settings.data_dir):
            print(
                "flipsync report: no ledger here: set REDIS_URL to the deployment's Redis, or "
                f"run `make demo` or `flipsync upload` first (they keep data in "
                f"{settings.data_dir or data_dir.DEFAULT})",
                file=sys.stderr,
            )
            return 2
        # The ledger an earlier command left in the local data directory.
        return await _on_local_ledger(
            settings,
            "report",
            lambda local: print_report(local, tenant, where=where, as_json=as_json, by=by),
        )
    client = await open_redis(settings.redis_url, settings.connect_timeout_s)
    try:
        graded = await standings(client, where.tenant, where.agent)
        # A tenant with no call yet but graded agents or a budget of its own is no typo; a
        # mistyped agent or model still is (graded agents excused every name before).
        unknown = await unknown_to_deployment(
            client, settings, where, graded_agents=[s.agent for s in graded]
        )
        if unknown:  # a tenant, agent or model nothing knows: likely mistyped
            print(f"flipsync report: {unknown}", file=sys.stderr)  # not an empty report
            return 2
        # One path, filtered or not: the cost API's spend view of the ledger cube.
        report = await build_report(AggregateStore(client), where=where)
        if as_json:  # the same view as GET /api/cost/spend
            print(report.view.model_dump_json(indent=2))
            return 0
        print(render_report(report, by=by))
        print(render_status(await budget_status(client, settings, tenant)), end="")
        print(render_standings(graded, simulated=report.view.simulated), end="")
    finally:
        await client.aclose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
