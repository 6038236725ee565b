"""Ctrl-C during `flipsync demo` cancels the unfinished products, as `flipsync upload` does.

Found by a newcomer: an interrupted demo left its workflows durable in JetStream, and the
next command on the same data (`flipsync http`, `chat`) resumed them and paid for calls whose
listings nobody would write, without a word.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nats

from tests.test_cli_first_hour import (
    HANG_GUARD_S,
    descendants,
    flipsync,
    ledger_calls,
    reaped,
    running,
)


async def _first_progress(url: str, within_s: float) -> None:
    """Wait for the demo's first workflow progress event (an agent of a product finished)."""
    nc = await nats.connect(url)
    try:
        sub = await nc.subscribe("workflow.progress.demo.*")
        await sub.next_msg(timeout=within_s)
    finally:
        await nc.close()


def test_sigint_mid_demo_cancels_the_unfinished_products(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("NATS_", "REDIS_"))}
    # Calls slow enough that the uploads are still under way when the signal lands: at 30 ms
    # the whole demo sometimes finished between its first progress event and the SIGINT
    # (4 of 9 tries, three at a time), and the test then saw a finished demo's exit.
    env = {**clean, "PYTHONUNBUFFERED": "1", "FLIPSYNC_AGENT_WORKERS": "1",
           "FLIPSYNC_SIM_LATENCY_MS": "300"}  # fmt: skip
    # In a session of its own, as a terminal's command would be: a signal meant for its group
    # never reaches the test runner (three full runs ended, their runner gone, in this test).
    proc = subprocess.Popen([sys.executable, "-m", "flipsync", "demo"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    with reaped(proc):
        assert proc.stdout is not None
        url = ""
        deadline = time.monotonic() + 120  # a hang guard, not a timing check
        while not url and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, proc.communicate()
            if found := re.match(r"NATS (nats://\S+)", line):
                url = found.group(1)
        asyncio.run(_first_progress(url, within_s=120))
        children = descendants(proc.pid)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=HANG_GUARD_S)
    assert proc.returncode == 130, stderr
    lines = stderr.strip().splitlines()
    assert lines[0].startswith("stopping: cancelling ") and "unfinished product" in lines[0]
    said = re.fullmatch(
        r"interrupted: (\d) of 6 products done(?:, (\d) failed)?, "
        r"(?:nothing written|(\d) packages? written in listings/demo/); (\d) "
        r"unfinished products? cancelled \(calls already made stay in the report\)"
        r"(?:; (\d) not started)?",
        lines[-1],
    )
    assert said, stderr
    ok, failed, written, unfinished, not_started = (int(n or 0) for n in said.groups())
    # Every product is counted once (a newcomer's sixth, never uploaded, was nowhere), and
    # those that ended are kept as packages, as `flipsync upload` keeps them.
    assert ok + failed + unfinished + not_started == 6, stderr
    assert written == ok + failed, stderr
    kept = list((tmp_path / "listings" / "demo").glob("*/package.json"))
    assert len(kept) == written, (kept, stderr)
    assert [pid for pid in children if running(pid)] == []
    # The cancelled workflows do not resume under the next commands on the same data. Calls
    # that were at the provider when Ctrl-C came are paid and booked as they end, and the
    # first command's ledger applies them; after it, no command adds a call for the demo.
    assert ledger_calls(tmp_path, "demo") > 0
    after_one, after_two = (calls_after_a_command(tmp_path) for _ in range(2))
    assert after_one == after_two


def calls_after_a_command(folder: Path) -> int:
    """The demo's calls in the ledger after another command ran on the same data."""
    chat = flipsync("chat", "--tenant", "other", "hi", env={}, cwd=folder)
    if chat.returncode == 2:  # some of the demo's products finished: "other" reads as a typo
        assert "unknown tenant 'other'" in chat.stderr and "demo" in chat.stderr, chat.stderr
    else:  # none did: nobody has listings yet
        assert chat.returncode == 1 and "no listings for other" in chat.stdout, chat.stderr
    return ledger_calls(folder, "demo")


def test_sigint_after_the_uploads_says_what_is_done(tmp_path: Path) -> None:
    """Found by a newcomer: a Ctrl-C during the chat or the report exited 130 without a word
    on what was done. It now says every product is done and where the packages are."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("NATS_", "REDIS_"))}
    # The seller chat's call takes 300 ms, so the signal sent on the first package line lands
    # before the demo ends (the report comes after the chat).
    env = {**clean, "PYTHONUNBUFFERED": "1", "FLIPSYNC_SIM_LATENCY_MS": "300"}
    proc = subprocess.Popen([sys.executable, "-m", "flipsync", "demo"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    with reaped(proc):
        assert proc.stdout is not None
        deadline = time.monotonic() + 240  # a hang guard, not a timing check
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, proc.communicate()
            if line.startswith("  package "):
                break
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=HANG_GUARD_S)
    assert proc.returncode == 130, stderr
    assert re.fullmatch(
        r"interrupted after the uploads: 6 of 6 products done, \d packages? written in "
        r"listings/; the rest of the demo was not shown \(`flipsync report` prints the cost "
        r"report\)",
        stderr.strip().splitlines()[-1],
    ), stderr
    assert (tmp_path / "listings").is_dir()
