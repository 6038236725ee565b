"""A product upload flows end to end: three agents chained by events, one listing, one ledger."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from agents.checkpoints import CheckpointStore
from agents.upload import load_catalog, upload_product
from agents.watch import WorkflowWatcher
from bus import subjects
from bus.settings import Settings
from flipsync.stack import Stack, start_stack
from tests.helpers import eventually


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Stack]:
    """A fully embedded stack: the same composition `flipsync demo` runs."""
    running = await start_stack(Settings(sim_latency_ms=0))
    yield running
    await running.stop()


async def test_upload_becomes_a_listing_with_its_cost_in_the_ledger(stack: Stack) -> None:
    product = load_catalog()[1]  # two photos
    async with WorkflowWatcher(stack.broker, "shop1") as watcher:
        upload = await upload_product(stack.broker, product, tenant="shop1")
        done = (await watcher.wait([upload.workflow_id], timeout_s=30))[upload.workflow_id]
    assert done.ok, done.reason
    assert set(done.listing) == {"product", "copy", "price"}
    copy = done.listing["copy"]
    assert isinstance(copy, dict) and len(copy["title"]) <= 80
    price = done.listing["price"]
    assert isinstance(price, dict) and price["price_usd"] > 0
    assert 0 < done.cost_micro_usd < done.baseline_micro_usd

    async def settled() -> bool:
        totals = await stack.aggregates.totals("shop1")
        return totals.spend_micro_usd == done.cost_micro_usd

    await eventually(settled)
    assert (await stack.aggregates.totals("shop1")).calls == 3

    kv = await stack.broker.connection.jetstream().key_value(subjects.BUCKET_CHECKPOINTS)
    checkpoints = await CheckpointStore(kv).finished(upload.workflow_id)
    assert {name: c.ok for name, c in checkpoints.items()} == {
        "identify": True,
        "listing": True,
        "price": True,
    }
