"""A provider call made as a stream (router.providers.streaming): each text piece relayed in
order as it arrives, the cost settled from the stream's last usage chunk, and a stream without
one booked at its bound rather than at zero."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

from openai.types.chat import ChatCompletionChunk
from pydantic import SecretStr

from bus.messages import ChatMessage, LlmRequest, Usage
from cost_ledger.catalog import PriceCatalog
from cost_ledger.pricing import cost_micro_usd
from router.providers.client import ProviderClient
from router.providers.config import ProviderConfig
from router.providers.streaming import bound_usage, relay_chunks
from simulator.config import SimConfig
from simulator.server import SimulatedProvider

FIXTURE = Path(__file__).parent / "fixtures" / "providers" / "openai_stream_usage.sse"
CATALOG = PriceCatalog.load()
REQUEST = LlmRequest(
    id="r1",
    tenant="t1",
    agent="a1",
    messages=[ChatMessage(role="user", content="Describe a brass desk lamp from the 1950s.")],
    max_output_tokens=300,
    stream=True,
)


class Recorder:
    """A relay that keeps what it was sent, per call."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def begin(self) -> None:
        """A new call."""
        self.calls.append([])

    async def send(self, text: str, model: str) -> None:
        """Keep the piece."""
        self.calls[-1].append(text)


async def recorded(lines: list[str]) -> AsyncIterator[ChatCompletionChunk]:
    """The recorded SSE lines as the SDK's chunks."""
    for line in lines:
        data = line.removeprefix("data: ").strip()
        if line.startswith("data: ") and data != "[DONE]":
            yield ChatCompletionChunk.model_validate(json.loads(data))


async def test_recorded_stream_is_relayed_and_settled_from_its_usage_chunk() -> None:
    lines = FIXTURE.read_text().splitlines()
    relay = Recorder()
    summary, usage = await relay_chunks(
        recorded(lines), relay, fallback_usage=Usage(input_tokens=999, output_tokens=999)
    )
    assert relay.calls == [["Hello", " there"]]
    assert (summary.content, summary.finish_reason) == ("Hello there", "length")
    assert usage == Usage(input_tokens=40, output_tokens=12)
    # gpt-4o-mini: 40 x $0.15 + 12 x $0.60 = 13.2 -> 13.
    assert cost_micro_usd(CATALOG.get(summary.model), usage) == 13


async def test_a_stream_cut_before_its_usage_is_booked_at_its_bound() -> None:
    lines = FIXTURE.read_text().splitlines()[:-4]  # no usage chunk
    bound = bound_usage(REQUEST)
    summary, usage = await relay_chunks(recorded(lines), Recorder(), fallback_usage=bound)
    assert summary.usage is None
    assert usage == bound and usage.output_tokens == REQUEST.max_output_tokens
    assert usage.input_tokens > 0


async def test_the_client_streams_from_the_simulator_and_prices_its_usage() -> None:
    async with SimulatedProvider(SimConfig(latency_ms=0)) as sim:
        config = ProviderConfig(
            name="sim", base_url=sim.base_url, api_key=SecretStr("sk-sim"),
            models=("gpt-4o-mini",), simulated=True,
        )  # fmt: skip
        client = ProviderClient(config, timeout_s=10)
        relay = Recorder()
        try:
            completion = await client.complete(REQUEST, "gpt-4o-mini", 10, relay)
        finally:
            await client.close()
        stats = await sim.stats()
    assert len(relay.calls) == 1 and len(relay.calls[0]) > 2  # piece by piece
    assert "".join(relay.calls[0]) == completion.content != ""
    assert completion.finish_reason == "stop"
    assert completion.usage.input_tokens == stats.prompt_tokens > 0
    assert completion.usage.output_tokens == stats.completion_tokens > 0
