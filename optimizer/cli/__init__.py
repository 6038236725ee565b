"""The `flipsync flags|experiment|prompt|finetune` commands (NATS_URL and REDIS_URL): one
module per command group, each with its parser and its runner."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from bus.messages import FlagChange
from bus.settings import Settings
from optimizer.cli import experiment, finetune, flags, prompt
from optimizer.cli.common import Conn, connect
from optimizer.errors import OptimizerError
from optimizer.flag_store import publish_change

Runner = Callable[[argparse.Namespace, Settings, Conn], Awaitable[FlagChange | None]]
_GROUPS: dict[str, tuple[Callable[[Any], None], Runner]] = {
    "flags": (flags.add_parser, flags.run),
    "experiment": (experiment.add_parser, experiment.run),
    "prompt": (prompt.add_parser, prompt.run),
    "finetune": (finetune.add_parser, finetune.run),
}
COMMANDS = frozenset(_GROUPS)


def add_commands(commands: Any) -> None:
    """Add the optimizer's commands to the `flipsync` subparsers."""
    for add_parser, _ in _GROUPS.values():
        add_parser(commands)


async def run_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run one optimizer command against a running deployment."""
    if args.command == "prompt" and not args.start:
        return prompt.show_variants(args)
    if settings.redis_url is None or settings.nats_url is None:
        print(f"flipsync {args.command}: set NATS_URL and REDIS_URL", file=sys.stderr)
        return 2
    _, run = _GROUPS[args.command]
    try:
        async with connect(settings) as conn:
            change = await run(args, settings, conn)
            if change is not None:
                await publish_change(conn.nc, change)
                print(f"flags changed ({change.change_id}); every router applies it now")
    except OptimizerError as exc:
        print(f"flipsync {args.command}: {exc.reason}", file=sys.stderr)
        return 1
    return 0
