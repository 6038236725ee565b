"""SIGKILL the agents and workflow process mid-run: the workflow resumes from its checkpoints
and no finished agent asks (or pays) for anything again."""

from __future__ import annotations

import uuid

import pytest

from agents.catalog_file import load_catalog
from agents.checkpoints import CheckpointStore
from agents.specs import WORKFLOW_SPECS
from agents.upload import Uploader
from agents.watch import WorkflowWatcher
from bus import subjects
from bus.embedded import EmbeddedNats, EmbeddedRedis
from bus.settings import Settings
from flipsync.children import service_process
from flipsync.stack import Service, start_stack
from simulator.config import SimConfig
from simulator.server import SimulatedProvider
from tests.helpers import eventually

NAMES = [spec.name for spec in WORKFLOW_SPECS]
KILL_AFTER = 10
"""Checkpoints that exist when the agents process is killed."""


@pytest.mark.slow
@pytest.mark.chaos
async def test_killed_workflow_resumes_without_paying_twice() -> None:
    nats_server, redis_server = EmbeddedNats(), EmbeddedRedis()
    sim = SimulatedProvider(SimConfig(latency_ms=150))
    await nats_server.start()
    await redis_server.start()
    await sim.start()
    env = {
        "NATS_URL": nats_server.url,
        "REDIS_URL": redis_server.url,
        "FLIPSYNC_ACK_WAIT_S": "3",
    }
    settings = Settings(
        nats_url=nats_server.url, redis_url=redis_server.url, sim_base_url=sim.base_url
    )
    stack = await start_stack(settings, [Service.ROUTER, Service.LEDGER])
    doomed = service_process(["agents", "workflow"], env)
    survivor = service_process(["agents", "workflow"], env)
    owner = f"r{uuid.uuid4().hex[:8]}"
    try:
        js = stack.broker.connection.jetstream()
        store = CheckpointStore(await js.key_value(subjects.BUCKET_CHECKPOINTS))
        await doomed.start()
        async with WorkflowWatcher(stack.broker, owner) as watcher:
            upload = await Uploader(stack.broker, settings).upload(load_catalog()[1], tenant=owner)

            async def some_finished() -> bool:
                return len(await store.finished(owner, upload.workflow_id, NAMES)) >= KILL_AFTER

            await eventually(some_finished, timeout_s=60)
            doomed.kill()
            before = await store.finished(owner, upload.workflow_id, NAMES)
            assert len(before) < 34, "the run finished before the kill"
            await survivor.start()
            done = (await watcher.wait([upload.workflow_id], timeout_s=90))[upload.workflow_id]

        assert done.ok, done.reason
        after = await store.finished(owner, upload.workflow_id, NAMES)
        assert len(after) == 34
        info = await js.stream_info(
            subjects.STREAM_REQUESTS, subjects_filter=f"llm.request.{owner}.>"
        )
        asked = {s.rsplit(".", 1)[1]: n for s, n in (info.state.subjects or {}).items()}
        for name, checkpoint in before.items():
            # Untouched by the resumed run: same answer, and not one request more.
            assert after[name].request_ids == checkpoint.request_ids, name
            assert after[name].output == checkpoint.output, name
            assert asked.get(name, 0) == len(checkpoint.request_ids), name
        # Every request id got exactly one result; every paid call is in the ledger once.
        results = await js.stream_info(
            subjects.STREAM_RESULTS, subjects_filter=f"llm.result.{owner}.>"
        )
        assert results.state.subjects is not None
        assert set(results.state.subjects.values()) == {1}
        assert len(results.state.subjects) == sum(asked.values())

        async def settled() -> bool:
            return (await stack.aggregates.totals(owner)).spend_micro_usd == done.cost_micro_usd

        await eventually(settled, timeout_s=20)
    finally:
        await doomed.stop()
        await survivor.stop()
        await stack.stop()
        await sim.stop()
        await redis_server.stop()
        await nats_server.stop()
