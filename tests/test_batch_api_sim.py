"""The simulated provider's /v1/files and /v1/batches, driven by the openai client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import openai
import pytest

from router.batching.batch_api import parse_output
from simulator.config import Faults, SimConfig
from simulator.server import SimulatedProvider
from tests.helpers import TITLE_SCHEMA

DELAY_S = 0.3


def line(custom_id: str, text: str, model: str = "gpt-4o-mini") -> str:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": text}],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "title", "schema": TITLE_SCHEMA.schema},
        },
    }
    return json.dumps(
        {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}
    )


@pytest.fixture
async def sim() -> AsyncIterator[SimulatedProvider]:
    """A simulated provider whose batches complete after DELAY_S."""
    async with SimulatedProvider(SimConfig(batch_completion_s=DELAY_S)) as provider:
        yield provider


@pytest.fixture
async def client(sim: SimulatedProvider) -> AsyncIterator[openai.AsyncOpenAI]:
    """The openai client pointed at it."""
    async with openai.AsyncOpenAI(base_url=sim.base_url, api_key="sim", max_retries=0) as c:
        yield c


async def upload(client: openai.AsyncOpenAI, lines: list[str]) -> str:
    uploaded = await client.files.create(
        file=("in.jsonl", ("\n".join(lines) + "\n").encode()), purpose="batch"
    )
    return uploaded.id


async def finished(client: openai.AsyncOpenAI, batch_id: str) -> openai.types.Batch:
    async with asyncio.timeout(10):
        while True:
            batch = await client.batches.retrieve(batch_id)
            if batch.status in ("completed", "failed", "cancelled", "expired"):
                return batch
            await asyncio.sleep(0.05)


async def test_a_batch_completes_after_its_delay_with_one_answer_per_line(
    sim: SimulatedProvider, client: openai.AsyncOpenAI
) -> None:
    lines = [line(f"req-{i}", f"A title for a teal mug number {i}") for i in range(3)]
    file_id = await upload(client, lines)
    stored = await client.files.retrieve(file_id)
    assert stored.purpose == "batch" and stored.bytes > 0
    assert (await client.files.content(file_id)).content.decode().count("custom_id") == 3

    batch = await client.batches.create(
        input_file_id=file_id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"flipsync_window": "w1"},
    )
    assert batch.status == "validating" and batch.metadata == {"flipsync_window": "w1"}
    assert (await client.batches.retrieve(batch.id)).status == "in_progress"
    assert (await sim.stats()).batch_calls == 0  # nothing answered before the delay

    done = await finished(client, batch.id)
    assert done.status == "completed" and done.output_file_id and done.error_file_id is None
    assert done.request_counts is not None and done.request_counts.completed == 3
    output = await client.files.content(done.output_file_id)
    results = parse_output(output.content)
    assert sorted(results) == ["req-0", "req-1", "req-2"]
    for result in results.values():
        assert not result.problem and result.usage is not None
        assert json.loads(result.content)["title"]
    stats = await sim.stats()
    assert (stats.batches, stats.batch_calls, stats.calls) == (1, 3, 0)
    assert stats.prompt_tokens == sum(r.usage.input_tokens for r in results.values() if r.usage)
    listed = await client.batches.list(limit=5)
    assert [b.id for b in listed.data] == [batch.id]


async def test_failed_lines_go_to_the_error_file(
    sim: SimulatedProvider, client: openai.AsyncOpenAI
) -> None:
    lines = [line("good", "A title for a mug"), line("bad", "A title", model="no-such-model")]
    batch = await client.batches.create(
        input_file_id=await upload(client, lines),
        endpoint="/v1/chat/completions",
        completion_window="24h",
    )
    done = await finished(client, batch.id)
    assert done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (1, 1)
    assert done.error_file_id is not None
    errors = parse_output((await client.files.content(done.error_file_id)).content)
    assert "404" in errors["bad"].problem and "no-such-model" in errors["bad"].problem


async def test_schema_invalid_fault_applies_to_batch_lines(
    sim: SimulatedProvider, client: openai.AsyncOpenAI
) -> None:
    await sim.set_faults(Faults(schema_invalid=1.0))
    batch = await client.batches.create(
        input_file_id=await upload(client, [line("one", "A title for a mug")]),
        endpoint="/v1/chat/completions",
        completion_window="24h",
    )
    done = await finished(client, batch.id)
    assert done.output_file_id is not None
    result = parse_output((await client.files.content(done.output_file_id)).content)["one"]
    assert "title" not in json.loads(result.content)  # valid JSON, broken schema


async def test_bad_input_fails_the_batch_or_the_request(client: openai.AsyncOpenAI) -> None:
    good = await upload(client, [line("a", "x")])
    with pytest.raises(openai.BadRequestError):
        await client.batches.create(
            input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h"
        )
    with pytest.raises(openai.BadRequestError):
        await client.batches.create(
            input_file_id=good,
            endpoint="/v1/embeddings",
            completion_window="24h",
        )
    duplicate = await upload(client, [line("a", "x"), line("a", "y")])
    batch = await client.batches.create(
        input_file_id=duplicate, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert batch.status == "failed" and batch.errors is not None
    assert batch.errors.data and "Duplicate custom_id" in (batch.errors.data[0].message or "")
    with pytest.raises(openai.NotFoundError):
        await client.batches.retrieve("batch_nope")
    with pytest.raises(openai.NotFoundError):
        await client.files.retrieve("file-nope")


async def test_a_batch_can_be_cancelled_before_it_completes(
    sim: SimulatedProvider, client: openai.AsyncOpenAI
) -> None:
    batch = await client.batches.create(
        input_file_id=await upload(client, [line("a", "x")]),
        endpoint="/v1/chat/completions",
        completion_window="24h",
    )
    cancelled = await client.batches.cancel(batch.id)
    assert cancelled.status == "cancelled"
    await asyncio.sleep(DELAY_S)  # past the delay, it must stay cancelled
    assert (await client.batches.retrieve(batch.id)).status == "cancelled"
    assert (await sim.stats()).batch_calls == 0
    with pytest.raises(openai.BadRequestError):
        await client.batches.cancel(batch.id)
