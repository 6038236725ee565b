"""`flipsync upload` and `flipsync chat`: the agents' command-line entry points.

Each runs against a running deployment when NATS_URL is set, and otherwise starts the whole
stack embedded in this process (the composition is passed in, so agents/ does not import it).
`flipsync http` (the api service, api/) is flipsync.cli's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from agents.folders import FOLDER_HELP
from agents.formats import FORMATS_HELP
from bus.messages import Priority

if TYPE_CHECKING:  # the commands import what they use when they run: --help stays quick
    import redis.asyncio as aioredis
    from faststream.nats import NatsBroker

    from bus.connection_lost import NatsLost
    from bus.settings import Settings
    from bus.stopping import Stopping
    from cost_ledger.aggregates import AggregateStore

log = logging.getLogger(__name__)

COMMANDS = ("upload", "chat")
EXIT_FAILED = 1
"""Exit status of an upload that failed midway (named), or whose products' workflows failed."""
EXIT_UNREACHABLE = 3
"""Exit status when NATS or Redis cannot be reached, or stopped answering (as flipsync.cli's:
agents/ does not import flipsync/)."""
EXIT_TIMEOUT = 4
"""Exit status of an upload whose --timeout passed before every product was done."""
EXIT_INTERRUPTED = 130
"""Exit status after Ctrl-C (128 + SIGINT), what finished written."""
TENANTS_LISTED = 20
"""How many tenants with listings a chat to an unknown tenant names at most."""


class Running(Protocol):
    """A started stack, as much of it as these commands use."""

    broker: NatsBroker
    simulated: bool
    redis: aioredis.Redis
    stopping: Stopping

    async def stop(self) -> None:
        """Stop it and every server it started."""
        ...


Start = Callable[["Settings"], Awaitable[Running]]


@dataclass(frozen=True, kw_only=True)
class Session:
    """What a command works with: the broker, whether the provider is simulated, and the
    ledger's aggregates when a Redis is at hand (embedded, or REDIS_URL)."""

    broker: NatsBroker
    simulated: bool
    aggregates: AggregateStore | None
    stopping: Stopping | None = None
    """The embedded stack's stop signal (its agents give way when it is set)."""


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
        return await upload(settings, start, args)
    if args.command == "chat":
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


@contextlib.asynccontextmanager
async def connected(settings: Settings, start: Start) -> AsyncIterator[Session]:
    """A session on the deployment at NATS_URL (and REDIS_URL), else on an embedded stack."""
    from bus.broker import make_broker, stop_broker
    from bus.reachable import open_redis, reach_nats
    from bus.streams import ensure_streams
    from cost_ledger.aggregates import AggregateStore

    if settings.nats_url is None:
        stack = await start(settings)
        try:
            yield Session(
                broker=stack.broker,
                simulated=stack.simulated,
                aggregates=AggregateStore(stack.redis),
                stopping=stack.stopping,
            )
        finally:
            await stack.stop()
        return
    broker = make_broker(settings.nats_url, client_name="flipsync-cli")
    await reach_nats(
        settings.nats_url, broker.connect, settings.connect_timeout_s, give_up=broker.stop
    )
    client: aioredis.Redis | None = None
    try:
        if settings.redis_url is not None:
            client = await open_redis(settings.redis_url, settings.connect_timeout_s)
        await ensure_streams(broker.connection.jetstream(), settings)
        aggregates = AggregateStore(client) if client is not None else None
        yield Session(broker=broker, simulated=False, aggregates=aggregates)
    finally:
        if client is not None:
            await client.aclose()
        await stop_broker(broker)


async def upload(settings: Settings, start: Start, args: argparse.Namespace) -> int:
    """Upload the products at a path, write each package as it finishes, then summarise them
    and print the cost report. Ctrl-C or the timeout ends it with one line, keeping what
    finished."""
    from rich.console import Console

    from agents.bulk_report import UploadProgress, cost_line, ledger_report, other_calls_line
    from agents.cancel import requests_mark
    from agents.intake import upload_and_wait
    from agents.output import folder_problem, summary, write_package
    from agents.photos import PhotoError
    from agents.sources import SourceError, load_source
    from bus.connection_lost import NatsLost, unless_lost
    from bus.messages import WorkflowDone
    from bus.terminal import terminal_safe
    from cost_ledger.report import counted

    try:
        loaded = load_source(args.path, duplicates=args.duplicates)
    except (SourceError, OSError, ValueError) as exc:
        print(f"flipsync upload: {terminal_safe(str(exc))}", file=sys.stderr)
        return 2
    for warning in loaded.warnings:
        print(f"flipsync upload: warning: {terminal_safe(warning)}", file=sys.stderr)
    products = loaded.products
    priority = Priority(args.priority or (Priority.BULK if loaded.bulk else Priority.STANDARD))
    out = Path(args.out) / args.tenant
    if problem := folder_problem(out):  # before anything is uploaded, so nothing is paid
        print(f"flipsync upload: --out {problem}", file=sys.stderr)
        return 2
    started: list[str] = []
    uploaded: list[str] = []
    finished: list[WorkflowDone] = []
    ended = ""
    sent = ""  # on a failure midway: how many were uploaded, how many not
    status = 0
    lost = False  # NATS dropped and did not come back: nothing more is sent
    report = ""
    other = 0
    console = Console(stderr=True)
    async with connected(settings, start) as session:
        what = counted(len(products), "product")
        print(f"uploading {what} for {args.tenant} at {priority} priority")
        before, before_baseline = 0, 0
        if session.aggregates is not None:
            held = await session.aggregates.totals(args.tenant)
            before, before_baseline = held.spend_micro_usd, held.baseline_micro_usd

        mark = await requests_mark(session.broker)
        with UploadProgress(console, len(products)) as progress:

            def keep(event: WorkflowDone) -> None:
                simulated = session.simulated or event.simulated
                write_package(args.out, event, simulated=simulated)
                finished.append(event)
                progress.on_done(event)

            uploading = upload_and_wait(
                session.broker,
                products,
                tenant=args.tenant,
                priority=priority,
                settings=settings,
                timeout_s=args.timeout,
                on_progress=progress.on_progress,
                on_done=keep,
                on_start=started.append,
                on_upload=lambda upload: uploaded.append(upload.workflow_id),
            )
            try:
                # nats-py reconnects forever: a server gone for good would hold the wait until
                # --timeout (bus.connection_lost).
                where = nats_where(settings.nats_url)
                after_s = settings.nats_lost_after_s
                await unless_lost(uploading, session.broker.connection, where, after_s)
            except TimeoutError:
                ended, status = f"timed out after {args.timeout:g} s", EXIT_TIMEOUT
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()  # handled: the stack below still stops cleanly
                ended, status = "interrupted", EXIT_INTERRUPTED
            except PhotoError as exc:  # damaged past the header load_source checked
                ended, status = f"flipsync upload: {terminal_safe(str(exc))}", 2
            except NatsLost as exc:
                lost, waiting = True, len(uploaded) == len(products)
                ended, status = lost_line(exc, waiting=waiting), EXIT_UNREACHABLE
                if not waiting:
                    sent = f", {len(uploaded)} uploaded and {len(products) - len(uploaded)} not"
            except Exception as exc:  # a publish refused, NATS gone: one line, no traceback
                log.debug("upload failed", exc_info=exc)  # the traceback, with -v
                ended, status = upload_failure(exc, settings.nats_url)
                sent = f", {len(uploaded)} uploaded and {len(products) - len(uploaded)} not"
        if ended:
            done = {event.workflow_id for event in finished}
            unfinished = [wf for wf in started if wf not in done]
            cancelled = await stop_unfinished(
                session, settings, args.tenant, unfinished, mark, why=ended,
                note=status != 2,  # a damaged photo's line is the news: the rest go quietly
                reachable=not lost,  # else the cancel could only wait CANCEL_WITHIN_S to fail
            )  # fmt: skip
        if not ended and session.aggregates is not None:
            spent = before + sum(e.cost_micro_usd for e in finished)
            naive = before_baseline + sum(e.baseline_micro_usd for e in finished)
            report = await ledger_report(session.aggregates, args.tenant, spent, naive)
            other = (await session.aggregates.totals(args.tenant)).spend_micro_usd - spent
    if ended:
        written = f"written to {out}/" if finished else "nothing written"
        print(
            f"{ended}: {len(finished)} of {counted(len(products), 'product')} done{sent}, "
            f"{written}{cancelled}",
            file=sys.stderr,
        )
        return status
    order = {product.product_id: index for index, product in enumerate(products)}
    finished.sort(key=lambda event: order.get(event.product_id, len(order)))
    for event in finished:
        # A listing quotes the seller's cells and the model's words: escaped, as errors are.
        print(terminal_safe(summary(event, simulated=session.simulated or event.simulated)))
        print(f"  package    {out / event.product_id}")
    simulated = session.simulated or any(event.simulated for event in finished)
    print(cost_line(finished, simulated=simulated))
    if other > 0:  # so that the lines above add up to the report's spend below
        print(other_calls_line(other, simulated=simulated))
    if report:
        print(report)
    return 0 if all(event.ok for event in finished) else 1


def nats_where(nats_url: str | None) -> str:
    """The NATS a command talks to, for a line: NATS_URL without its password, or the
    embedded server (None)."""
    from bus.reachable import redact_url

    return redact_url(nats_url) if nats_url else "the embedded server"


def lost_line(exc: NatsLost, *, waiting: bool) -> str:
    """The line of an upload whose NATS connection dropped and did not come back, while it
    waited for listings (else while it uploaded)."""
    doing = "waiting for listings" if waiting else "uploading"
    return (
        f"flipsync upload: lost the connection to NATS at {exc.url} while {doing}; "
        f"not back within {exc.after_s:g} s"
    )


def upload_failure(exc: Exception, nats_url: str | None) -> tuple[str, int]:
    """The line and exit status of an upload that failed midway (not a photo, a timeout or
    Ctrl-C): EXIT_UNREACHABLE when NATS stopped answering, EXIT_FAILED for anything else."""
    from agents.intake import LOST_NATS, UploadError
    from bus.terminal import terminal_safe

    said = str(exc) if isinstance(exc, UploadError) else f"{type(exc).__name__}: {exc}"
    line = f"flipsync upload: {terminal_safe(said, line_breaks=False)}"
    lost = exc.lost_nats if isinstance(exc, UploadError) else isinstance(exc, LOST_NATS)
    if lost:
        return f"{line}: NATS at {nats_where(nats_url)} stopped answering", EXIT_UNREACHABLE
    return line, EXIT_FAILED


async def stop_unfinished(
    session: Session,
    settings: Settings,
    tenant: str,
    unfinished: list[str],
    since_seq: int,
    *,
    why: str,
    note: bool = True,
    reachable: bool = True,
) -> str:
    """Say at once that the upload stops (unless why is a line of its own, "flipsync upload:
    ..."), then cancel its unfinished workflows (so that no later command pays for them); the
    closing line's note on them (none when note is False and they were cancelled). Nothing
    is cancelled when NATS is known gone (reachable False)."""
    from agents.cancel import CANCEL_WITHIN_S, cancel_workflows
    from cost_ledger.report import counted

    if not unfinished:
        return ""
    what = counted(len(unfinished), "unfinished product")
    # A damaged photo or a failed upload ends it at once, with its own line.
    quiet = why.startswith("flipsync upload:")
    if why == "interrupted":
        print(f"stopping: cancelling {what} (Ctrl-C again to quit at once)", file=sys.stderr,
              flush=True)  # fmt: skip
    elif not quiet:
        print(f"stopping: {why}; cancelling {what}", file=sys.stderr, flush=True)
    if session.stopping is not None:
        session.stopping.set()  # the agents give way now: no request is sent after this
    if not reachable:
        return f"; {what} not cancelled (NATS is gone): they may resume under the next command"
    try:
        async with asyncio.timeout(CANCEL_WITHIN_S):
            await cancel_workflows(session.broker, settings, tenant, unfinished,
                                   since_seq=since_seq)  # fmt: skip
    except Exception as exc:  # said, not raised: the stop goes on either way
        detail = str(exc) or type(exc).__name__
        return f"; {what} not cancelled ({detail}): they may resume under the next command"
    return f"; {what} cancelled (calls already made stay in the report)" if note else ""


async def chat(settings: Settings, start: Start, tenant: str, question: str) -> int:
    """Answer one question, or hold a conversation on standard input."""
    from agents.chat import ask_chat
    from bus.messages import ChatAsk, ChatTurn
    from bus.terminal import terminal_safe

    unanswered = 0
    async with connected(settings, start) as session:
        history: list[ChatTurn] = []
        async for text in _questions(question):
            reply = await ask_chat(
                session.broker, ChatAsk(tenant=tenant, question=text, history=history)
            )
            if not reply.ok and (unknown := await unknown_tenant(session.broker, tenant)):
                print(f"flipsync chat: {unknown}", file=sys.stderr)  # likely mistyped
                return 2
            unanswered += not reply.ok
            # The reply says whether the simulated provider wrote it (a template's answer to
            # "hi" made no call, embedded or not).
            mark = "[simulated provider: placeholder text] " if reply.simulated else ""
            said = f"{mark}{reply.answer}" if reply.ok else f"(no answer: {reply.reason})"
            print(terminal_safe(said), flush=True)  # the listings' text is anyone's
            if not reply.ok and tenant == "default" and reply.reason.startswith("no listings"):
                print("(after `make demo`, its listings are under --tenant demo)", flush=True)
            history += [ChatTurn(role="user", text=text)]
            history += [ChatTurn(role="assistant", text=reply.answer)]
    return 1 if unanswered else 0


async def unknown_tenant(broker: NatsBroker, tenant: str) -> str:
    """Why a question to tenant got no answer when the tenant is likely mistyped: it has no
    listings but others have (named); "" when it has some, or when nobody has any yet (then
    the chat's own reason, "upload products first", says what to do)."""
    from agents.checkpoints import CheckpointStore
    from agents.spec import PACKAGE
    from bus import subjects

    js = broker.connection.jetstream()
    store = CheckpointStore(await js.key_value(subjects.BUCKET_CHECKPOINTS))
    having = await store.tenants_with(PACKAGE)
    if not having or tenant in having:
        return ""
    listed = ", ".join(having[:TENANTS_LISTED])
    if len(having) > TENANTS_LISTED:
        listed += f" and {len(having) - TENANTS_LISTED} more"
    return f"unknown tenant {tenant!r}: no listings for it; tenants with listings: {listed}"


async def _questions(first: str) -> AsyncIterator[str]:
    """The one question given, or each line typed until an empty one or end of input."""
    if first:
        yield first
        return
    print("ask about your products; an empty line or Ctrl-D ends", flush=True)
    while line := (await asyncio.to_thread(sys.stdin.readline)).strip():
        yield line
