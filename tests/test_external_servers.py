"""With NATS_URL and REDIS_URL set, FlipSync uses those servers and starts none of its own."""

from __future__ import annotations

import pytest

from agents.upload import load_catalog, upload_product
from agents.watch import WorkflowWatcher
from bus.embedded import EmbeddedNats, EmbeddedRedis
from bus.settings import Settings
from flipsync.stack import start_stack


@pytest.mark.slow
async def test_upload_through_separately_started_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    nats_server, redis_server = EmbeddedNats(), EmbeddedRedis()
    await nats_server.start()
    await redis_server.start()
    try:
        monkeypatch.setenv("NATS_URL", nats_server.url)
        monkeypatch.setenv("REDIS_URL", redis_server.url)
        settings = Settings(sim_latency_ms=0)
        assert settings.nats_url == nats_server.url and settings.redis_url == redis_server.url
        stack = await start_stack(settings)
        try:
            assert stack.embedded == []  # nothing of its own was started
            assert stack.nats_url == nats_server.url
            async with WorkflowWatcher(stack.broker, "ext") as watcher:
                upload = await upload_product(stack.broker, load_catalog()[0], tenant="ext")
                done = await watcher.wait([upload.workflow_id], timeout_s=30)
            assert done[upload.workflow_id].ok
        finally:
            await stack.stop()
        assert nats_server.pid is not None and redis_server.pid is not None  # still ours to stop
    finally:
        await nats_server.stop()
        await redis_server.stop()
