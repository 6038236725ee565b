"""State that outlives a command: embedded servers keep their data in the local data
directory, so `flipsync report` after an upload shows its spend; `flipsync reset` clears it;
two commands never run servers on the same directory at once."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from bus.embedded import EmbeddedRedis
from bus.embedded.process import free_port
from bus.redis_client import make_redis
from cost_ledger.aggregates import AggregateStore
from cost_ledger.report import SIMULATED_NOTE
from flipsync import data_dir
from tests.cost_events import apply_all, ledger_event
from tests.test_cli_first_hour import flipsync as run_flipsync

SAMPLES = Path(__file__).parent.parent / "agents" / "samples"
HANG_GUARD_S = 240


def flipsync(
    *args: str, cwd: Path, extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NATS_", "REDIS_"))}
    env.pop("FLIPSYNC_DATA_DIR", None)
    return subprocess.run(
        [sys.executable, "-m", "flipsync", *args],
        env={**env, "FLIPSYNC_SIM_LATENCY_MS": "0", **(extra or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
        check=False,
    )


def test_report_after_upload_shows_its_spend_until_reset(tmp_path: Path) -> None:
    shutil.copy(SAMPLES / "photos" / "mug-001-a.png", tmp_path / "mug.png")
    (tmp_path / "p.csv").write_text(
        "product_id,title,notes,cost_price,photos\nmug-1,Teal mug,350 ml,$4.20,mug.png\n"
    )
    # Standard priority: a CSV's default, bulk, waits on the batch API's polls (25 of 35 s
    # here), and what this test checks is the data the upload leaves.
    # Every routed call shadowed: routing's own calls, in no product's cost, are said.
    shadowed = {"FLIPSYNC_ROUTING__SHADOW_SHARE": "1"}
    uploaded = flipsync("upload", "p.csv", "--tenant", "shop", "--priority", "standard",
                        cwd=tmp_path, extra=shadowed)  # fmt: skip
    assert uploaded.returncode == 0, uploaded.stderr
    assert (tmp_path / ".flipsync" / "redis").is_dir()
    report = flipsync("report", "--tenant", "shop", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    # The upload's lines add up to the spend its report showed (a newcomer found one product
    # at two costs, the report's holding the levers' own calls); what came in later is the
    # later report's.
    out = uploaded.stdout
    product = re.search(r"^cost \$([\d.]+) for 1 product", out, flags=re.M)
    own = re.search(r"^levers' own calls \$([\d.]+) \(simulated\)", out, flags=re.M)
    printed = re.search(r"^Spend: +\$([\d.]+) ", out, flags=re.M)
    later = re.search(r"^Spend: +\$([\d.]+) ", report.stdout, flags=re.M)
    assert product and own and printed and later, out
    listed = Decimal(product[1]) + Decimal(own[1])
    assert Decimal(printed[1]) <= listed <= Decimal(later[1]), (out, report.stdout)
    assert "ebay_listing" in report.stdout  # the upload's agents, from the kept ledger
    spend = flipsync("cost", "spend", "--tenant", "shop", "--json", cwd=tmp_path)
    assert spend.returncode == 0, spend.stderr  # read from the kept ledger, no REDIS_URL
    view = json.loads(spend.stdout)
    assert view["simulated"] and view["totals"]["spend_micro_usd"] > 0
    budgets = flipsync("budget", "show", "--tenant", "shop", cwd=tmp_path)  # reads: no URLs
    assert budgets.returncode == 0 and SIMULATED_NOTE in budgets.stdout, budgets.stderr
    providers = flipsync("providers", cwd=tmp_path)
    assert providers.returncode == 0, providers.stderr
    assert SIMULATED_NOTE in providers.stdout  # its cost column is the simulator's, not money
    # A data directory holding more than flipsync's own data is not cleared (a review:
    # FLIPSYNC_DATA_DIR=. would have taken the folder's files, listings/ included).
    here = flipsync("reset", cwd=tmp_path, extra={"FLIPSYNC_DATA_DIR": str(tmp_path)})
    assert here.returncode == 2 and "holds more than flipsync's data" in here.stderr
    assert (tmp_path / "p.csv").is_file() and (tmp_path / ".flipsync").is_dir()
    cleared = flipsync("reset", cwd=tmp_path)
    assert cleared.returncode == 0 and "cleared" in cleared.stdout
    # The seller's packages are theirs: kept, and said to be (a newcomer found chat then
    # saying "no listings" beside a full listings/ folder, with nothing said).
    assert (tmp_path / "listings" / "shop" / "mug-1" / "package.json").is_file()
    assert "listings/ are kept" in cleared.stdout
    assert not (tmp_path / ".flipsync").exists()
    empty = flipsync("report", cwd=tmp_path)
    assert empty.returncode == 2 and "no ledger here" in empty.stderr
    no_spend = flipsync("cost", "spend", cwd=tmp_path)
    assert no_spend.returncode == 2 and "no ledger here" in no_spend.stderr


def test_whether_the_data_is_taken_is_known_without_holding_it(tmp_path: Path) -> None:
    """A second command is refused before its slow imports (a second `flipsync demo` took
    6.8 s to say so): data_dir.busy checks without creating or holding the directory."""
    place = tmp_path / ".flipsync"
    assert data_dir.busy(place) is None and not place.exists()
    with data_dir.held(place):
        taken = data_dir.busy(place)
        assert taken is not None and f"pid {os.getpid()}" in str(taken)
    assert data_dir.busy(place) is None
    with data_dir.held(place):  # the check held nothing
        pass


def test_a_second_command_on_the_same_data_is_refused(tmp_path: Path) -> None:
    with data_dir.held(tmp_path / ".flipsync"):
        busy = flipsync("chat", "hello", cwd=tmp_path)
        refused = flipsync("reset", cwd=tmp_path)
    assert busy.returncode == 5, busy.stderr
    assert f"pid {os.getpid()}" in busy.stderr and "is using" in busy.stderr
    assert refused.returncode == 5 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().endswith("stop it, then reset"), refused.stderr
    assert "NATS_URL" not in refused.stderr  # pointing a reset at servers means nothing
    assert (tmp_path / ".flipsync").exists()


async def ledger_left_behind(folder: Path) -> None:
    """Local data as an earlier command leaves it: a kept Redis with one tenant's spend."""
    server = EmbeddedRedis(folder / ".flipsync" / "redis", persist=True)
    await server.start()
    try:
        client = make_redis(server.url)
        try:
            await apply_all(AggregateStore(client), [ledger_event(at="2026-11-02T10:00:00")])
        finally:
            await client.aclose()
    finally:
        await server.stop()


@pytest.mark.parametrize(
    "command", [["report"], ["cost", "spend"], ["providers"], ["budget", "show"]]
)
async def test_nats_url_without_redis_url_says_the_ledger_read_is_local(
    tmp_path: Path, command: list[str]
) -> None:
    """NATS_URL names a deployment, but the ledger is in Redis: with no REDIS_URL these read
    the local data (found by a newcomer: `report` printed local figures as if they were the
    deployment's, while `upload` with the same NATS_URL failed)."""
    await ledger_left_behind(tmp_path)
    dead = {"NATS_URL": f"nats://127.0.0.1:{free_port()}"}
    done = run_flipsync(*command, env=dead, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    said = (
        f"flipsync {' '.join(command[:2]) if command[0] == 'budget' else command[0]}: "
        f"REDIS_URL is unset: this reads this folder's own data ({tmp_path / '.flipsync'}), "
        "not the servers NATS_URL names; set REDIS_URL to read theirs\n"
    )
    assert done.stderr == said
    quiet = run_flipsync(*command, env={}, cwd=tmp_path)  # no NATS_URL: local is expected
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr


def _data_dir_as_left(folder: Path) -> Path:
    """A data directory as the embedded servers and `flipsync http` leave it."""
    (folder / "nats" / "jetstream").mkdir(parents=True)
    (folder / "nats" / "nats.conf").write_text("listen: 127.0.0.1:4222\n")
    (folder / "redis").mkdir()
    (folder / "redis" / "appendonly.aof").write_text("*1\r\n")
    (folder / "redis" / "temp-rewriteaof-bg-42.aof").write_text("")
    (folder / "lock").write_text("42")
    (folder / "api-key-demo").write_text("fs-x\n")
    return folder


def test_reset_clears_only_what_flipsync_left_and_says_why_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FLIPSYNC_DATA_DIR pointed at the wrong place: a folder whose redis/ and nats/ are a
    seller's own (a checkout) was removed whole; a file, a link or "." ended in a traceback
    (NotADirectoryError, "Cannot call rmtree on a symbolic link", rmdir('.'))."""
    projects = tmp_path / "projects"
    (projects / "redis" / "src").mkdir(parents=True)
    (projects / "redis" / "src" / "server.c").write_text("int main(void) { return 0; }\n")
    (projects / "nats").mkdir()
    with pytest.raises(data_dir.NotOnlyData, match=r"flipsync.s data \(redis/src\)"):
        data_dir.reset(projects)
    assert (projects / "redis" / "src" / "server.c").is_file()
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(data_dir.NotOnlyData, match="notes.txt is not a folder: not cleared"):
        data_dir.reset(tmp_path / "notes.txt")
    kept = _data_dir_as_left(tmp_path / "kept")
    (tmp_path / "link").symlink_to(kept)
    with pytest.raises(data_dir.NotOnlyData, match="link is a symbolic link: not cleared"):
        data_dir.reset(tmp_path / "link")
    assert (kept / "redis" / "appendonly.aof").is_file()
    (tmp_path / "empty").mkdir()
    assert data_dir.reset(tmp_path / "empty").startswith("nothing to clear")
    assert (tmp_path / "empty").is_dir()
    monkeypatch.chdir(kept)
    assert data_dir.reset(Path(".")).startswith(f"cleared {kept}")
    assert not kept.exists()
    refused = flipsync("reset", cwd=tmp_path, extra={"FLIPSYNC_DATA_DIR": "notes.txt"})
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
