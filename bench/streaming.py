"""Time to first text on /v1 with stream=True: relayed as generated, against a whole answer.

One embedded stack (provider, router, ledger, API) with the simulated provider set to a fixed
time to first token and a fixed time per output token, driven by the official openai client.
Peers, interleaved in one run on fresh prompts (no cache hits):
- relayed: stream=True, as the endpoint now answers it (text written as the provider streams);
- whole: stream=False, the answer written when complete, which is when stream=True used to
  write its first chunk too (api/openai_response.stream_events, before this change).
Figures, milliseconds at the client, median and p90 over the requests:
- first_text_ms: request sent to the first content text received;
- complete_ms: request sent to the whole answer received.

    .venv/bin/python -m bench.streaming [--requests 30]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

from openai import AsyncOpenAI

from bench.report import table, write
from bus.logs import configure
from bus.settings import Settings
from flipsync.stack import Service, start_stack
from simulator.config import SimConfig

KEY = "sk-bench-" + uuid.uuid4().hex
TENANT = "benchstream"
FIRST_TOKEN_MS = 300.0
PER_TOKEN_MS = 15.0
MAX_TOKENS = 200


def prompt() -> str:
    """A fresh product-description prompt (unique: no cache serves it)."""
    return f"Write a product description for a walnut side table, lot {uuid.uuid4().hex}."


async def relayed(client: AsyncOpenAI) -> tuple[float, float]:
    """(first text, complete) in ms for one streamed call."""
    started = time.perf_counter()
    first = 0.0
    stream = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": prompt()}],
        max_tokens=MAX_TOKENS,
        stream=True,
        stream_options={"include_usage": True},
    )
    async for chunk in stream:
        if not first and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter()
    done = time.perf_counter()
    return (first - started) * 1000, (done - started) * 1000


async def whole(client: AsyncOpenAI) -> tuple[float, float]:
    """(first text, complete) in ms for one non-streamed call: both when the answer lands."""
    started = time.perf_counter()
    await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": prompt()}],
        max_tokens=MAX_TOKENS,
    )
    done = (time.perf_counter() - started) * 1000
    return done, done


def summary(samples: list[tuple[float, float]]) -> dict[str, float]:
    """Median and p90 of each figure."""
    out: dict[str, float] = {}
    for index, name in enumerate(("first_text_ms", "complete_ms")):
        values = sorted(s[index] for s in samples)
        out[f"{name}_median"] = round(statistics.median(values), 1)
        out[f"{name}_p90"] = round(values[int(0.9 * (len(values) - 1))], 1)
    return out


async def run(requests: int) -> dict[str, object]:
    """Both peers, interleaved, on one stack."""
    settings = Settings(api_port=0, api_keys={KEY: TENANT})
    sim = SimConfig(latency_ms=FIRST_TOKEN_MS, per_output_token_ms=PER_TOKEN_MS)
    services = [Service.PROVIDER, Service.ROUTER, Service.LEDGER, Service.API]
    stack = await start_stack(settings, services, sim_config=sim)
    try:
        assert stack.api is not None
        async with AsyncOpenAI(
            base_url=f"{stack.api.url}/v1", api_key=KEY, max_retries=0
        ) as client:
            await whole(client)  # warm-up: connections, first-call imports
            samples: dict[str, list[tuple[float, float]]] = {"relayed": [], "whole": []}
            for _ in range(requests):
                samples["relayed"].append(await relayed(client))
                samples["whole"].append(await whole(client))
    finally:
        await stack.stop()
    return {
        "requests_per_peer": requests,
        "sim_first_token_ms": FIRST_TOKEN_MS,
        "sim_per_output_token_ms": PER_TOKEN_MS,
        "max_tokens": MAX_TOKENS,
        "peers": {name: summary(values) for name, values in samples.items()},
    }


def main() -> None:
    """Run, print the table, write bench/results/streaming.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()
    figures = asyncio.run(run(args.requests))
    peers = figures["peers"]
    assert isinstance(peers, dict)
    rows = [
        (f"{name} {figure}", f"{value:.1f}")
        for name, values in peers.items()
        for figure, value in values.items()
    ]
    print(table(rows, "/v1 stream=True: time to first text vs whole answer (ms, client side)"))
    print(f"wrote {write('streaming', figures)}")


if __name__ == "__main__":
    configure(service=True)  # warnings; FastStream's routine records only with -v
    main()
