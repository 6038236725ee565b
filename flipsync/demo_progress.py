"""The demo's progress: one bar per product, counting its agents, and what an interrupt left.

Every bar is drawn from the start with its agent count, so a product whose workflow has not
moved is an empty bar (a newcomer saw products not yet started as full bars with `0/?`:
rich draws a bar of unknown total as a full one outside a terminal), and after a Ctrl-C each
bar says whether its product was done, failed, interrupted or never started.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

from bus.messages import WorkflowDone, WorkflowProgress
from cost_ledger.report import counted


class ProductBars:
    """One bar per product: `waiting` until uploaded, empty until its agents settle, then
    filled and marked done or FAILED; `interrupted()` marks the rest."""

    def __init__(self, console: Console, product_ids: Sequence[str], agents: int) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=console,
        )
        self._tasks: list[tuple[str, TaskID]] = [
            (pid, self._progress.add_task(f"{pid} waiting", total=agents)) for pid in product_ids
        ]
        self._workflows: dict[str, int] = {}
        """Workflow id -> the index of its product's bar."""
        self._ended: set[int] = set()

    def __enter__(self) -> ProductBars:
        self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def uploaded(self, index: int, workflow_id: str) -> None:
        """The product at index was uploaded as workflow_id (its agents start now)."""
        pid, task = self._tasks[index]
        self._workflows[workflow_id] = index
        self._progress.update(task, description=pid)

    def on_progress(self, event: WorkflowProgress) -> None:
        """A product's agents moved on."""
        index = self._workflows.get(event.workflow_id)
        if index is not None and index not in self._ended:
            _, task = self._tasks[index]
            self._progress.update(task, completed=event.done, total=event.total)

    def finished(self, event: WorkflowDone) -> None:
        """A product's workflow ended: its bar is filled, marked done or FAILED."""
        index = self._workflows.get(event.workflow_id)
        if index is None:
            return
        pid, task = self._tasks[index]
        total = self._progress.tasks[task].total or 1
        state = "done" if event.ok else "FAILED"
        self._progress.update(task, completed=total, total=total, description=f"{pid} {state}")
        self._ended.add(index)

    def interrupted(self) -> None:
        """A Ctrl-C: each product not ended says whether it was under way or never started."""
        uploaded = set(self._workflows.values())
        for index, (pid, task) in enumerate(self._tasks):
            if index not in self._ended:
                state = "interrupted" if index in uploaded else "not started"
                self._progress.update(task, description=f"{pid} {state}")


def interrupted_line(
    products: int,
    started: Iterable[str],
    done: Mapping[str, WorkflowDone],
    note: str,
    written: str = "",
) -> str:
    """The closing line of a demo interrupted during its uploads: every product counted once,
    as done, failed, unfinished (note: cancelled or not, from stop_unfinished) or not started;
    written names the folder the ended products' packages went to ("" when none did).

    A newcomer saw `0 of 6 products done, nothing written; 5 unfinished products cancelled`:
    the sixth, never uploaded, was nowhere.
    """
    started = list(started)
    ended = [done[wf] for wf in started if wf in done]
    failed = sum(not e.ok for e in ended)
    line = f"interrupted: {len(ended) - failed} of {counted(products, 'product')} done"
    if failed:
        line += f", {failed} failed"
    packages = f"{counted(len(ended), 'package')} written in {written}" if written else ""
    line += f", {packages or 'nothing written'}{note}"
    if not_started := products - len(started):
        line += f"; {not_started} not started"
    return line
