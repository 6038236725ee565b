"""Run `flipsync flags|experiment|prompt|finetune` against a running deployment (NATS_URL and
REDIS_URL): one module per command group holds its runner."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable

from bus.messages import FlagChange
from bus.settings import LOCAL_HINT, Settings
from optimizer.cli import experiment, finetune, flags, prompt
from optimizer.cli.common import Conn, connect
from optimizer.errors import BadInput, OptimizerError
from optimizer.flag_store import publish_change

Runner = Callable[[argparse.Namespace, Settings, Conn], Awaitable[FlagChange | None]]
_RUNNERS: dict[str, Runner] = {
    "flags": flags.run,
    "experiment": experiment.run,
    "prompt": prompt.run,
    "finetune": finetune.run,
}


async def run_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run one optimizer command against a running deployment."""
    if args.command == "prompt" and not args.start:
        return prompt.show_variants(args)
    if settings.redis_url is None or settings.nats_url is None:
        print(
            f"flipsync {args.command}: set NATS_URL and REDIS_URL to a deployment's " + LOCAL_HINT,
            file=sys.stderr,
        )
        return 2
    run = _RUNNERS[args.command]
    try:
        async with connect(settings) as conn:
            change = await run(args, settings, conn)
            if change is not None:
                await publish_change(conn.nc, change)
                print(f"flags changed ({change.change_id}); every router applies it now")
    except OptimizerError as exc:
        print(f"flipsync {args.command}: {exc.reason}", file=sys.stderr)
        return 2 if isinstance(exc, BadInput) else 1
    return 0
