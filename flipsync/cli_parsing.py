"""Parsing the `flipsync` command line as people type it: -v anywhere, and one-line errors
that name the subcommand (flipsync.cli)."""

from __future__ import annotations

import argparse
from typing import NoReturn


class OneLineErrors(argparse.ArgumentParser):
    """A parser whose errors are one line naming the command, and where to read its options
    (the usage block of a long command hid the one line that mattered)."""

    def error(self, message: str) -> NoReturn:
        """Print `PROG: MESSAGE (PROG --help: its options)` and exit 2."""
        self.exit(2, f"{self.prog}: {message} (`{self.prog} --help` lists its options)\n")


def deepest(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The innermost subcommand's parser that args went through (`budget show`, say)."""
    while True:
        subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        chosen = getattr(args, subparsers[0].dest, None) if subparsers else None
        if chosen is None or chosen not in subparsers[0].choices:
            return parser
        parser = subparsers[0].choices[chosen]


def pop_verbosity(rest: list[str]) -> tuple[list[str], int]:
    """A command's arguments without -v, -vv or --verbose (accepted after the command name
    too, as people type them: `flipsync demo -v`), and how many levels they asked for."""
    kept: list[str] = []
    levels = 0
    for i, arg in enumerate(rest):
        if arg == "--":
            return kept + rest[i:], levels
        if arg == "--verbose":
            levels += 1
        elif len(arg) > 1 and arg.startswith("-") and set(arg[1:]) == {"v"}:
            levels += len(arg) - 1
        else:
            kept.append(arg)
    return kept, levels


def setting_name(loc: tuple[int | str, ...]) -> str:
    """The environment variable a settings error is about: an alias as it stands (NATS_URL),
    a field as FLIPSYNC_ spells it (sim_latency_ms: FLIPSYNC_SIM_LATENCY_MS)."""
    parts = [str(part) for part in loc]
    if parts and parts[0].isupper():
        return "__".join(parts)
    return "FLIPSYNC_" + "__".join(parts).upper()


def setting_problem(message: str) -> str:
    """pydantic's message without its "Value error, " prefix."""
    return message.removeprefix("Value error, ")
