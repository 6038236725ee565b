"""The fine-tuning pipeline end to end against the simulated provider: the best answers as
JSONL with an evaluation set, upload, job, poll, the model priced and offered at run time,
and served to its experiment arm by the running router."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import aiohttp
import openai
import pytest
import redis.asyncio as aioredis

from bus import subjects
from bus.codec import encode
from bus.llm_client import LlmClient
from bus.messages import LlmResult, QualitySignal
from cost_ledger.catalog import PriceCatalog
from cost_ledger.pricing import cost_micro_usd
from flipsync.stack import Stack
from optimizer import keys, models
from optimizer.errors import FineTuneError
from optimizer.finetune import Dataset, collect, fine_tune
from optimizer.flag_store import publish_change
from optimizer.pipeline import run_pipeline
from tests.helpers import eventually, make_request, router_stack

TASK = "text_generation"


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Stack]:
    """An embedded stack with the simulated provider, the router and the ledger."""
    async with router_stack() as running:
        yield running


def sim_client(stack: Stack) -> openai.AsyncOpenAI:
    """An openai client of the stack's simulated provider."""
    assert stack.sim is not None
    return openai.AsyncOpenAI(base_url=stack.sim.base_url, api_key="simulated")


async def answered(stack: Stack, tenant: str, count: int, valid: int) -> list[LlmResult]:
    """count answered requests of the task type, the first `valid` judged valid."""
    client = LlmClient(stack.broker)
    results = await asyncio.gather(
        *(
            client.request(
                make_request(tenant=tenant, agent="listing", text=f"Title for mug {tenant}-{i}"),
                timeout_s=20,
            )
            for i in range(count)
        )
    )
    for i, result in enumerate(results):
        signal = QualitySignal(
            request_id=result.request_id,
            tenant=tenant,
            agent="listing",
            task_type=TASK,
            model=result.model,
            valid=i < valid,
            problems=[] if i < valid else ["title: too short"],
        )
        await stack.broker.publish(
            encode(signal), subjects.quality(tenant), stream=subjects.STREAM_WORKFLOW
        )
    return results


async def test_the_pipeline_runs_end_to_end_and_its_model_enters_an_experiment(
    stack: Stack,
) -> None:
    tenant = f"ft{uuid.uuid4().hex[:8]}"
    await answered(stack, tenant, count=40, valid=32)
    js = stack.broker.connection.jetstream()
    catalog = PriceCatalog.load()  # not the router's: it learns the model through Redis
    async with sim_client(stack) as openai_client:
        run = await run_pipeline(
            js=js,
            redis=stack.redis,
            client=openai_client,
            catalog=catalog,
            task_type=TASK,
            base_model="gpt-4o-mini",
            tenant=tenant,
            percent=50,
            min_samples=20,
            poll_s=0.05,
            timeout_s=20,
        )
    dataset = run.dataset
    assert len(dataset.train) + len(dataset.eval) == 32 and dataset.eval  # only valid answers
    example = dataset.train[0]["messages"]
    assert example[0]["role"] == "user" and example[-1]["role"] == "assistant"
    assert json.loads(example[-1]["content"])  # the answer that passed, as it was given
    tuned = run.outcome.model
    assert tuned is not None and tuned.startswith("ft:gpt-4o-mini:")
    assert run.outcome.validation_file is not None
    assert str(run.price.input) == "0.30" and str(run.price.output) == "1.20"
    await publish_change(stack.broker.connection, run.change)

    client = LlmClient(stack.broker)

    async def in_the_experiment() -> bool:
        # A change applies once each replica reloaded its flags (router.flags.live), as
        # tests/test_flags.py waits for too: a request answered meanwhile has no arm.
        probe = make_request(tenant=tenant, agent="listing", text=f"A probe {uuid.uuid4()}")
        return (await client.request(probe, timeout_s=20)).arm is not None

    await eventually(in_the_experiment, timeout_s=10)
    arms: dict[str, list[LlmResult]] = {}
    for i in range(40):
        request = make_request(tenant=tenant, agent="listing", text=f"A new mug {i}")
        result = await client.request(request, timeout_s=20)
        assert result.ok, result.reason
        arms.setdefault(result.arm or "-", []).append(result)
    name = run.experiment.name
    assert set(arms) == {f"{name}/current", f"{name}/tuned"}, set(arms)
    for result in arms[f"{name}/tuned"]:
        assert result.model == tuned
        assert result.cost_micro_usd == cost_micro_usd(run.price, result.usage) > 0
    assert {r.model for r in arms[f"{name}/current"]} == {"gpt-4o-mini"}


async def test_a_failed_job_is_reported_with_its_reason(stack: Stack) -> None:
    assert stack.sim is not None
    async with aiohttp.ClientSession() as http:
        put = await http.put(f"{stack.sim.url}/_sim/fine_tuning", json={"outcome": "failed"})
        assert put.status == 200
    examples = [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]}
        for i in range(12)
    ]
    try:
        async with sim_client(stack) as client:
            with pytest.raises(FineTuneError, match="failed: The job failed"):
                await fine_tune(
                    client,
                    Dataset(task_type=TASK, train=examples),
                    base_model="gpt-4o-mini",
                    poll_s=0.05,
                    timeout_s=10,
                )
    finally:
        async with aiohttp.ClientSession() as http:
            await http.put(f"{stack.sim.url}/_sim/fine_tuning", json={"outcome": "succeeded"})


async def test_too_little_data_is_refused_before_any_upload(stack: Stack) -> None:
    tenant = f"few{uuid.uuid4().hex[:6]}"
    await answered(stack, tenant, count=6, valid=4)
    dataset = await collect(stack.broker.connection.jetstream(), TASK, tenant=tenant)
    assert len(dataset.train) + len(dataset.eval) == 4
    with pytest.raises(FineTuneError, match="needs at least 10"):
        await fine_tune(sim_client(stack), dataset, base_model="gpt-4o-mini", poll_s=0.05)
    # (refused before the client is used: it opened no connection)


async def test_the_simulator_refuses_a_file_without_answers(stack: Stack) -> None:
    line = json.dumps({"messages": [{"role": "user", "content": "q"}]}) + "\n"
    lines = line * 12
    async with sim_client(stack) as client:
        upload = await client.files.create(file=("bad.jsonl", lines.encode()), purpose="fine-tune")
        with pytest.raises(openai.BadRequestError, match="no assistant message"):
            await client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=upload.id)
        with pytest.raises(openai.NotFoundError):
            await client.fine_tuning.jobs.retrieve("ftjob-nope")


async def test_registered_models_change_the_catalog_version(redis_client: aioredis.Redis) -> None:
    for name in ("ft:gpt-4o-mini:acme:one", "ft:gpt-4o:acme:two"):
        base = name.split(":")[1]
        await models.save(redis_client, models.registration_for(name, base))
    await redis_client.hset(keys.MODELS, "broken", b"{not json")
    catalog = PriceCatalog.load()
    plain = catalog.version
    prices = await models.load_registered(redis_client, catalog)
    assert sorted(p.name for p in prices) == ["ft:gpt-4o-mini:acme:one", "ft:gpt-4o:acme:two"]
    assert catalog.version == f"{plain}+ft2" and "ft:gpt-4o:acme:two" in catalog
    await models.load_registered(redis_client, catalog)  # a reload registers nothing new
    assert catalog.version == f"{plain}+ft2"
    assert PriceCatalog.load().version == plain  # another catalog is untouched
