"""`flipsync flags list|set|remove`: the live feature flags."""

from __future__ import annotations

import argparse
from typing import Any

import msgspec

from bus.messages import FlagChange, FlagRule, Lever
from bus.settings import Settings
from optimizer.cli.common import Conn, add_scope, levers, subcommand
from optimizer.flag_store import FlagStore


def add_parser(commands: Any) -> None:
    """Add `flags` and its subcommands."""
    flags = commands.add_parser("flags", help="list or change feature flags (live, no restart)")
    sub = flags.add_subparsers(dest="flags_command", required=True)
    sub.add_parser("list", help="every flag rule")
    put = sub.add_parser("set", help="add or replace a flag rule")
    put.add_argument("name")
    add_scope(put)
    put.add_argument("--percent", type=float, default=100.0, help="share of matching traffic")
    put.add_argument("--disable", nargs="*", default=[], choices=levers(), metavar="LEVER")
    put.add_argument("--enable", nargs="*", default=[], choices=levers(), metavar="LEVER")
    put.add_argument("--policy", default="", help="routing policy: cheapest, fastest, balanced")
    put.add_argument("--model", default="", help="model override (the request's model hint)")
    sub.add_parser("remove", help="remove a flag rule").add_argument("name")


async def run(args: argparse.Namespace, settings: Settings, conn: Conn) -> FlagChange | None:
    """Run a `flags` subcommand; the change to announce, if it made one."""
    flags = FlagStore(conn.redis)
    match subcommand(args):
        case "list":
            for rule in sorted(await flags.rules(), key=lambda r: r.name):
                print(rule_line(rule))
            return None
        case "set":
            return await flags.change(set_rules=[rule_of(args)], by="cli")
        case _:
            return await flags.change(removed=[args.name], by="cli")


def rule_of(args: argparse.Namespace) -> FlagRule:
    """The rule `flags set` describes."""
    return FlagRule(
        name=args.name,
        tenant=args.tenant,
        agent=args.agent,
        task_type=args.task_type,
        percent=args.percent,
        disable_levers=[Lever(v) for v in args.disable],
        enable_levers=[Lever(v) for v in args.enable],
        routing_policy=args.policy,
        model=args.model,
    )


def rule_line(rule: FlagRule) -> str:
    """One line of `flags list`: the rule's name and its set fields."""
    fields = msgspec.to_builtins(rule)  # levers as their names
    shown = {k: v for k, v in fields.items() if v not in ("", [], None) and k not in ("v",)}
    shown.pop("name")
    return f"{rule.name}: {shown}"
