"""Cancelling an interrupted upload's workflows hits exactly those: by tenant and id. Another
tenant's workflow running at the same time finishes as if nothing happened."""

from __future__ import annotations

import asyncio
import uuid

from faststream.nats import NatsBroker

from agents.cancel import cancel_workflows, requests_mark
from agents.catalog_file import load_catalog
from agents.checkpoints import CheckpointStore
from agents.photo_memory import ClaimState
from agents.stores import StoreOpener
from agents.upload import Uploader
from agents.watch import WorkflowWatcher
from bus import subjects
from bus.embedded import EmbeddedNats, EmbeddedRedis
from bus.messages import PhotoAnalysis
from bus.settings import Settings
from flipsync.stack import Stack, start_stack
from simulator.config import SimConfig
from simulator.server import SimulatedProvider
from tests.helpers import eventually


async def test_a_cancelled_workflow_stops_asking_and_another_tenants_finishes(
    nats_server: EmbeddedNats, redis_server: EmbeddedRedis
) -> None:
    sim = SimulatedProvider(SimConfig(latency_ms=100))
    await sim.start()
    settings = Settings(
        nats_url=nats_server.url, redis_url=redis_server.url, sim_base_url=sim.base_url
    )
    stack = await start_stack(settings)
    stopped, kept = f"c{uuid.uuid4().hex[:8]}", f"k{uuid.uuid4().hex[:8]}"
    try:
        # The stop's bound is the setting, not FastStream's 15 s default.
        assert stack.broker.config.graceful_timeout == settings.stop_grace_s
        js = stack.broker.connection.jetstream()
        store = CheckpointStore(await js.key_value(subjects.BUCKET_CHECKPOINTS))
        mark = await requests_mark(stack.broker)
        uploader = Uploader(stack.broker, settings)
        product = load_catalog()[1]
        async with (
            WorkflowWatcher(stack.broker, stopped) as stopped_watch,
            WorkflowWatcher(stack.broker, kept) as kept_watch,
        ):
            doomed = await uploader.upload(product, tenant=stopped)
            other = await uploader.upload(product, tenant=kept)

            async def some_finished() -> bool:
                return len(await store.finished(stopped, doomed.workflow_id)) >= 4

            await eventually(some_finished, timeout_s=60)
            await cancel_workflows(
                stack.broker, settings, stopped, [doomed.workflow_id], since_seq=mark
            )
            state = await store.state(stopped, doomed.workflow_id)
            assert state is not None and state.cancelled
            done = (await kept_watch.wait([other.workflow_id], timeout_s=90))[other.workflow_id]
            assert done.ok, done.reason
            other_state = await store.state(kept, other.workflow_id)
            assert other_state is not None and not other_state.cancelled
            asked = await _requests(stack, stopped)
            await asyncio.sleep(1.0)  # long enough for a leftover run or request to show
            assert await _requests(stack, stopped) == asked
            assert doomed.workflow_id not in stopped_watch.done
    finally:
        await stack.stop()
        await sim.stop()


async def _requests(stack: Stack, tenant: str) -> int:
    """How many LLM requests of tenant the requests stream holds now."""
    info = await stack.broker.connection.jetstream().stream_info(
        subjects.STREAM_REQUESTS, subjects_filter=subjects.tenant_llm_requests(tenant)
    )
    return sum((info.state.subjects or {}).values())


async def test_cancelling_gives_up_the_photo_claims_its_workflows_held(
    broker: NatsBroker,
) -> None:
    """A demo run after a Ctrl-C took 63 s instead of 9: its workflows waited photo_claim_s
    (60 s) on the photo analyses the interrupted run had claimed. Cancelling now gives up
    those claims, and only those."""
    settings = Settings()
    photos = (await StoreOpener(settings)(broker.connection.jetstream())).photos
    tenant, doomed, other = f"p{uuid.uuid4().hex[:8]}", "wf-doomed", "wf-other"
    assert (await photos.claim(tenant, "vision", "h1", doomed)).state is ClaimState.MINE
    assert (await photos.claim(tenant, "vision", "h2", other)).state is ClaimState.MINE
    await photos.put(tenant, "vision", "h3", PhotoAnalysis(output={"a": 1}, workflow_id=doomed))
    assert (await photos.claim(tenant, "vision", "h1", other)).state is ClaimState.BUSY
    await cancel_workflows(broker, settings, tenant, [doomed])
    assert (await photos.claim(tenant, "vision", "h1", other)).state is ClaimState.MINE
    assert (await photos.claim(tenant, "vision", "h2", "wf-third")).state is ClaimState.BUSY
    kept = await photos.claim(tenant, "vision", "h3", other)  # finished analyses stay
    assert kept.state is ClaimState.DONE and kept.analysis is not None
