"""`flipsync demo`: everything embedded in one process, the sample catalog uploaded end to end."""

from __future__ import annotations

import asyncio
import logging
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from agents.bulk_report import cost_line, other_calls_line
from agents.cancel import requests_mark
from agents.catalog_file import load_catalog
from agents.chat import ask_chat
from agents.cli_session import Session
from agents.cli_upload_end import EXIT_INTERRUPTED, stop_unfinished
from agents.output import summary, usd, write_package
from agents.specs import ALL_SPECS, INTERACTIVE_SPECS, WORKFLOW_SPECS
from agents.upload import Uploader
from agents.watch import WorkflowWatcher
from bus.messages import ChatAsk, ChatReply, WorkflowDone
from bus.settings import Settings
from bus.terminal import terminal_safe
from cost_ledger.aggregates import Totals
from cost_ledger.report import build_report, render_report
from flipsync.demo_progress import ProductBars, interrupted_line
from flipsync.stack import Stack, start_stack

TENANT = "demo"
OUT = Path("listings")
"""Where the demo writes each product's full listing package."""
CHAT_QUESTION = "Which of my products makes the most profit, and on which marketplace?"


async def run_demo(settings: Settings, console: Console | None = None) -> int:
    """Upload the sample catalog, print every listing and the cost report; 0 when all passed."""
    # soft_wrap: lines keep their length in a pipe or a file instead of wrapping at 80 columns
    console = console or Console(soft_wrap=True)
    stack = await start_stack(settings)
    try:
        mode = "SIMULATED provider (no real calls, no money spent)"
        if not stack.simulated:
            mode = f"real provider at {settings.openai_base_url or 'api.openai.com'}"
        console.print(f"[bold]FlipSync demo[/bold] - {mode}")
        console.print(f"NATS {stack.nats_url} - Redis {stack.redis_url}")
        console.print(agents_line())
        if settings.data_dir is not None:
            console.print(
                f"data kept in {settings.data_dir} for `flipsync report`, `chat` and `http` "
                "(`flipsync reset` clears it)"
            )
        # Quiet FastStream's per-task INFO lines: the demo's output is the listings.
        logging.getLogger("faststream.access.nats").setLevel(logging.WARNING)
        before = await stack.aggregates.totals(TENANT)  # earlier runs' spend and baseline
        uploads = _Uploads(mark=await requests_mark(stack.broker))
        try:
            done = await _upload_all(stack, console, uploads)
        except asyncio.CancelledError:  # Ctrl-C: as `flipsync upload` does, so that no later
            # command resumes the unfinished products and pays for them
            _handled()
            return await _interrupted(stack, uploads)
        written: list[Path] = []
        try:
            return await _results(stack, console, done, before, written)
        except asyncio.CancelledError:  # Ctrl-C after the uploads: say what is done and where
            _handled()
            return _interrupted_after(done, written)
    finally:
        await stack.stop()


def _handled() -> None:
    """The current task's cancellation (a Ctrl-C) is handled: the stack still stops cleanly."""
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()


async def _results(
    stack: Stack, console: Console, done: list[WorkflowDone], before: Totals, written: list[Path]
) -> int:
    """Write and print each product's package (listed in written as it goes), the seller
    chat, the spend lines and the report; 0 when every product passed."""
    for event in done:
        simulated = stack.simulated or event.simulated  # cached answers of a simulated run
        folder = write_package(OUT, event, simulated=simulated)
        written.append(folder)
        console.print(escape(terminal_safe(summary(event, simulated=simulated))))
        console.print(f"  package    {folder}/")
    reply = await ask_chat(stack.broker, ChatAsk(tenant=TENANT, question=CHAT_QUESTION))
    console.print(f"\n[bold]Seller chat[/bold] > {CHAT_QUESTION}")
    mark = "[simulated provider: placeholder text] " if reply.simulated else ""
    said = f"{mark}{reply.answer}" if reply.ok else f"(no answer: {reply.reason})"
    console.print(escape(terminal_safe(said)))
    if reply.product_ids:
        console.print(f"  (context: {', '.join(reply.product_ids)}; {reply.lever})")
    # The spend lines come after the chat, and the report waits for the chat's call to be
    # booked too: printed before it, they left out what the chat cost.
    console.print()
    simulated = stack.simulated or any(event.simulated for event in done)
    console.print(escape(cost_line(done, simulated=simulated)))
    console.print(escape(chat_cost_line(reply, simulated=stack.simulated)))
    products_and_chat = sum(e.cost_micro_usd for e in done) + reply.cost_micro_usd
    await _settle_ledger(
        stack,
        before.spend_micro_usd + products_and_chat,
        before.baseline_micro_usd + sum(e.baseline_micro_usd for e in done)
        + reply.baseline_micro_usd,
    )  # fmt: skip
    totals = await stack.aggregates.totals(TENANT)
    other = totals.spend_micro_usd - before.spend_micro_usd - products_and_chat
    if other > 0:  # so that the lines above add up to the report's spend below
        console.print(escape(other_calls_line(other, simulated=stack.simulated)))
    if before.calls:  # the ledger is the data directory's, earlier runs included
        console.print(
            f"the report below covers every demo run on this data ({before.calls} calls "
            "before this one; `flipsync reset` starts afresh)"
        )
    console.print(render_report(await build_report(stack.aggregates, tenant=TENANT)))
    failed = [e for e in done if not e.ok]
    for event in failed:
        console.print(f"[red]{event.product_id} failed: {event.reason}[/red]")
    return 1 if failed else 0


def agents_line() -> str:
    """How many agents there are and where each runs, counted from the registry: the README
    said 35 and the progress bars 34/34, with nothing to say why."""
    asked = ", ".join(spec.name for spec in INTERACTIVE_SPECS)
    return (
        f"{len(ALL_SPECS)} agents: {len(WORKFLOW_SPECS)} run on each product (the bars count "
        f"them), {asked} on the seller's question at the end"
    )


def chat_cost_line(reply: ChatReply, *, simulated: bool) -> str:
    """One line: what the seller-chat answer cost against its naive baseline."""
    note = " (simulated: nothing was spent)" if simulated else ""
    return (
        f"seller chat cost ${usd(reply.cost_micro_usd)} vs naive "
        f"${usd(reply.baseline_micro_usd)}{note}"
    )


@dataclass
class _Uploads:
    """The demo's workflows as they start and finish (what an interrupt leaves unfinished)."""

    mark: int
    """The requests stream's last sequence before the first upload."""
    products: int = 0
    """How many products the demo uploads (some may not have started when interrupted)."""
    started: list[str] = field(default_factory=list)
    done: dict[str, WorkflowDone] = field(default_factory=dict)


async def _interrupted(stack: Stack, uploads: _Uploads) -> int:
    """Cancel the unfinished products' workflows and say so; the interrupted status."""
    session = Session(broker=stack.broker, simulated=stack.simulated,
                      aggregates=stack.aggregates, stopping=stack.stopping)  # fmt: skip
    unfinished = [wf for wf in uploads.started if wf not in uploads.done]
    note = await stop_unfinished(session, stack.settings, TENANT, unfinished, uploads.mark,
                                 why="interrupted")  # fmt: skip
    # The products that ended are kept, as `flipsync upload` keeps them (a newcomer's Ctrl-C
    # after 5 of 6 said "nothing written": the packages waited for the sixth).
    ended = [uploads.done[wf] for wf in uploads.started if wf in uploads.done]
    written = f"{OUT / TENANT}/" if ended else ""
    try:
        for event in ended:
            write_package(OUT, event, simulated=stack.simulated or event.simulated)
    except (OSError, ValueError) as exc:  # --out is a file, a full disk: said, not raised
        print(f"flipsync demo: packages not written: {exc}", file=sys.stderr)
        written = ""
    print(interrupted_line(uploads.products, uploads.started, uploads.done, note, written),
          file=sys.stderr)  # fmt: skip
    return EXIT_INTERRUPTED


def _interrupted_after(done: list[WorkflowDone], written: list[Path]) -> int:
    """Say what an interrupt after the uploads leaves (every product is done; the chat or
    the report is not printed); the interrupted status."""
    packages = f"{len(written)} package{'' if len(written) == 1 else 's'} written"
    where = f" in {OUT}/" if written else ""
    failed = sum(not e.ok for e in done)
    finished = f"{len(done)} of {len(done)} products done" + (
        f" ({failed} failed)" if failed else ""
    )
    print(f"interrupted after the uploads: {finished}, "
          f"{packages}{where}; the rest of the demo was not shown "
          "(`flipsync report` prints the cost report)", file=sys.stderr)  # fmt: skip
    return EXIT_INTERRUPTED


async def _upload_all(stack: Stack, console: Console, uploads: _Uploads) -> list[WorkflowDone]:
    """Upload the sample catalog and wait for every product, a bar each."""
    products = load_catalog()
    uploads.products = len(products)
    ids = [product.product_id for product in products]
    with ProductBars(console, ids, len(WORKFLOW_SPECS)) as bars:
        try:
            async with WorkflowWatcher(stack.broker, TENANT, bars.on_progress) as watcher:
                uploads.done = watcher.done
                started = []
                tracer = stack.tracer_provider.get_tracer("flipsync.upload")
                uploader = Uploader(stack.broker, stack.settings)
                for index, product in enumerate(products):
                    workflow_id = uuid.uuid4().hex  # known before the upload is published, so
                    uploads.started.append(workflow_id)  # an interrupt meanwhile cancels it
                    upload = await uploader.upload(
                        product, tenant=TENANT, tracer=tracer, workflow_id=workflow_id
                    )
                    bars.uploaded(index, upload.workflow_id)
                    started.append(upload)
                done = await watcher.wait((u.workflow_id for u in started), timeout_s=180)
        except asyncio.CancelledError:
            for event in uploads.done.values():
                bars.finished(event)
            bars.interrupted()  # the last frame says which products never started
            raise
        for upload in started:
            bars.finished(done[upload.workflow_id])
    return [done[u.workflow_id] for u in started]


async def _settle_ledger(
    stack: Stack, expected_micro_usd: int, baseline_micro_usd: int, timeout_s: float = 15.0
) -> None:
    """Wait until the ledger's aggregates hold every cent the workflows reported, and their
    baseline (the workflow books call-free work as each ends, after the paid calls)."""
    async with asyncio.timeout(timeout_s):
        # Redis has no event to wait on here; the consumer's progress is polled.
        while True:
            totals = await stack.aggregates.totals(TENANT)
            spent = totals.spend_micro_usd >= expected_micro_usd
            if spent and totals.baseline_micro_usd >= baseline_micro_usd:
                return
            await asyncio.sleep(0.05)
