"""`flipsync upload` and `flipsync chat`: the agents' command-line entry points.

Each runs against a running deployment when NATS_URL is set, and otherwise starts the whole
stack embedded in this process (the composition is passed in, so agents/ does not import it).
`flipsync http` (the api service, api/) is flipsync.cli's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Protocol

from faststream.nats import NatsBroker

from agents.chat import ask_chat
from agents.intake import upload_and_wait
from agents.output import summary, write_package
from agents.sources import SourceError, load_path
from bus.broker import make_broker
from bus.messages import ChatAsk, ChatTurn, Priority
from bus.settings import Settings
from bus.streams import ensure_streams

COMMANDS = ("upload", "chat")


class Running(Protocol):
    """A started stack, as much of it as these commands use."""

    broker: NatsBroker
    simulated: bool

    async def stop(self) -> None:
        """Stop it and every server it started."""
        ...


Start = Callable[[Settings], Awaitable[Running]]


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the upload and chat commands to the flipsync command line."""
    upload = commands.add_parser(
        "upload", help="upload products (a photo folder, a CSV, a catalog.json) and wait"
    )
    upload.add_argument("path", type=Path)
    upload.add_argument("--tenant", default="default", help="the seller (default: default)")
    upload.add_argument("--out", type=Path, default=Path("listings"), help="package folder")
    upload.add_argument(
        "--priority",
        choices=[p.value for p in Priority],
        default=None,
        help="default: bulk for a CSV import, standard otherwise",
    )
    upload.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait")
    chat = commands.add_parser("chat", help="ask seller chat about your own products")
    chat.add_argument("--tenant", default="default")
    chat.add_argument("question", nargs="*", help="one question; none starts a conversation")


async def run_command(args: argparse.Namespace, settings: Settings, start: Start) -> int:
    """Run one of COMMANDS; the exit status."""
    if args.command == "upload":
        return await upload(settings, start, args)
    if args.command == "chat":
        return await chat(settings, start, args.tenant, " ".join(args.question))
    raise ValueError(f"flipsync {args.command} is not an agents command")


@contextlib.asynccontextmanager
async def connected(settings: Settings, start: Start) -> AsyncIterator[tuple[NatsBroker, bool]]:
    """A broker on the deployment at NATS_URL, else on an embedded stack; and whether it is
    known to run the simulated provider."""
    if settings.nats_url is None:
        stack = await start(settings)
        try:
            yield stack.broker, stack.simulated
        finally:
            await stack.stop()
        return
    broker = make_broker(settings.nats_url, client_name="flipsync-cli")
    await broker.connect()
    try:
        await ensure_streams(broker.connection.jetstream(), settings)
        yield broker, False
    finally:
        await broker.stop()


async def upload(settings: Settings, start: Start, args: argparse.Namespace) -> int:
    """Upload the products at a path, wait for each package, write and summarise them."""
    try:
        products, from_csv = load_path(args.path)
    except (SourceError, OSError, ValueError) as exc:
        print(f"flipsync upload: {exc}", file=sys.stderr)
        return 2
    priority = Priority(args.priority or (Priority.BULK if from_csv else Priority.STANDARD))
    async with connected(settings, start) as (broker, simulated):
        print(f"uploading {len(products)} products for {args.tenant} at {priority} priority")
        done = await upload_and_wait(
            broker,
            products,
            tenant=args.tenant,
            priority=priority,
            settings=settings,
            timeout_s=args.timeout,
        )
    for event in done:
        folder = write_package(args.out, event, simulated=simulated)
        print(summary(event, simulated=simulated))
        print(f"  package    {folder}")
    return 0 if all(event.ok for event in done) else 1


async def chat(settings: Settings, start: Start, tenant: str, question: str) -> int:
    """Answer one question, or hold a conversation on standard input."""
    async with connected(settings, start) as (broker, _simulated):
        history: list[ChatTurn] = []
        async for text in _questions(question):
            reply = await ask_chat(broker, ChatAsk(tenant=tenant, question=text, history=history))
            print(reply.answer if reply.ok else f"(no answer: {reply.reason})", flush=True)
            history += [ChatTurn(role="user", text=text)]
            history += [ChatTurn(role="assistant", text=reply.answer)]
    return 0


async def _questions(first: str) -> AsyncIterator[str]:
    """The one question given, or each line typed until an empty one or end of input."""
    if first:
        yield first
        return
    print("ask about your products; an empty line or Ctrl-D ends", flush=True)
    while line := (await asyncio.to_thread(sys.stdin.readline)).strip():
        yield line
