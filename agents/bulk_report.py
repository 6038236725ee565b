"""What a person sees of an upload: a progress bar while it runs, a cost report at the end."""

from __future__ import annotations

import asyncio
from collections import Counter
from decimal import Decimal

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from agents.output import usd, why_free
from bus.messages import WorkflowDone, WorkflowProgress
from cost_ledger.aggregates import AggregateStore
from cost_ledger.report import build_report, counted, render_report


class UploadProgress:
    """One bar of products done, with the agent steps done across all of them."""

    def __init__(self, console: Console, total: int) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("products, {task.fields[steps]} agent steps"),
            TimeElapsedColumn(),
            console=console,
            transient=not console.is_terminal,  # a pipe gets the results, not a bar's frames
        )
        self._task: TaskID = self._progress.add_task("uploading", total=total, steps="0/?")
        self._steps: dict[str, tuple[int, int]] = {}
        self.finished = 0

    def __enter__(self) -> UploadProgress:
        self._progress.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._progress.stop()

    def on_progress(self, event: WorkflowProgress) -> None:
        """A workflow's agent steps moved on."""
        self._steps[event.workflow_id] = (event.done, event.total)
        done = sum(d for d, _ in self._steps.values())
        total = sum(t for _, t in self._steps.values())
        self._progress.update(self._task, steps=f"{done}/{total}")

    def on_done(self, event: WorkflowDone) -> None:
        """A product's workflow ended (well or not)."""
        self.finished += 1
        self._progress.update(self._task, advance=1)


def cost_line(done: list[WorkflowDone], *, simulated: bool) -> str:
    """One line: what the products cost, and what the finished ones saved against the naive
    baseline; a failed product's spend is counted, and no saving is claimed for it."""
    spent = sum(e.cost_micro_usd for e in done)
    finished = [e for e in done if e.ok]
    cost = sum(e.cost_micro_usd for e in finished)
    baseline = sum(e.baseline_micro_usd for e in finished)
    saved = Decimal(0)
    if baseline > 0:
        saved = (Decimal(baseline - cost) / baseline * 100).quantize(Decimal("0.1"))
    if len(finished) == len(done):
        note = " (simulated: nothing was spent)" if simulated else ""
        served: Counter[str] = Counter()
        for event in finished:
            served.update(event.served_by)
        return (
            f"cost ${usd(cost)} for {counted(len(done), 'product')} vs naive ${usd(baseline)}: "
            f"saved {saved}%{note}{why_free(cost, dict(served))}"
        )
    head = f"{len(finished)} of {counted(len(done), 'product')} done; spent ${usd(spent)}"
    head += " (simulated)" if simulated else ""
    unsaved = "no savings claimed here for failed products (the report counts each call's)"
    if not finished:
        return f"{head}, {unsaved}"
    return (
        f"{head}: ${usd(cost)} on the done ones vs naive ${usd(baseline)}, saved {saved}%, "
        f"and ${usd(spent - cost)} on the failed ones, {unsaved}"
    )


def other_calls_line(micro_usd: int, *, simulated: bool) -> str:
    """One line: what the levers' own calls cost (routing's shadow and judge calls, the
    cache's shadow checks), which no product's cost above holds and the report's spend and
    cost per product do (a newcomer found the two costs of one product and no reason). It
    is the tenant's spend less its products', so another of its calls meanwhile (a chat, a
    second upload) is in it too, and the line says so."""
    note = " (simulated)" if simulated else ""
    return (
        f"levers' own calls ${usd(micro_usd)}{note}: routing's shadow and judge calls and the "
        "cache's checks (with any other call of this tenant meanwhile), in no product's cost "
        "above; the report's spend and its cost per product below hold them"
    )


async def ledger_report(
    aggregates: AggregateStore,
    tenant: str,
    at_least_micro_usd: int,
    baseline_at_least_micro_usd: int = 0,
    timeout_s: float = 15.0,
) -> str:
    """The tenant's cost report, once the ledger's spend and baseline reach at least these
    (what it held before plus what the workflows reported: the workflow books call-free work
    as each ends, after the paid calls), or after timeout_s with what it holds."""
    try:
        async with asyncio.timeout(timeout_s):
            # Redis has no event to wait on here; the ledger consumer's progress is polled.
            while True:
                totals = await aggregates.totals(tenant)
                spent = totals.spend_micro_usd >= at_least_micro_usd
                if spent and totals.baseline_micro_usd >= baseline_at_least_micro_usd:
                    break
                await asyncio.sleep(0.05)
    except TimeoutError:
        pass
    return render_report(await build_report(aggregates, tenant=tenant))
