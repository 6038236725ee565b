"""Where a process's CPU goes: py-spy samples it while a benchmark phase runs, and the
collapsed stacks are summed per function (own time, and time including callees).

Used by `python -m bench.overhead --profile`; see docs/profiling.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

TOP = 60
"""Functions listed per table of a summary."""


def py_spy() -> str | None:
    """The py-spy executable (a dev dependency), or None when it is not installed."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


@contextlib.asynccontextmanager
async def sampled(pid: int, raw_path: Path, rate_hz: int = 200) -> AsyncIterator[None]:
    """Sample pid with py-spy while the block runs; its collapsed stacks go to raw_path."""
    exe = py_spy()
    if exe is None:
        raise RuntimeError("py-spy is not installed: .venv/bin/pip install -e '.[dev]'")
    argv = [exe, "record", "--pid", str(pid), "--rate", str(rate_hz), "--format", "raw"]
    argv += ["--output", str(raw_path), "--nonblocking"]
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)  # py-spy writes what it sampled, then exits
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def summarize(raw_path: Path, title: str, requests: int) -> str:
    """A text summary of collapsed stacks: the hottest functions by own and by total samples,
    with the share of samples and the estimated CPU microseconds per request at rate_hz."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    samples = 0
    for line in raw_path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        raw_frames = stack.split(";")
        frames = [_short(frame) for frame in raw_frames]
        samples += count
        own[frames[-1]] += count
        packages[package_of(raw_frames[-1])] += count
        for frame in set(frames):
            total[frame] += count
    lines = [f"{title}: {samples} samples over {requests} requests", ""]
    lines += ["own time by package (where the CPU is spent, callers aside)", "share   package"]
    for package, count in packages.most_common():
        lines.append(f"{100 * count / max(samples, 1):5.1f}%  {package}")
    lines.append("")
    for name, counter in (("own time", own), ("total time (with callees)", total)):
        lines += [f"hottest functions by {name}", "share   function"]
        for frame, count in counter.most_common(TOP):
            lines.append(f"{100 * count / max(samples, 1):5.1f}%  {frame}")
        lines.append("")
    return "\n".join(lines)


def package_of(frame: str) -> str:
    """The top-level package of a frame's file (py-spy names files from their sys.path
    entry: 'faststream/_internal/...', 'asyncio/tasks.py'), FlipSync's own marked so."""
    _name, _, where = frame.partition(" (")
    parts = Path(where.rstrip(")").rsplit(":", 1)[0]).parts
    if "site-packages" in parts:  # an absolute path: what follows is the package
        parts = parts[parts.index("site-packages") + 1 :]
    if not parts:
        return "?"
    top = parts[0].removesuffix(".py")
    own = {"router", "bus", "cost_ledger", "agents", "flipsync", "api", "optimizer", "simulator"}
    return f"{top} (FlipSync)" if top in own else top


def _short(frame: str) -> str:
    """'func (path/to/module.py:12)' as 'func (module.py)': lines vary, modules do not."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = Path(path).parts
    shown = "/".join(parts[-2:]) if parts else path
    return f"{name} ({shown})"
