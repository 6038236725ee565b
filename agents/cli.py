"""`flipsync upload` and `flipsync chat`: the agents' command-line entry points.

Each runs against a running deployment when NATS_URL is set, and otherwise starts the whole
stack embedded in this process (the composition is passed in, so agents/ does not import it).
`flipsync http` (the api service, api/) is flipsync.cli's. This module holds their parsers and
the dispatch, quick to import (`--help`); each command runs from its own module (cli_upload,
cli_chat), on a session of cli_session.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from agents.folders import FOLDER_HELP
from agents.formats import FORMATS_HELP
from bus.messages import Priority

if TYPE_CHECKING:  # the commands import what they use when they run: --help stays quick
    from agents.cli_session import Start
    from bus.settings import Settings

COMMANDS = ("upload", "chat")
"""The commands `python -m agents` runs."""


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the upload and chat commands to the flipsync command line."""
    upload = commands.add_parser(
        "upload",
        help="upload products (a photo folder, a CSV export, a catalog.json) and wait",
        description=(
            "Upload products, wait for their listing packages, write each one as it finishes "
            "and end with the cost report. Ctrl-C or --timeout keeps what finished."
        ),
        epilog=f"{FOLDER_HELP}\n\n{FORMATS_HELP}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    upload.add_argument(
        "path",
        type=Path,
        help="a CSV file, a catalog.json, a product folder (photos, notes.txt, product.json: "
        "below), or a folder of product folders",
    )
    upload.add_argument("--tenant", default="default", help="the seller (default: default)")
    upload.add_argument(
        "--out", type=Path, default=Path("listings"), help="package folder (default: listings)"
    )
    upload.add_argument(
        "--priority",
        choices=[p.value for p in Priority],
        default=None,
        help="default: bulk for a CSV import, standard otherwise",
    )
    upload.add_argument(
        "--timeout", type=float, default=1800.0, help="seconds to wait in all (default: 1800)"
    )
    upload.add_argument(
        "--duplicates",
        choices=("refuse", "rename"),
        default="refuse",
        help="a product id on two rows: refuse the file (default), or rename the later rows",
    )
    chat = commands.add_parser("chat", help="ask seller chat about your own products")
    chat.add_argument("--tenant", default="default", help="the seller (default: default)")
    chat.add_argument("question", nargs="*", help="one question; none starts a conversation")


async def run_command(args: argparse.Namespace, settings: Settings, start: Start) -> int:
    """Run one of COMMANDS; the exit status."""
    if problem := bad_option(args):
        print(f"flipsync {args.command}: {problem}", file=sys.stderr)
        return 2
    if args.command == "upload":
        from agents.cli_upload import upload

        return await upload(settings, start, args)
    if args.command == "chat":
        from agents.cli_chat import chat

        return await chat(settings, start, args.tenant, " ".join(args.question))
    raise ValueError(f"flipsync {args.command} is not an agents command")


def bad_option(args: argparse.Namespace) -> str | None:
    """What is wrong with a command's options (checked before anything starts), or None."""
    from bus.subjects import valid_token

    if not valid_token(args.tenant):
        return f"--tenant {args.tenant!r}: a tenant is 1 to 64 letters, digits, _ and -"
    timeout = getattr(args, "timeout", None)
    if timeout is not None and not timeout > 0:  # not "timeout <= 0": NaN is refused too
        return f"--timeout {timeout:g}: must be more than 0 seconds"
    return None
