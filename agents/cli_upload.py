"""`flipsync upload`: upload products, write each listing package as it finishes, then
summarise them and print the cost report."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from agents.cli_session import Start, connected
from agents.cli_upload_end import (
    EXIT_INTERRUPTED,
    EXIT_TIMEOUT,
    EXIT_UNREACHABLE,
    LOST_HINT,
    lost_line,
    nats_where,
    stop_unfinished,
    upload_failure,
)
from bus.messages import Priority

if TYPE_CHECKING:
    from bus.settings import Settings

log = logging.getLogger(__name__)


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
    from agents.source_files import SourceError
    from agents.sources import load_source
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
            f"{written}{cancelled}{f'; {LOST_HINT}' if lost else ''}",
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
