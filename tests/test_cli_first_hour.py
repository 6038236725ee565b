"""A newcomer's first commands: a wrong URL is an error that names it (not a silent hang),
and Ctrl-C mid-upload ends with one line, keeps the finished packages and leaves nothing
running. Each runs the real `flipsync` command as a child process."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agents.bulk_report import cost_line
from agents.cli import run_command
from agents.cli_session import Running
from bus.embedded.process import free_port
from bus.messages import WorkflowDone
from bus.settings import Settings
from flipsync.cli import full_parser
from flipsync.serving import serve_api

SAMPLES = Path(__file__).parent.parent / "agents" / "samples"
HANG_GUARD_S = 60
"""A command still running after this long is a hang: the test fails (not a timing check)."""


def flipsync(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run `flipsync ARGS`; a hang fails the test through the guard."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("NATS_", "REDIS_"))}
    return subprocess.run(
        [sys.executable, "-m", "flipsync", *args],
        env={**clean, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
        check=False,
    )


def catalog_csv(folder: Path, count: int) -> Path:
    """A CSV of count products, each with a photo of the samples."""
    photos = sorted((SAMPLES / "photos").glob("*.png"))
    lines = ["product_id,title,notes,cost_price,photos,weight"]
    for i in range(count):
        photo = photos[i % len(photos)]
        shutil.copy(photo, folder / f"p{i}.png")
        lines.append(
            f'item-{i:02},{photo.stem} {i},"Sample {i}, good condition",$4.20,p{i}.png,400 g'
        )
    path = folder / "products.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    "command", [["upload", "PRODUCTS"], ["budget", "remove", "b"]]
)  # budget show reads Redis only: test_an_unreachable_redis_is_named_with_what_to_check
def test_an_unreachable_nats_is_named_with_what_to_check(
    tmp_path: Path, command: list[str]
) -> None:
    products = catalog_csv(tmp_path, 1)
    dead = f"nats://127.0.0.1:{free_port()}"
    args = [str(products) if a == "PRODUCTS" else a for a in command]
    env = {"NATS_URL": dead, "REDIS_URL": f"redis://127.0.0.1:{free_port()}",
           "FLIPSYNC_CONNECT_TIMEOUT_S": "2"}  # fmt: skip
    done = flipsync(*args, env=env, cwd=tmp_path)
    assert done.returncode == 3, done.stderr
    assert f"cannot reach NATS at {dead}" in done.stderr
    assert "is nats-server running there" in done.stderr and "NATS_URL" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


DEAD_URL_BOUND_S = 10.0
"""The issue's bound: a wrong NATS_URL is an error within 10 s (a refused connection gives
up after 1 s, bus.reachable.REFUSED_GRACE_S; the rest is the interpreter starting on a shared
machine)."""


@pytest.mark.parametrize(
    "command", [["upload", "PRODUCTS"], ["budget", "set", "b", "--scope", "global",
                "--period", "day", "--limit", "2.00"]],
)  # fmt: skip
def test_a_dead_nats_url_is_an_error_within_ten_seconds_by_default(
    tmp_path: Path, command: list[str]
) -> None:
    products = catalog_csv(tmp_path, 1)
    dead = f"nats://127.0.0.1:{free_port()}"
    args = [str(products) if a == "PRODUCTS" else a for a in command]
    env = {"NATS_URL": dead, "REDIS_URL": f"redis://127.0.0.1:{free_port()}"}
    started = time.monotonic()
    done = flipsync(*args, env=env, cwd=tmp_path)
    took = time.monotonic() - started
    assert done.returncode == 3, done.stderr
    assert done.stderr.strip() == (
        f"flipsync: cannot reach NATS at {dead} within 1 s "
        "(connection refused: nothing listens there): "
        "is nats-server running there (with JetStream on, -js), and is NATS_URL right?"
    )
    assert took < DEAD_URL_BOUND_S, f"{took:.1f} s"


@pytest.mark.parametrize(
    "command",
    [["report"], ["cost", "spend"], ["cost", "vs-reference"], ["providers"], ["budget", "show"]],
)
def test_an_unreachable_redis_is_named_with_what_to_check(
    tmp_path: Path, command: list[str]
) -> None:
    dead = f"redis://127.0.0.1:{free_port()}"
    env = {"REDIS_URL": dead, "FLIPSYNC_CONNECT_TIMEOUT_S": "2"}
    done = flipsync(*command, env=env, cwd=tmp_path)
    assert done.returncode == 3, done.stderr
    assert f"cannot reach Redis at {dead} (connection refused: nothing listens there)" in (
        done.stderr
    )  # refused at once: no "within 2 s" (found by a newcomer)
    assert "REDIS_URL" in done.stderr and "Traceback" not in done.stderr


def test_a_bad_file_is_status_2_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text("name,notes\nmug,teal\n")
    done = flipsync("upload", str(tmp_path / "p.csv"), env={}, cwd=tmp_path)
    assert done.returncode == 2 and "missing column(s): product_id" in done.stderr


async def never_started(settings: Settings) -> Running:
    """A stack that must not start: the input should have been refused before."""
    raise AssertionError("the stack was started for input that should have been refused")


async def upload_in_process(*argv: str) -> int:
    """`flipsync upload ARGV` in this process, embedded (no NATS_URL), its stack never_started."""
    args = full_parser().parse_args(["upload", *argv])
    return await run_command(args, Settings(nats_url=None, redis_url=None), never_started)


async def test_a_file_that_is_not_an_image_is_named_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "photo.jpg").write_text("hello this is not a png\n")
    (tmp_path / "notes.txt").write_text("a mug\n")
    assert await upload_in_process(str(tmp_path)) == 2
    assert capsys.readouterr().err == (
        f"flipsync upload: {tmp_path / 'photo.jpg'}: not a readable image\n"
    )


async def test_a_catalog_without_products_is_one_line_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "catalog.json").write_text('{"items": []}')
    assert await upload_in_process(str(tmp_path / "catalog.json")) == 2
    assert capsys.readouterr().err == (
        f"flipsync upload: {tmp_path / 'catalog.json'}: "
        """expected {"products": [...]} (a catalog), found keys 'items'\n"""
    )


async def test_huge_notes_are_refused_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(SAMPLES / "photos" / "mug-001-a.png", tmp_path)
    (tmp_path / "notes.txt").write_text("x" * 2_250_000)
    assert await upload_in_process(str(tmp_path)) == 2
    assert capsys.readouterr().err == (
        f"flipsync upload: {tmp_path / 'notes.txt'}: 2250000 bytes, over the 65536-byte limit\n"
    )


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        (["--tenant", "bad tenant"], "--tenant 'bad tenant': a tenant is 1 to 64 letters, "),
        (["--tenant", "a.b"], "--tenant 'a.b': a tenant is 1 to 64 letters, digits, _ and -"),
        (["--tenant", "../x"], "--tenant '../x': a tenant is 1 to 64 letters, digits, _ and -"),
        (["--timeout", "-5"], "--timeout -5: must be more than 0 seconds"),
        (["--timeout", "0"], "--timeout 0: must be more than 0 seconds"),
        (["--timeout", "nan"], "--timeout nan: must be more than 0 seconds"),
    ],
)
async def test_a_bad_tenant_or_timeout_is_one_line_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: list[str], expected: str
) -> None:
    products = catalog_csv(tmp_path, 1)
    assert await upload_in_process(str(products), *option) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"flipsync upload: {expected}") and err.count("\n") == 1, err


async def test_an_out_folder_that_cannot_be_written_is_one_line_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It ran the whole upload, paid, then ended in a NotADirectoryError traceback."""
    products = catalog_csv(tmp_path, 1)
    (tmp_path / "taken.csv").write_text("x")
    assert await upload_in_process(str(products), "--out", str(tmp_path / "taken.csv")) == 2
    assert capsys.readouterr().err == (
        f"flipsync upload: --out {tmp_path / 'taken.csv' / 'default'}: "
        f"{tmp_path / 'taken.csv'} is a file, not a folder\n"
    )


async def test_http_on_a_taken_port_is_one_line_before_anything_starts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """It started every service (about 20 s), then ended in an OSError traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert await serve_api(Settings(nats_url=None, redis_url=None), "127.0.0.1", port) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"flipsync http: cannot listen on 127.0.0.1:{port}: ") and (
        "choose another with --port" in err and err.count("\n") == 1
    ), err


async def test_chat_refuses_a_bad_tenant_before_anything_starts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = full_parser().parse_args(["chat", "--tenant", "a.b", "what sold?"])
    assert await run_command(args, Settings(nats_url=None, redis_url=None), never_started) == 2
    assert capsys.readouterr().err == (
        "flipsync chat: --tenant 'a.b': a tenant is 1 to 64 letters, digits, _ and -\n"
    )


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("catalog.json", '{"products": []}', "no products"),
        ("products.csv", "product_id,title,notes\n", "no products (a header and no rows)"),
    ],
)
async def test_a_file_with_no_products_is_one_line_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, text: str, expected: str
) -> None:
    """It started the whole stack, printed "uploading 0 products" and exited 0."""
    (tmp_path / name).write_text(text)
    assert await upload_in_process(str(tmp_path / name)) == 2
    assert capsys.readouterr().err == f"flipsync upload: {tmp_path / name}: {expected}\n"


def test_a_photo_damaged_past_its_header_ends_the_upload_with_one_line(tmp_path: Path) -> None:
    """The header check passes it; decoding it, the upload fails: one line naming the file
    (no traceback), status 2, and the embedded stack stopped."""
    data = (SAMPLES / "photos" / "mug-001-a.png").read_bytes()
    (tmp_path / "mug").mkdir()
    (tmp_path / "mug" / "cut.png").write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    done = flipsync("upload", str(tmp_path / "mug"), "--out", str(out), env={}, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"flipsync upload: {tmp_path / 'mug' / 'cut.png'}: not a readable")
    assert line.endswith(": 0 of 1 product done, nothing written")
    assert not out.exists()  # the line names no folder, and none was made


def test_sigint_mid_upload_keeps_finished_packages_and_leaves_nothing_running(
    tmp_path: Path,
) -> None:
    products = catalog_csv(tmp_path, 12)
    out = tmp_path / "out"
    proc = start_upload(tmp_path, products, out)
    with reaped(proc):
        children: set[int] = set()
        deadline = time.monotonic() + 240  # a hang guard, not a timing check
        while not list(out.glob("default/*/package.json")):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no package was written"
            children |= descendants(proc.pid)
            time.sleep(0.05)
        children |= descendants(proc.pid)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=HANG_GUARD_S)
    assert proc.returncode == 130, stderr
    written = sorted(p.parent.name for p in out.glob("default/*/package.json"))
    assert 1 <= len(written) < 12
    left = 12 - len(written)
    unfinished = f"{left} unfinished product{'s' if left > 1 else ''}"
    assert stderr.strip().splitlines() == [
        f"stopping: cancelling {unfinished} (Ctrl-C again to quit at once)",
        f"interrupted: {len(written)} of 12 products done, written to {out / 'default'}/; "
        f"{unfinished} cancelled (calls already made stay in the report)",
    ], stderr
    assert children, "the embedded servers ran as child processes"
    alive = [pid for pid in children if running(pid)]
    assert alive == [], f"left running: {alive}"
    # The cancelled workflows do not resume under the next command on the same data.
    env = {"FLIPSYNC_SIM_LATENCY_MS": "30"}
    calls = ledger_calls(tmp_path, "default")
    assert calls > 0
    chat = flipsync("chat", "--tenant", "demo", "hi", env=env, cwd=tmp_path)
    assert chat.returncode == 2, chat.stderr  # default has listings, demo none: a likely typo
    assert "unknown tenant 'demo': no listings for it; tenants with listings: default" in (
        chat.stderr
    )
    assert ledger_calls(tmp_path, "default") == calls
    assert sorted(p.parent.name for p in out.glob("default/*/package.json")) == written


def start_upload(folder: Path, products: Path, out: Path, *more: str) -> subprocess.Popen[str]:
    """`flipsync upload` of products in folder, products finishing one after another."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("NATS_", "REDIS_"))}
    env = {
        **clean,
        "FLIPSYNC_AGENT_WORKERS": "1",  # products finish one after another, not all at once
        "FLIPSYNC_SIM_LATENCY_MS": "30",
    }
    argv = [sys.executable, "-m", "flipsync", "upload", str(products), "--out", str(out),
            "--priority", "standard", *more]  # fmt: skip
    return subprocess.Popen(
        argv, env=env, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def ledger_calls(folder: Path, tenant: str) -> int:
    """The calls the ledger in folder's local data holds for tenant (`flipsync report`)."""
    report = flipsync("report", "--tenant", tenant, "--json", env={}, cwd=folder)
    assert report.returncode == 0, report.stderr
    return int(json.loads(report.stdout)["totals"]["calls"])


def test_a_second_sigint_quits_at_once_and_leaves_nothing_running(tmp_path: Path) -> None:
    products = catalog_csv(tmp_path, 6)
    out = tmp_path / "out"
    proc = start_upload(tmp_path, products, out)
    with reaped(proc):
        children: set[int] = set()
        deadline = time.monotonic() + 240  # a hang guard, not a timing check
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("uploading"), proc.communicate()
        while time.monotonic() < deadline and not list(out.glob("default/*/package.json")):
            children |= descendants(proc.pid)
            if len(children) >= 2:  # both servers up, the upload under way
                break
            time.sleep(0.05)
        children |= descendants(proc.pid)
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=HANG_GUARD_S)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "CancelledError" not in stderr, stderr
    alive = [pid for pid in children if running(pid)]
    assert alive == [], f"left running: {alive}"


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name, or None if there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


@contextlib.contextmanager
def reaped(proc: subprocess.Popen[str]) -> Iterator[subprocess.Popen[str]]:
    """proc, killed and waited for on the way out if it still runs (a failed assertion, a
    hang): a test never leaves a flipsync process behind."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def descendants(pid: int) -> set[int]:
    """Every process below pid (children, their children...), from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            parents[int(entry.name)] = int(stat[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def running(pid: int) -> bool:
    """Whether pid is a live process (not gone, not a zombie)."""
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"


def test_a_timeout_ends_with_one_line_and_keeps_what_finished(tmp_path: Path) -> None:
    products = catalog_csv(tmp_path, 12)
    out = tmp_path / "out"
    env = {"FLIPSYNC_AGENT_WORKERS": "1", "FLIPSYNC_SIM_LATENCY_MS": "30"}
    done = flipsync(
        "upload", str(products), "--out", str(out), "--priority", "standard", "--timeout", "2",
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 4, done.stderr
    written = list(out.glob("default/*/package.json"))
    left = 12 - len(written)
    unfinished = f"{left} unfinished product{'s' if left > 1 else ''}"
    where = f"written to {out / 'default'}/" if written else "nothing written"
    assert done.stderr.strip().splitlines() == [
        f"stopping: timed out after 2 s; cancelling {unfinished}",
        f"timed out after 2 s: {len(written)} of 12 products done, {where}; "
        f"{unfinished} cancelled (calls already made stay in the report)",
    ], done.stderr
    assert written or not (out / "default").exists()  # no folder named that was not made


def test_run_offers_every_service_the_stack_can_start() -> None:
    from flipsync.cli import RUNNABLE
    from flipsync.stack import Service

    assert set(RUNNABLE) == {s.value for s in Service}


def finished(product_id: str, *, ok: bool, cost: int, baseline: int) -> WorkflowDone:
    """The final event of one product's workflow, with what it cost and its naive baseline."""
    return WorkflowDone(workflow_id=f"wf-{product_id}", tenant="default", product_id=product_id,
                        ok=ok, cost_micro_usd=cost, baseline_micro_usd=baseline)  # fmt: skip


def test_the_cost_line_claims_no_savings_for_failed_products() -> None:
    # The newcomer's failed upload (2.25 MB of notes): it said "saved 100.0%". Whatever
    # baseline a failed product carries (answers its paid calls got), none is claimed.
    failed = finished("huge", ok=False, cost=0, baseline=2_820_679)
    assert cost_line([failed], simulated=True) == (
        "0 of 1 product done; spent $0.000000 (simulated), no savings claimed here for failed "
        "products (the report counts each call's)"
    )
    # A failed product's paid calls are spent money; the saving is the done ones' alone.
    done = finished("mug", ok=True, cost=1_000, baseline=20_000)
    paid = finished("lamp", ok=False, cost=500, baseline=500)
    assert cost_line([done, paid], simulated=False) == (
        "1 of 2 products done; spent $0.001500: $0.001000 on the done ones vs naive "
        "$0.020000, saved 95.0%, and $0.000500 on the failed ones, "
        "no savings claimed here for failed products (the report counts each call's)"
    )
    assert cost_line([done], simulated=True) == (
        "cost $0.001000 for 1 product vs naive $0.020000: saved 95.0% "
        "(simulated: nothing was spent)"
    )
