"""bench/call_counts: what one unique request costs the router, counted rather than timed.

Timing on a shared 2-core machine moves with its neighbours; counts do not. This starts the
simulated provider (no latency) and the router in this process, sends unique requests (no
cache can answer them) through the requester, and counts per request:

- Python function calls under cProfile (the router, the requester and the simulated
  provider together: the same work in every run, so two versions compare exactly);
- Redis commands, by the first FlipSync frame that sent them (router/stages/budget.py...);
- NATS publishes, by the same;
- provider calls (packing puts several requests in one call: standard and bulk only).

Two phases: standard priority (packing on) and interactive (never packed), each with
IN_FLIGHT requests in flight. Run: `.venv/bin/python -m bench.call_counts [--requests N]`.
Writes bench/results/call_counts.json and prints a short table. Compare two versions by
running this from each tree (`PYTHONSAFEPATH=1 PYTHONPATH=<tree>`).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import cProfile
import pstats
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.report import table, write

IN_FLIGHT = 50
OWN = ("router", "bus", "cost_ledger", "flipsync", "agents", "simulator")
"""FlipSync's packages: a command is attributed to the first frame from one of these."""
ROOT = Path(__file__).resolve().parent.parent


_OWN_FILES: dict[str, str | None] = {}
"""co_filename -> its path under the repository when it is FlipSync's own, else None."""


def _own(filename: str) -> str | None:
    if filename not in _OWN_FILES:
        try:
            rel = Path(filename).resolve().relative_to(ROOT)
        except ValueError:
            rel = None
        own = rel is not None and rel.parts[0] in OWN and rel.name != "redis_pipelining.py"
        _OWN_FILES[filename] = rel.as_posix() if own and rel is not None else None
    return _OWN_FILES[filename]


def _site() -> str:
    """The first FlipSync frame (file:function) on the stack, outside the counting wrapper."""
    frame = sys._getframe(2)
    while frame is not None:
        own = _own(frame.f_code.co_filename)
        if own is not None:
            return f"{own}:{frame.f_code.co_name}"
        frame = frame.f_back  # type: ignore[assignment]
    return "(elsewhere)"


@contextlib.contextmanager
def counting(owner: Any, name: str, tally: collections.Counter[str]) -> Iterator[None]:
    """Count every await of owner.name (an async method) by call site, while inside."""
    original: Callable[..., Any] = getattr(owner, name)

    async def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        tally[_site()] += 1
        return await original(self, *args, **kwargs)

    setattr(owner, name, counted)
    try:
        yield
    finally:
        setattr(owner, name, original)


def _request(priority: Any, n: int) -> Any:
    """A unique small structured request (packable at standard priority)."""
    from bus.messages import ChatMessage, LlmRequest
    from tests.helpers import TITLE_SCHEMA as schema  # the tests' small structured output

    text = f"Write a title for item {n} ({uuid.uuid4().hex[:12]}): a teal stoneware mug."
    return LlmRequest(
        id=uuid.uuid4().hex,
        tenant="bench",
        agent="ebay_listing",
        task_type="text_generation",
        messages=[ChatMessage(role="user", content=text)],
        max_output_tokens=60,
        output_schema=schema,
        priority=priority,
    )


async def _acked(stack: Any, within_s: float = 30.0) -> None:
    """Wait until the router has acked every request it took (its work on them is done)."""
    from bus import subjects

    js = stack.broker.connection.jetstream()
    deadline = asyncio.get_running_loop().time() + within_s
    while asyncio.get_running_loop().time() < deadline:
        info = await js.consumer_info(subjects.STREAM_REQUESTS, subjects.DURABLE_ROUTER)
        if info.num_pending == 0 and info.num_ack_pending == 0:
            return
        await asyncio.sleep(0.01)


async def _phase(stack: Any, priority: Any, requests: int) -> dict[str, Any]:
    """Send unique requests of one priority, IN_FLIGHT at a time, and count what they cost."""
    from nats.aio.client import Client

    from bus.llm_client import LlmClient
    from bus.redis_pipelining import AutoPipelinedRedis

    client = LlmClient(stack.broker)
    queue = [_request(priority, n) for n in range(requests)]
    redis_calls: collections.Counter[str] = collections.Counter()
    publishes: collections.Counter[str] = collections.Counter()
    failed: collections.Counter[str] = collections.Counter()

    async def worker() -> None:
        while queue:
            result = await client.request(queue.pop(), timeout_s=60)
            if not result.ok:
                failed[f"{result.error_code}: {result.reason[:80]}"] += 1

    before = (await stack.sim.stats()).calls if stack.sim is not None else 0
    profile = cProfile.Profile()
    with (
        counting(AutoPipelinedRedis, "execute_command", redis_calls),
        counting(Client, "publish", publishes),
    ):
        profile.enable()
        await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
        # The bookkeeping after each result (settle, dedup's finish, the ledger event, the
        # ack) belongs to its request: counted here, not spilled into the next phase.
        await _acked(stack)
        profile.disable()
    calls = (await stack.sim.stats()).calls - before if stack.sim is not None else 0
    stats = pstats.Stats(profile)
    own = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:15]  # type: ignore[attr-defined]
    return {
        "requests": requests,
        "failed": sum(failed.values()),
        "failures": dict(failed.most_common(5)),
        "provider_calls_per_request": round(calls / requests, 3),
        "function_calls_per_request": round(stats.total_calls / requests),  # type: ignore[attr-defined]
        "redis_commands_per_request": round(sum(redis_calls.values()) / requests, 2),
        "redis_commands_by_site": {
            k: round(v / requests, 2) for k, v in redis_calls.most_common(20)
        },
        "nats_publishes_per_request": round(sum(publishes.values()) / requests, 2),
        "nats_publishes_by_site": {k: round(v / requests, 2) for k, v in publishes.most_common(10)},
        "top_own_time": [
            f"{Path(f).name}:{line}:{fn} {round(t[2] / requests * 1e6)} us"
            for (f, line, fn), t in own
        ],
    }


async def run(requests: int) -> dict[str, Any]:
    """Both phases on one embedded stack (provider and router; the ledger is not started)."""
    from bus.messages import Priority
    from bus.settings import Settings
    from flipsync.stack import Service, start_stack

    settings = Settings(sim_latency_ms=0)
    stack = await start_stack(settings, {Service.PROVIDER, Service.ROUTER})
    try:
        await _phase(stack, Priority.INTERACTIVE, 50)  # warm: imports, connections, scripts
        return {
            "standard": await _phase(stack, Priority.STANDARD, requests),
            "interactive": await _phase(stack, Priority.INTERACTIVE, requests),
        }
    finally:
        await stack.stop()


def main() -> None:
    """Run both phases, write the figures, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="requests per phase")
    args = parser.parse_args()
    phases = asyncio.run(run(args.requests))
    figures = {
        "what": "per unique request through the embedded router and simulated provider, "
        f"{IN_FLIGHT} in flight, counted (cProfile calls, Redis commands, NATS publishes)",
        **phases,
    }
    path = write("call_counts", figures)
    rows = []
    for name, p in phases.items():
        rows += [
            (f"{name}: function calls", str(p["function_calls_per_request"])),
            (f"{name}: Redis commands", str(p["redis_commands_per_request"])),
            (f"{name}: NATS publishes", str(p["nats_publishes_per_request"])),
            (f"{name}: provider calls", str(p["provider_calls_per_request"])),
        ]
    print(table(rows, "bench/call_counts (per unique request)"))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
