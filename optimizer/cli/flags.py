"""`flipsync flags list|set|remove`: the live feature flags."""

from __future__ import annotations

import argparse

import msgspec

from bus.messages import FlagChange, FlagRule, Lever
from bus.settings import Settings
from optimizer.cli.common import Conn, subcommand
from optimizer.flag_store import FlagStore


async def run(args: argparse.Namespace, settings: Settings, conn: Conn) -> FlagChange | None:
    """Run a `flags` subcommand; the change to announce, if it made one."""
    flags = FlagStore(conn.redis)
    match subcommand(args):
        case "list":
            rules = sorted(await flags.rules(), key=lambda r: r.name)
            for rule in rules:
                print(rule_line(rule))
            if not rules:
                print("no flag rules: every lever runs as the settings say (`flipsync flags set`)")
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
