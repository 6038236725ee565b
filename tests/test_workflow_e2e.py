"""Uploads flow end to end through the workflow's agents on an embedded stack: four validated
listings, zero-call agents that call nothing, photos analysed once per tenant, costs in the
ledger."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from PIL import Image

from agents.asking import PAID
from agents.catalog_file import load_catalog
from agents.checkpoints import CheckpointStore
from agents.output import summary
from agents.product_input import PhotoFile, ProductInput
from agents.specs import WORKFLOW_SPECS
from agents.upload import Uploader
from agents.watch import WorkflowWatcher
from bus import subjects
from bus.codec import decode
from bus.messages import ImagePart, Lever, LlmRequest, WorkflowDone
from bus.settings import Settings
from cost_ledger.lever_split import lever_split
from flipsync.stack import Stack, start_stack
from simulator.config import Faults
from tests.chaos_scenario import ledger_events
from tests.helpers import eventually

PER_PHOTO = [spec.name for spec in WORKFLOW_SPECS if spec.uses_images]
ZERO_CALL = [spec.name for spec in WORKFLOW_SPECS if not spec.needs_llm]


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Stack]:
    """A fully embedded stack: the same composition `flipsync demo` runs."""
    # A short packing window: these tests count requests, they do not time them.
    running = await start_stack(Settings(sim_latency_ms=0, pack_window_ms=50))
    yield running
    await running.stop()


def tenant() -> str:
    """A fresh tenant, so each test counts only its own requests."""
    return f"t{uuid.uuid4().hex[:10]}"


async def run(stack: Stack, owner: str, *products: ProductInput) -> list[WorkflowDone]:
    """Upload products at once for owner and wait for their final events."""
    uploader = Uploader(stack.broker, stack.settings)
    async with WorkflowWatcher(stack.broker, owner) as watcher:
        uploads = await asyncio.gather(*(uploader.upload(p, tenant=owner) for p in products))
        done = await watcher.wait([u.workflow_id for u in uploads], timeout_s=60)
    return [done[u.workflow_id] for u in uploads]


async def requests_by_agent(stack: Stack, owner: str) -> dict[str, int]:
    """How many LLM requests each agent of owner published (from the requests stream)."""
    js = stack.broker.connection.jetstream()
    info = await js.stream_info(subjects.STREAM_REQUESTS, subjects_filter=f"llm.request.{owner}.>")
    return {s.rsplit(".", 1)[1]: n for s, n in (info.state.subjects or {}).items()}


async def test_upload_becomes_four_validated_listings_with_its_cost_in_the_ledger(
    stack: Stack,
) -> None:
    owner = tenant()
    (done,) = await run(stack, owner, load_catalog()[1])  # two photos
    assert done.ok, done.reason
    markets = done.listing["marketplaces"]
    assert isinstance(markets, dict) and set(markets) == {"ebay", "amazon", "etsy", "shopify"}
    assert 0 < len(markets["ebay"]["title"]) <= 80
    assert len(markets["amazon"]["title"]) <= 200 and len(markets["amazon"]["bullets"]) == 5
    assert len(markets["etsy"]["title"]) <= 140 and 1 <= len(markets["etsy"]["tags"]) <= 13
    assert all(len(tag) <= 20 for tag in markets["etsy"]["tags"])
    assert len(markets["shopify"]["seo_title"]) <= 70
    assert len(markets["shopify"]["meta_description"]) <= 320
    assert markets["ebay"]["price_usd"] and markets["ebay"]["fee_usd"]
    assert 0 < done.cost_micro_usd < done.baseline_micro_usd

    kv = await stack.broker.connection.jetstream().key_value(subjects.BUCKET_CHECKPOINTS)
    checkpoints = await CheckpointStore(kv).finished(owner, done.workflow_id)
    assert set(checkpoints) == {spec.name for spec in WORKFLOW_SPECS}
    assert sorted(done.missing) == sorted(n for n, c in checkpoints.items() if not c.ok)
    paid = sum(c.llm_calls for c in checkpoints.values())
    requests = await requests_by_agent(stack, owner)
    # A zero-call agent makes no call: no request, no paid call, yet an output.
    for name in ZERO_CALL:
        assert name not in requests
        assert checkpoints[name].llm_calls == 0 and checkpoints[name].request_ids == []
    assert checkpoints["fees"].ok and checkpoints["margin"].ok and checkpoints["shipping"].ok
    assert sum(requests.values()) == sum(len(c.request_ids) for c in checkpoints.values())

    async def settled() -> bool:
        totals = await stack.aggregates.totals(owner)
        # zero-call work is booked too (by the workflow, as it ends: after the paid calls)
        return (totals.spend_micro_usd, totals.baseline_micro_usd) == (
            done.cost_micro_usd,
            done.baseline_micro_usd,
        )

    await eventually(settled)
    totals = await stack.aggregates.totals(owner)
    assert totals.paid_calls <= paid  # packed calls share one upstream call
    zero_call = {e.agent for e in await ledger_events(stack.broker, owner)
                 if e.lever is Lever.ZERO_CALL}  # fmt: skip
    assert zero_call == {n for n in ZERO_CALL if checkpoints[n].baseline_micro_usd > 0}
    split = await lever_split(stack.broker.connection.jetstream(), {owner})
    assert sum(split.net.values()) == totals.baseline_micro_usd - totals.spend_micro_usd

    js = stack.broker.connection.jetstream()
    signals = await js.stream_info(subjects.STREAM_WORKFLOW, subjects_filter=f"quality.{owner}")
    assert signals.state.messages >= len(requests)  # one quality signal per answer


async def test_a_photo_uploaded_twice_is_analysed_once(stack: Stack) -> None:
    owner = tenant()
    sample = load_catalog()[0]
    original = sample.photos[0].read()
    smaller = io.BytesIO()
    Image.open(io.BytesIO(original)).convert("RGB").resize((200, 200)).save(smaller, "JPEG")
    relisted = ProductInput(
        product_id="mug-relisted",
        title_hint="Teal mug, the same one again",
        notes="Relisted with a smaller copy of the same photo, and the photo itself.",
        photos=(PhotoFile(name="copy.jpg", data=smaller.getvalue()), sample.photos[0]),
    )
    (first,) = await run(stack, owner, sample)
    (second,) = await run(stack, owner, relisted)
    assert first.ok and second.ok, (first.reason, second.reason)
    requests = await requests_by_agent(stack, owner)
    for name in PER_PHOTO:  # one analysis call per per-photo agent, for both uploads
        assert requests[name] == 1, (name, requests)
    kv = await stack.broker.connection.jetstream().key_value(subjects.BUCKET_CHECKPOINTS)
    again = await CheckpointStore(kv).finished(owner, second.workflow_id)
    before = await CheckpointStore(kv).finished(owner, first.workflow_id)
    reused = {e.agent: e.baseline_micro_usd for e in await ledger_events(stack.broker, owner)
              if e.lever is Lever.PHOTO_DEDUP}  # fmt: skip
    for name in PER_PHOTO:
        assert again[name].request_ids == [] and again[name].cost_micro_usd == 0
        assert again[name].baseline_micro_usd > 0  # the saving is credited to photo reuse
        assert reused[name] == again[name].baseline_micro_usd  # and booked, the listing done
        photos: Any = before[name].output["photos"]
        assert again[name].output["photos"] == photos * 2


async def test_a_product_uploaded_again_costs_nothing_and_says_which_levers_served_it(
    stack: Stack,
) -> None:
    """A newcomer's second `make demo` said "saved 100.0%" for every product and not why."""
    owner = tenant()
    sample = load_catalog()[2]
    (first,) = await run(stack, owner, sample)
    (again,) = await run(stack, owner, sample)
    assert first.ok and again.ok, (first.reason, again.reason)
    paid = {str(lever) for lever in PAID}
    assert first.cost_micro_usd > 0 and set(first.served_by) & paid, first.served_by
    assert sum(first.served_by.values()) == len(WORKFLOW_SPECS) - len(first.missing)
    assert again.cost_micro_usd == 0 and not set(again.served_by) & paid, again.served_by
    assert {"exact_cache", "zero_call", "photo_dedup"} <= set(again.served_by)
    assert sum(again.served_by.values()) == len(WORKFLOW_SPECS) - len(again.missing)
    line = summary(again, simulated=True).splitlines()[-1]
    assert "saved 100.0% simulated: no call paid, answers from " in line, line
    assert f"zero_call {again.served_by['zero_call']}" in line


async def test_a_failed_workflow_keeps_its_paid_spend_and_claims_no_saving(stack: Stack) -> None:
    """Every answer schema-invalid: the product fails. What its calls cost is booked, but no
    saving: no baseline for the failed answers, none for its zero-call agents' outputs."""
    assert stack.sim is not None
    owner = tenant()
    await stack.sim.set_faults(Faults(schema_invalid=1.0))
    try:
        (done,) = await run(stack, owner, load_catalog()[0])
    finally:
        await stack.sim.set_faults(Faults())
    assert not done.ok
    assert done.cost_micro_usd > 0  # the bad answers were paid for
    assert done.baseline_micro_usd == done.cost_micro_usd  # and saved nothing

    async def settled() -> bool:
        return (await stack.aggregates.totals(owner)).spend_micro_usd == done.cost_micro_usd

    await eventually(settled)
    events = await ledger_events(stack.broker, owner)
    assert not [e for e in events if e.lever in (Lever.ZERO_CALL, Lever.PHOTO_DEDUP)]
    totals = await stack.aggregates.totals(owner)
    assert totals.baseline_micro_usd == totals.spend_micro_usd
    split = await lever_split(stack.broker.connection.jetstream(), {owner})
    assert sum(split.net.values()) == 0  # the split adds up: to no saving


async def test_concurrent_uploads_of_one_photo_share_one_analysis_per_tenant(
    stack: Stack,
) -> None:
    owner, other = tenant(), tenant()
    product = load_catalog()[3]
    twin = ProductInput(product_id="twin", notes="another listing", photos=product.photos)
    done = await run(stack, owner, product, twin)
    assert all(d.ok for d in done), [d.reason for d in done]
    requests = await requests_by_agent(stack, owner)
    assert all(requests[name] == 1 for name in PER_PHOTO), requests
    # Another seller's upload of the same photo never reuses this seller's analysis.
    (theirs,) = await run(stack, other, product)
    assert theirs.ok
    assert all(n == 1 for a, n in (await requests_by_agent(stack, other)).items() if a in PER_PHOTO)


async def test_llm_requests_carry_the_task_type_and_resized_photos(stack: Stack) -> None:
    owner = tenant()
    (done,) = await run(stack, owner, load_catalog()[5])
    assert done.ok, done.reason
    js = stack.broker.connection.jetstream()
    for name, detail in (("defects", "high"), ("photo_subject", "low")):
        raw = await js.get_last_msg(subjects.STREAM_REQUESTS, subjects.llm_request(owner, name))
        request = decode(raw.data or b"", LlmRequest)
        assert request.task_type == "image_analysis"
        parts = [p for m in request.messages if isinstance(m.content, list) for p in m.content]
        images = [p for p in parts if isinstance(p, ImagePart)]
        assert len(images) == 2  # both photos of the product, in one call
        assert all(p.detail == detail and p.width and p.height for p in images)
        assert all(p.url.startswith("data:image/jpeg;base64,") for p in images)
