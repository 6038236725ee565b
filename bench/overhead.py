"""bench/overhead: what FlipSync's pipeline costs on top of NATS and of a direct provider call.

Three measurements in one run, on this machine, with the simulated provider:
  1. raw nats-py request/reply, 200 in flight (the floor any NATS pipeline stands on);
  2. the FlipSync pipeline (JetStream request, router stages, dispatch, result, ledger),
     provider latency 0, 200 in flight, max throughput;
  3. at a fixed 500 req/s: end-to-end latency through FlipSync minus the latency of the same
     calls made directly to the simulated provider, at p50 and p99.

Run: `make bench` or `.venv/bin/python -m bench.overhead [--quick]`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

import nats
import openai
import uvloop
from nats.aio.msg import Msg

from bench.report import table, write
from bus.embedded import EmbeddedNats
from bus.llm_client import LlmClient
from bus.settings import Settings
from flipsync.stack import Service, Stack, start_stack
from tests.helpers import make_request

IN_FLIGHT = 200
RATE = 500


async def closed_loop(n: int, in_flight: int, call: Callable[[int], Awaitable[None]]) -> float:
    """Requests per second of n calls with in_flight of them outstanding at any time."""
    queue = iter(range(n))

    async def lane() -> None:
        for i in queue:
            await call(i)

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(in_flight)))
    return n / (time.perf_counter() - started)


async def open_loop(
    seconds: float, rate: int, call: Callable[[int], Awaitable[None]]
) -> list[float]:
    """Latencies (ms) of calls started at a fixed rate, whatever the answers' pace."""
    latencies: list[float] = []

    async def timed(i: int) -> None:
        started = time.perf_counter()
        await call(i)
        latencies.append((time.perf_counter() - started) * 1000)

    tasks = []
    start = time.perf_counter()
    for i in range(int(seconds * rate)):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(timed(i)))
    await asyncio.gather(*tasks)
    return latencies


async def raw_nats_rps(n: int) -> float:
    """nats-py request/reply against an echo responder on an embedded nats-server."""
    server = EmbeddedNats()
    await server.start()
    responder, requester = await nats.connect(server.url), await nats.connect(server.url)
    try:

        async def echo(msg: Msg) -> None:
            await msg.respond(msg.data)

        await responder.subscribe("bench.echo", cb=echo)
        payload = b"x" * 512

        async def call(_: int) -> None:
            await requester.request("bench.echo", payload, timeout=10)

        await closed_loop(min(n, 2000), IN_FLIGHT, call)  # warm-up
        return await closed_loop(n, IN_FLIGHT, call)
    finally:
        await requester.close()
        await responder.close()
        await server.stop()


def pipeline_call(stack: Stack) -> Callable[[int], Awaitable[None]]:
    """One LLM request through the whole FlipSync pipeline."""
    client = LlmClient(stack.broker)

    async def call(i: int) -> None:
        result = await client.request(make_request(tenant="bench", text=f"item {i}"), 60)
        if not result.ok:
            raise RuntimeError(result.reason)

    return call


def direct_call(base_url: str) -> tuple[openai.AsyncOpenAI, Callable[[int], Awaitable[None]]]:
    """The same request straight to the simulated provider with the openai client."""
    client = openai.AsyncOpenAI(base_url=base_url, api_key="sim", max_retries=0)
    schema = make_request().output_schema
    assert schema is not None

    async def call(i: int) -> None:
        await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": f"item {i}"}],
            response_format={
                "type": "json_schema",
                "json_schema": {"name": schema.name, "schema": schema.schema, "strict": True},
            },
            max_completion_tokens=100,
        )

    return client, call


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0..100)."""
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


async def main(quick: bool) -> None:
    """Run the three measurements and write bench/results/overhead.json."""
    n = 2000 if quick else 10000
    seconds = 3.0 if quick else 8.0
    raw = await raw_nats_rps(n)
    services = [Service.PROVIDER, Service.ROUTER, Service.LEDGER]
    stack = await start_stack(Settings(sim_latency_ms=0), services)
    try:
        assert stack.sim is not None
        call = pipeline_call(stack)
        await closed_loop(500, IN_FLIGHT, call)  # warm-up
        pipeline = await closed_loop(n // 2, IN_FLIGHT, call)
        through = await open_loop(seconds, RATE, call)
        client, direct = direct_call(stack.sim.base_url)
        try:
            straight = await open_loop(seconds, RATE, direct)
        finally:
            await client.close()
    finally:
        await stack.stop()
    figures = {
        "raw_nats_rps": round(raw, 1),
        "pipeline_rps": round(pipeline, 1),
        "ratio": round(pipeline / raw, 4),
        "overhead_p50_ms": round(pct(through, 50) - pct(straight, 50), 2),
        "overhead_p99_ms": round(pct(through, 99) - pct(straight, 99), 2),
        "pipeline_p50_ms": round(pct(through, 50), 2),
        "pipeline_p99_ms": round(pct(through, 99), 2),
        "direct_p50_ms": round(pct(straight, 50), 2),
        "direct_p99_ms": round(pct(straight, 99), 2),
        "fixed_rate_rps": RATE,
        "in_flight": IN_FLIGHT,
        "provider": "simulated, latency 0",
        "quick": quick,
    }
    path = write("overhead", figures)
    rows = [(key, str(value)) for key, value in figures.items()]
    print(table(rows, "bench/overhead (simulated provider)"))
    print(f"written to {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer requests, for a smoke run")
    uvloop.run(main(parser.parse_args().quick))
