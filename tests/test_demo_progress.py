"""What an interrupted demo shows: every product counted once in its closing line, and a bar
per product that never looks done unless it is (no server: the bars and the line alone)."""

from __future__ import annotations

import io
import re

from rich.console import Console

from bus.messages import WorkflowDone, WorkflowProgress
from flipsync.demo_progress import ProductBars, interrupted_line

CANCELLED = "; 3 unfinished products cancelled (calls already made stay in the report)"


def _done(wf: str, ok: bool = True) -> WorkflowDone:
    return WorkflowDone(workflow_id=wf, tenant="demo", product_id=wf, ok=ok)


def test_every_product_is_in_the_interrupted_line() -> None:
    """Found by a newcomer: `0 of 6 products done, nothing written; 5 unfinished products
    cancelled`, the sixth (never uploaded) nowhere. Done, failed, unfinished and not started
    now add up to the products."""
    line = interrupted_line(6, [], {}, "")
    assert line == "interrupted: 0 of 6 products done, nothing written; 6 not started"
    started = ["a", "b", "c", "d", "e"]
    done = {"a": _done("a"), "b": _done("b", ok=False)}
    assert interrupted_line(6, started, done, CANCELLED) == (
        "interrupted: 1 of 6 products done, 1 failed, nothing written; 3 unfinished products "
        "cancelled (calls already made stay in the report); 1 not started"
    )
    assert interrupted_line(6, started, done, CANCELLED, "listings/demo/") == (
        "interrupted: 1 of 6 products done, 1 failed, 2 packages written in listings/demo/; 3 "
        "unfinished products cancelled (calls already made stay in the report); 1 not started"
    )
    everything = {wf: _done(wf) for wf in "abcdef"}
    assert interrupted_line(6, "abcdef", everything, "", "listings/demo/") == (
        "interrupted: 6 of 6 products done, 6 packages written in listings/demo/"
    )


def _bars(console: Console) -> dict[str, str]:
    """The last frame's bar of each product, by its label's first word."""
    lines = console.file.getvalue().splitlines()  # type: ignore[attr-defined]
    return {line.split()[0]: line for line in lines if line.strip()}


def test_a_product_not_started_never_looks_done() -> None:
    """Found by a newcomer: products not yet started showed a full bar and `0/?`. A bar is
    full only for a product that ended; after a Ctrl-C each one says what it was."""
    console = Console(file=io.StringIO(), width=80, force_terminal=False)
    with ProductBars(console, ["mug", "lamp", "board", "vase"], agents=34) as bars:
        bars.uploaded(0, "wf-mug")
        bars.uploaded(1, "wf-lamp")
        bars.uploaded(2, "wf-board")
        bars.on_progress(WorkflowProgress(workflow_id="wf-lamp", tenant="demo",
                                          product_id="lamp", done=10, total=34,
                                          last_agent="x"))  # fmt: skip
        bars.finished(_done("wf-mug"))
        bars.interrupted()
    shown = _bars(console)
    assert re.search(r"mug done +━+ 34/34$", shown["mug"]), shown
    assert re.search(r"lamp interrupted .* 10/34$", shown["lamp"]), shown
    assert re.search(r"board interrupted .* 0/34$", shown["board"]), shown
    assert re.search(r"vase not started .* 0/34$", shown["vase"]), shown
    full = shown["mug"].split()[2]
    for pid in ("lamp", "board", "vase"):
        assert "?" not in shown[pid] and full not in shown[pid], shown[pid]
