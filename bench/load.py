"""Load shapes of the benchmarks: closed loop (a fixed number in flight) and open loop (a fixed
arrival rate, whatever the answers' pace), and percentiles of their latencies."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

Call = Callable[[int], Awaitable[None]]
"""One call of a benchmark, given its sequence number (so each can send a unique text)."""


async def closed_loop(n: int, in_flight: int, call: Call, first: int = 0) -> float:
    """Requests per second of calls first..first+n-1, with in_flight outstanding at any time."""
    queue = iter(range(first, first + n))

    async def lane() -> None:
        for i in queue:
            await call(i)

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(in_flight)))
    return n / (time.perf_counter() - started)


async def open_loop(seconds: float, rate: float, call: Call, first: int = 0) -> list[float]:
    """Latencies (ms) of calls started at a fixed rate for seconds, whatever the answers' pace."""
    latencies: list[float] = []

    async def timed(i: int) -> None:
        started = time.perf_counter()
        await call(i)
        latencies.append((time.perf_counter() - started) * 1000)

    tasks = []
    start = time.perf_counter()
    for k in range(int(seconds * rate)):
        delay = start + k / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(timed(first + k)))
    await asyncio.gather(*tasks)
    return latencies


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (1..99) of values."""
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]
