"""How a workflow ends when agents fail: an optional one leaves a gap, a required one fails it
with a reason. Zero-call agents on a real NATS server, no router needed (and none called)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest
from faststream.nats import NatsBroker

from agents.dag import WorkflowDag
from agents.product_input import ProductInput
from agents.runtime import AgentRuntime
from agents.spec import UPLOAD, AgentSpec, Family, Inputs
from agents.upload import Uploader
from agents.watch import WorkflowWatcher
from agents.workflow import WorkflowService
from bus import subjects
from bus.broker import make_broker
from bus.embedded import EmbeddedNats
from bus.messages import Lever, WorkflowDone
from bus.settings import Settings
from bus.streams import ensure_streams
from cost_ledger.catalog import PriceCatalog
from tests.chaos_scenario import ledger_events


def broken(_inputs: Inputs) -> dict[str, Any]:
    """A zero-call agent whose code fails."""
    raise ValueError("no weight given")


def crashing(_inputs: Inputs) -> dict[str, Any]:
    """An agent whose run raises what no agent code expects (as a store away would)."""
    raise RuntimeError("the checkpoint store is away")


def zero(name: str, consumes: tuple[str, ...], **options: Any) -> AgentSpec:
    """A zero-call agent that reports which inputs it got."""
    compute = options.pop("compute", lambda inputs: {"saw": sorted(inputs)})
    return AgentSpec(name=name, family=Family.OPERATIONS, consumes=consumes, compute=compute,
                     instructions=f"do {name}", **options)  # fmt: skip


SPECS = (
    zero("alpha", (UPLOAD,)),
    zero("beta", ("alpha",), required=False, compute=broken),
    zero("gamma", ("alpha",), optional=("beta",)),
    zero("delta", ("beta",), required=False),
    zero("omega", ("gamma",), required=False),
    zero("fatal", ("gamma",), compute=broken),
)


@contextlib.asynccontextmanager
async def serving(specs: Iterable[AgentSpec], **options: Any) -> AsyncIterator[NatsBroker]:
    """Its own nats-server, with the workflow service and runtime for specs on one broker."""
    dag = WorkflowDag(specs)
    server = EmbeddedNats()
    await server.start()
    settings = Settings(nats_url=server.url, **options)
    running = make_broker(server.url)
    running.include_router(WorkflowService(dag, settings, running).router())
    running.include_router(
        AgentRuntime(dag.specs.values(), settings=settings, broker=running).router()
    )
    try:
        await running.connect()
        await ensure_streams(running.connection.jetstream(), settings)
        await running.start()
        yield running
    finally:
        await running.stop()
        await server.stop()


async def run(broker: NatsBroker, product: ProductInput | None = None) -> tuple[str, WorkflowDone]:
    owner = f"f{uuid.uuid4().hex[:8]}"
    product = product or ProductInput(product_id="p1")
    async with WorkflowWatcher(broker, owner) as watcher:
        upload = await Uploader(broker).upload(product, tenant=owner)
        done = await watcher.wait([upload.workflow_id], timeout_s=20)
    return owner, done[upload.workflow_id]


async def test_a_required_failure_fails_the_workflow_with_its_reason() -> None:
    async with serving(SPECS) as broker:
        owner, done = await run(broker)
        js = broker.connection.jetstream()
        info = await js.stream_info(
            subjects.STREAM_REQUESTS, subjects_filter=f"llm.request.{owner}.>"
        )
    assert not done.ok
    assert done.reason == "fatal: ValueError: no weight given"
    assert info.state.messages == 0  # zero-call agents call nothing


async def test_a_failed_workflow_books_no_baseline_for_its_zero_call_work() -> None:
    async with serving(SPECS) as broker:
        owner, done = await run(broker)
        events = await ledger_events(broker, owner)
    assert not done.ok
    # alpha and gamma finished, but the listing was not delivered: no saving is claimed.
    assert events == [] and done.baseline_micro_usd == 0


async def test_optional_failures_are_gaps_in_a_finished_listing() -> None:
    async with serving(s for s in SPECS if s.name != "fatal") as broker:
        _owner, done = await run(broker)
    assert done.ok, done.reason
    assert done.missing == ["beta", "delta"]  # beta failed, delta needed it
    listing: Any = done.listing
    assert listing["operations"]["gamma"] == {"saw": ["alpha", UPLOAD]}  # ran without beta
    assert listing["operations"]["omega"] == {"saw": ["gamma", UPLOAD]}


async def test_an_agent_that_raises_on_every_delivery_fails_and_its_workflow_still_ends() -> None:
    specs = (zero("alpha", (UPLOAD,)), zero("gamma", ("alpha",), compute=crashing))
    async with serving(specs, max_deliver=3) as broker:
        _owner, done = await run(broker)
    assert not done.ok
    # Three deliveries (redelivered after 0.5 s, then 1 s), then the agent failed with why.
    assert done.reason == (
        "gamma: gave up after 3 deliveries: RuntimeError: the checkpoint store is away"
    )


async def test_an_input_the_naive_call_could_not_have_made_books_no_baseline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A naive call on notes past the premium model's context window would have been refused
    (as routing refuses it): nothing was saved against it, and nothing is booked. The
    Uploader refuses such notes itself (agents.limits); lifting its bound here stands in for
    another client publishing the upload, which the runtime must still hold."""
    monkeypatch.setattr("agents.upload.product_size_problem", lambda product: None)
    settings = Settings()
    window = PriceCatalog.load().get(settings.baseline_model).context_window
    small = ProductInput(product_id="p1", notes="blue ceramic mug")
    large = ProductInput(product_id="p2", notes="blue ceramic mug. " * (window * 4 // 18 + 1))
    async with serving([zero("alpha", (UPLOAD,))]) as broker:
        owner, done = await run(broker, small)
        (booked,) = await ledger_events(broker, owner)
        big_owner, big = await run(broker, large)
        refused = await ledger_events(broker, big_owner)
    assert done.ok and big.ok, (done.reason, big.reason)
    assert booked.lever is Lever.ZERO_CALL and booked.baseline_micro_usd > 0
    assert done.baseline_micro_usd == booked.baseline_micro_usd
    assert big.baseline_micro_usd == 0 and refused == []
