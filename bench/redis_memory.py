"""bench/redis_memory: the Redis memory each request leaves behind, and for how long.

Counted, not timed: the embedded stack (simulated provider at zero latency, router, ledger)
answers unique requests of each priority, and Redis's own accounting (INFO used_memory,
MEMORY USAGE of sampled keys, TTL) says what they left, grouped by key family (ids and
hashes taken out of the names). Families whose keys outlive a day are what a deployment
accumulates: their bytes per request times requests per retention window is the Redis a
load needs (docs/capacity.md). Writes bench/results/redis_memory.json and prints a table.

Run: `.venv/bin/python -m bench.redis_memory [--requests N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import re
import uuid
from typing import Any

from bench.report import table, write

SAMPLE = 20
"""Keys of each family whose size and TTL are read (MEMORY USAGE, TTL)."""
IN_FLIGHT = 100
DAY_S = 24 * 3600


def family(key: str) -> str:
    """A key's family: its name with request ids, hashes and numbers replaced."""
    key = re.sub(r"[0-9a-f]{32}", "<id>", key)
    key = re.sub(r"[0-9a-f]{16}", "<hash>", key)
    return re.sub(r"\d+", "<n>", key)


async def _requests(stack: Any, priority: Any, n: int) -> int:
    """Send n unique requests, IN_FLIGHT at a time; how many were answered ok."""
    from bus.llm_client import LlmClient
    from bus.messages import ChatMessage, LlmRequest

    client = LlmClient(stack.broker)
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def one(i: int) -> bool:
        request = LlmRequest(
            id=uuid.uuid4().hex,
            tenant="acme",
            agent="listing",
            task_type="text_generation",
            messages=[ChatMessage(role="user", content=f"Title for item {uuid.uuid4().hex} ({i})")],
            max_output_tokens=60,
            priority=priority,
        )
        async with gate:
            return (await client.request(request, timeout_s=120)).ok

    return sum(await asyncio.gather(*(one(i) for i in range(n))))


def _mean(sampled: list[tuple[int, int]]) -> float:
    return sum(size for size, _ in sampled) / len(sampled)


async def _count(redis: Any) -> collections.Counter[str]:
    """Keys by family."""
    counts: collections.Counter[str] = collections.Counter()
    async for raw in redis.scan_iter(count=1000):
        counts[family(raw.decode())] += 1
    return counts


async def _families(
    redis: Any, before: collections.Counter[str], requests: int
) -> dict[str, dict[str, Any]]:
    """Per key family added since before, most bytes first: keys per request, sampled bytes
    per key, the longest sampled TTL in seconds (-1: none)."""
    counts: collections.Counter[str] = collections.Counter()
    sampled: dict[str, list[tuple[int, int]]] = collections.defaultdict(list)
    async for raw in redis.scan_iter(count=1000):
        name = family(raw.decode())
        counts[name] += 1
        if len(sampled[name]) < SAMPLE:
            sampled[name].append((int(await redis.memory_usage(raw) or 0), await redis.ttl(raw)))
    counts.subtract(before)
    out: dict[str, dict[str, Any]] = {}
    for name, count in sorted(counts.items(), key=lambda kv: -kv[1] * _mean(sampled[kv[0]])):
        if count <= 0:
            continue
        sizes = [size for size, _ in sampled[name]]
        ttl = max(t for _, t in sampled[name])
        out[name] = {
            "keys_per_request": round(count / requests, 3),
            "bytes_per_key": round(sum(sizes) / len(sizes)),
            "ttl_s": ttl,
        }
    return out


async def run(requests: int) -> dict[str, Any]:
    """Both priorities, each on a fresh embedded stack; Redis measured after the ledger."""
    from bus.messages import Priority
    from bus.settings import Settings
    from flipsync.stack import Service, start_stack
    from tests.helpers import pipeline_quiet

    phases: dict[str, Any] = {}
    for priority in (Priority.STANDARD, Priority.INTERACTIVE):
        settings = Settings(sim_latency_ms=0, extra_agents=frozenset({"listing"}))
        services = {Service.PROVIDER, Service.ROUTER, Service.LEDGER}
        stack = await start_stack(settings, services)
        try:
            await _requests(stack, priority, 20)  # warm: scripts, budget markers, health
            await pipeline_quiet(stack)
            before = await _count(stack.redis)  # setup and warm-up: not per request
            used0 = int((await stack.redis.info("memory"))["used_memory"])
            ok = await _requests(stack, priority, requests)
            await pipeline_quiet(stack, timeout_s=120)
            used1 = int((await stack.redis.info("memory"))["used_memory"])
            families = await _families(stack.redis, before, requests)
        finally:
            await stack.stop()
        long_lived = {k: v for k, v in families.items() if v["ttl_s"] < 0 or v["ttl_s"] > DAY_S}
        phases[str(priority)] = {
            "requests": requests,
            "answered_ok": ok,
            "bytes_per_request": round((used1 - used0) / requests),
            "keys_per_request": round(sum(v["keys_per_request"] for v in families.values()), 2),
            "kept_over_a_day_bytes_per_request": round(
                sum(v["keys_per_request"] * v["bytes_per_key"] for v in long_lived.values())
            ),
            # Bytes times seconds kept: the Redis one request per second holds at steady
            # state (the settle markers' TTL depends on the day of the month: docs/capacity.md).
            "kept_over_a_day_gb_per_request_per_s": round(
                sum(
                    v["keys_per_request"] * v["bytes_per_key"] * v["ttl_s"]
                    for v in long_lived.values()
                    if v["ttl_s"] > 0
                )
                / 1e9,
                2,
            ),
            "families": families,
        }
    return phases


def _ttl(seconds: int) -> str:
    if seconds < 0:
        return "no expiry"
    if seconds >= DAY_S - 60:
        return f"expires in {seconds / DAY_S:.1f} d"
    return f"expires in {seconds} s"


def main() -> None:
    """Measure, write bench/results/redis_memory.json, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per priority")
    args = parser.parse_args()
    phases = asyncio.run(run(args.requests))
    figures = {
        "what": "Redis memory left per unique request (router and ledger, embedded stack, "
        "simulated provider): INFO used_memory before and after, and key families sampled "
        "with MEMORY USAGE and TTL",
        **phases,
    }
    path = write("redis_memory", figures)
    rows: list[tuple[str, str]] = []
    for name, phase in phases.items():
        rows.append((f"{name}: bytes per request", str(phase["bytes_per_request"])))
        rows.append((f"{name}: kept over a day", str(phase["kept_over_a_day_bytes_per_request"])))
        held = phase["kept_over_a_day_gb_per_request_per_s"]
        rows.append((f"{name}: Redis per request/s, GB", str(held)))
        for fam, fig in list(phase["families"].items())[:12]:
            shown = f"{fig['keys_per_request']} x {fig['bytes_per_key']} B, {_ttl(fig['ttl_s'])}"
            rows.append((f"  {fam}", shown))
    print(table(rows, "bench/redis_memory (per unique request)"))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
