"""`flipsync upload` against NATS_URL when its nats-server dies while the upload waits for its
listings: the command fails within seconds with one line naming the URL (exit 3), not at its
--timeout; a server back within the grace does not fail it. The real command as a child
process, a real nats-server of the test's own, and no workflow service: the upload waits."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from asyncio.subprocess import PIPE, Process
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest

from agents.cli_upload_end import upload_failure
from agents.intake import UploadError
from bus import subjects
from bus.codec import decode, encode
from bus.embedded import EmbeddedNats
from bus.messages import ProductUploaded, WorkflowDone
from bus.settings import Settings
from tests.test_cli_first_hour import HANG_GUARD_S, catalog_csv

TIMEOUT_S = 40
"""The upload's --timeout: long past the grace, and short enough that a command still waiting
for it ends (status 4) inside the hang guard."""
LOST_BOUND_S = 15.0
"""From the kill to the command's exit: the grace (FLIPSYNC_NATS_LOST_AFTER_S, 5 s by default)
plus stopping, on a shared machine; a command that waits for --timeout takes TIMEOUT_S."""
ACK_S = 1.0
"""How long after its announcement the command is taken to have its publish's ack (a few ms
on loopback) and to wait for the listing."""
PASSWORD = "s3cret"


def secret_url(server: EmbeddedNats) -> str:
    """server's URL with a user and password in it (a server without auth ignores them)."""
    return f"nats://flipsync:{PASSWORD}@127.0.0.1:{server.port}"


@contextlib.asynccontextmanager
async def waiting_upload(
    server: EmbeddedNats, folder: Path
) -> AsyncIterator[tuple[Process, ProductUploaded]]:
    """`flipsync upload` of one product to server, once its upload is announced: no service
    runs there, so from then on it waits for the listing. Killed on the way out if it still
    runs (a failed assertion, a hang)."""
    products = catalog_csv(folder, 1)
    argv = ["-m", "flipsync", "upload", str(products), "--out", str(folder / "out"),
            "--timeout", str(TIMEOUT_S)]  # fmt: skip
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("NATS_", "REDIS_"))}
    env = {**clean, "NATS_URL": secret_url(server)}
    watcher = await nats.connect(server.url)
    try:
        announced = await watcher.subscribe(subjects.product_uploaded("default"))
        await watcher.flush()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, *argv, env=env, cwd=folder, stdout=PIPE, stderr=PIPE
        )
        try:
            msg = await announced.next_msg(timeout=HANG_GUARD_S)
            await watcher.close()  # the server is the test's to kill: no client of it left
            await asyncio.sleep(ACK_S)
            yield proc, decode(msg.data, ProductUploaded)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.communicate()
    finally:
        await watcher.close()  # nothing to do when closed already


async def ended(proc: Process) -> tuple[int, str]:
    """proc's exit status and standard error, once it exits (a hang fails the test)."""
    async with asyncio.timeout(HANG_GUARD_S):
        _, stderr = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, stderr.decode()


@pytest.mark.slow
@pytest.mark.chaos
async def test_nats_killed_while_the_upload_waits_ends_it_within_seconds(
    tmp_path: Path, own_nats: EmbeddedNats
) -> None:
    async with waiting_upload(own_nats, tmp_path) as (proc, _):
        await own_nats.kill()
        killed = time.monotonic()
        status, stderr = await ended(proc)
        took = time.monotonic() - killed
    assert status == 3, stderr  # as for NATS that cannot be reached (flipsync --help)
    (line,) = stderr.strip().splitlines()
    where = f"nats://flipsync:***@127.0.0.1:{own_nats.port}"
    assert line.startswith(
        f"flipsync upload: lost the connection to NATS at {where} while waiting for listings"
    ), line
    assert "not back within 5 s: 0 of 1 product done, nothing written" in line
    assert line.endswith("; is nats-server still running there, and is NATS_URL right?"), line
    assert PASSWORD not in stderr
    assert took < LOST_BOUND_S, f"{took:.1f} s"


@pytest.mark.slow
@pytest.mark.chaos
async def test_a_nats_restart_within_the_grace_does_not_end_the_upload(
    tmp_path: Path, own_nats: EmbeddedNats
) -> None:
    async with waiting_upload(own_nats, tmp_path) as (proc, upload):
        await own_nats.kill()
        killed = time.monotonic()
        await own_nats.start()  # the same port and data: the command reconnects to it
        # Past the grace since the kill, the command still waits for its listing...
        grace = Settings().nats_lost_after_s
        await asyncio.sleep(max(0.0, killed + grace + 3 - time.monotonic()))
        assert proc.returncode is None, await ended(proc)
        # ...and takes it when it comes (standing in for the workflow service's event).
        done = WorkflowDone(workflow_id=upload.workflow_id, tenant="default",
                            product_id=upload.product_id, ok=True)  # fmt: skip
        publisher = await nats.connect(own_nats.url)
        try:
            await publisher.publish(
                subjects.workflow_done("default", upload.workflow_id), encode(done)
            )
            await publisher.flush()
        finally:
            await publisher.close()
        status, stderr = await ended(proc)
    assert status == 0, stderr
    assert (tmp_path / "out" / "default" / upload.product_id / "package.json").exists()
    assert "lost" not in stderr, stderr


def test_nats_that_stopped_answering_mid_upload_is_named_without_its_password() -> None:
    lost = UploadError("mug-001", nats.errors.TimeoutError())
    line, status = upload_failure(lost, f"nats://flipsync:{PASSWORD}@127.0.0.1:4222")
    assert status == 3
    assert line.endswith("NATS at nats://flipsync:***@127.0.0.1:4222 stopped answering"), line
