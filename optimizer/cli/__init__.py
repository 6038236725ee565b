"""The `flipsync flags|experiment|prompt|finetune` commands (NATS_URL and REDIS_URL): the
parsers in args.py (quick to import: `--help`), the runner in run.py, one module per group."""

from __future__ import annotations

from typing import TYPE_CHECKING

from optimizer.cli.args import COMMANDS, add_commands

if TYPE_CHECKING:
    from optimizer.cli.run import run_command

__all__ = ["COMMANDS", "add_commands", "run_command"]


def __getattr__(name: str) -> object:
    """run_command on first use: it imports Redis, NATS and OpenAI, which --help does not need."""
    if name == "run_command":
        from optimizer.cli.run import run_command

        return run_command
    raise AttributeError(f"module 'optimizer.cli' has no attribute {name!r}")
