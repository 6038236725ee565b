"""`flipsync upload` that fails midway: one line, the rest cancelled, a stated exit status.

Found by review: anything but a timeout, Ctrl-C or a photo error (a publish NATS refused)
ended in a traceback and left the products already uploaded running."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from pathlib import Path

import nats

from agents.checkpoints import CheckpointStore
from agents.spec import UPLOAD
from bus import subjects
from bus.embedded.nats_server import EmbeddedNats
from tests.test_cli_first_hour import SAMPLES, flipsync

PRODUCTS = 10
TENANT = "shop"


def _shop(folder: Path) -> Path:
    """Product folders p00..p09; the last one's text passes a 64 KiB max_payload, not ours."""
    for i in range(PRODUCTS):
        product = folder / f"p{i:02}"
        product.mkdir(parents=True)
        shutil.copy(SAMPLES / "photos" / "mug-001-a.png", product / "front.png")
        fields: dict[str, object] = {"title": f"Mug {i}"}
        if i == PRODUCTS - 1:
            fields |= {"notes": "n" * 60_000, "attributes": {"glaze": "x" * 60_000}}
        (product / "product.json").write_text(json.dumps(fields))
    return folder


async def test_a_publish_nats_refuses_ends_the_upload_in_one_line_and_cancels_the_rest(
    tmp_path: Path,
) -> None:
    """A NATS whose max_payload is 64 KiB refuses the last product's upload
    (MaxPayloadError): the command names the product and the error, how many were uploaded
    and not, cancels every workflow it started, and exits 1, without a traceback."""
    server = EmbeddedNats(extra_config="max_payload: 65536")
    await server.start()
    try:
        env = {"NATS_URL": server.url}
        args = ("upload", str(_shop(tmp_path / "in")), "--tenant", TENANT, "--timeout", "60",
                "--out", str(tmp_path / "out"))  # fmt: skip
        done = await asyncio.to_thread(flipsync, *args, env=env, cwd=tmp_path)
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr, done.stderr
        (line,) = [text for text in done.stderr.splitlines() if text.strip()]
        said = re.fullmatch(
            r"flipsync upload: uploading product 'p09' failed: nats: maximum payload exceeded: "
            r"0 of 10 products done, (\d+) uploaded and (\d+) not, nothing written; "
            r"(\d+) unfinished products cancelled \(calls already made stay in the report\)",
            line,
        )
        assert said is not None, line
        uploaded, not_uploaded, cancelled = map(int, said.groups())
        # p08 and p09 wait for two of the first eight to be uploaded; p08 may be in flight.
        assert uploaded + not_uploaded == PRODUCTS and 2 <= uploaded <= 9, line
        client = await nats.connect(server.url)
        try:
            js = client.jetstream()
            kv = await js.key_value(subjects.BUCKET_CHECKPOINTS)
            bucket = subjects.BUCKET_CHECKPOINTS  # its keys from the stream (a KV watch races)
            pattern = f"$KV.{bucket}.{subjects.tenant_checkpoints(TENANT, UPLOAD)}"
            info = await js.stream_info(f"KV_{bucket}", subjects_filter=pattern)
            workflows = [subject.split(".")[-2] for subject in info.state.subjects or {}]
            # p09's was refused, never kept; one in flight may be kept, not yet published.
            assert uploaded <= len(workflows) <= cancelled, (workflows, line)
            store = CheckpointStore(kv)
            for workflow_id in workflows:  # every product uploaded is cancelled, none runs on
                state = await store.state(TENANT, workflow_id)
                assert state is not None and state.cancelled, workflow_id
        finally:
            await client.close()
    finally:
        await server.stop()
