"""bench/levers_packing: what packing and the Batch API save, on the embedded stack.

The same packable workload (one agent's instructions and schema over a catalog of distinct
products, standard priority) runs with packing off and on; a bulk workload runs the normal
way and through the Batch API. Each run gets a fresh stack (nats-server, redis-server, the
simulated provider, router and ledger), so no cache carries over; the other levers are off,
so each figure is this lever's alone. Upstream calls and tokens are counted by the simulated
provider; costs are the results' (and so the ledger's) micro-dollars.

Run: `.venv/bin/python -m bench.levers_packing`; writes bench/results/packing.json.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any

from bench.report import table, write
from bus.llm_client import LlmClient
from bus.logs import configure
from bus.messages import ChatMessage, LlmRequest, OutputSchema, Priority
from bus.settings import Settings
from flipsync.stack import Service, start_stack

AGENT = "bench_listing"
PACKABLE = 200
BULK = 60
SYSTEM = "You write marketplace listings. Answer only with JSON that matches the given schema."
INSTRUCTIONS = (
    "Write an eBay listing title of at most 80 characters for the product below. Lead with "
    "the brand and the product name, then the material and the colour. Do not use capitals "
    "for whole words, emoji or promotional words such as 'amazing' or 'best'.\n\n"
)
SCHEMA = OutputSchema(
    name="listing_title",
    schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["title", "keywords"],
        "properties": {
            "title": {"type": "string", "minLength": 10, "maxLength": 80},
            "keywords": {"type": "array", "items": {"type": "string"}, "maxItems": 5},
        },
    },
)
_BRANDS = ("Hearth & Co", "Nordvik", "Atelier Rue", "Kinto", "Mossbrook", "Tallow")
_THINGS = ("mug", "teapot", "vase", "serving bowl", "planter", "lamp base", "pitcher")
_MATERIALS = ("stoneware", "porcelain", "earthenware", "terracotta", "bone china")
_COLOURS = ("teal", "sand", "charcoal", "sage green", "cobalt", "ivory", "rust")
OFF: dict[str, Any] = {"enable_pattern": False, "enable_trim": False, "enable_exact_cache": False}
"""The other levers, off, so the figures are this lever's alone (unknown names are ignored)."""


def product(i: int) -> str:
    """The i-th product of the catalog: a seller's short notes."""
    return (
        f"Product {i}: {_BRANDS[i % 6]} {_COLOURS[i % 7]} {_MATERIALS[i % 5]} "
        f"{_THINGS[i % 7]}, item no. {1000 + i}, {8 + i % 20} cm, handmade, condition new."
    )


def workload(n: int, priority: Priority, tenant: str) -> list[LlmRequest]:
    """n requests of one agent over distinct products."""
    return [
        LlmRequest(
            id=uuid.uuid4().hex,
            tenant=tenant,
            agent=AGENT,
            task_type="text_generation",
            messages=[
                ChatMessage(role="system", content=SYSTEM),
                ChatMessage(role="user", content=INSTRUCTIONS + product(i)),
            ],
            output_schema=SCHEMA,
            max_output_tokens=120,
            priority=priority,
        )
        for i in range(n)
    ]


@dataclass(frozen=True, kw_only=True)
class Run:
    """What one workload cost on one configuration."""

    requests: int
    ok: int
    calls: int
    """Synchronous upstream calls."""
    batch_lines: int
    """Completions made as lines of a batch."""
    input_tokens: int
    output_tokens: int
    cost_micro_usd: int
    baseline_micro_usd: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        """The run as JSON-ready figures."""
        return dict(self.__dict__)


async def run(n: int, priority: Priority, **knobs: Any) -> Run:
    """n requests through a fresh embedded stack configured by knobs."""
    settings = Settings(
        sim_latency_ms=20,
        provider_max_retries=0,
        extra_agents=frozenset({AGENT}),
        **OFF,
        **knobs,
    )
    stack = await start_stack(settings, [Service.PROVIDER, Service.ROUTER, Service.LEDGER])
    try:
        assert stack.sim is not None
        client = LlmClient(stack.broker)
        requests = workload(n, priority, f"bench{uuid.uuid4().hex[:6]}")
        started = time.perf_counter()
        results = await asyncio.gather(*(client.request(r, timeout_s=120) for r in requests))
        seconds = time.perf_counter() - started
        stats = await stack.sim.stats()
    finally:
        await stack.stop()
    return Run(
        requests=n,
        ok=sum(r.ok for r in results),
        calls=stats.calls,
        batch_lines=stats.batch_calls,
        input_tokens=stats.prompt_tokens,
        output_tokens=stats.completion_tokens,
        cost_micro_usd=sum(r.cost_micro_usd for r in results),
        baseline_micro_usd=sum(r.baseline_micro_usd for r in results),
        seconds=round(seconds, 2),
    )


async def measure() -> dict[str, Any]:
    """Packing off and on over the packable workload; bulk the normal way and batched."""
    unpacked = await run(PACKABLE, Priority.STANDARD, pack_max_items=1, batch_api=False)
    packed = await run(PACKABLE, Priority.STANDARD)
    normal = await run(BULK, Priority.BULK, pack_max_items=1, batch_api=False)
    batched = await run(
        BULK, Priority.BULK, sim_batch_delay_s=0.5, batch_poll_s=0.2, batch_window_ms=500
    )
    return {
        "packing_call_reduction": round(unpacked.calls / max(packed.calls, 1), 2),
        "packing_input_tokens_before": unpacked.input_tokens,
        "packing_input_tokens_after": packed.input_tokens,
        "packing_input_token_ratio": round(packed.input_tokens / unpacked.input_tokens, 3),
        "packing_cost_before_micro_usd": unpacked.cost_micro_usd,
        "packing_cost_after_micro_usd": packed.cost_micro_usd,
        "packing_cost_ratio": round(packed.cost_micro_usd / unpacked.cost_micro_usd, 3),
        "batch_api_cost_before_micro_usd": normal.cost_micro_usd,
        "batch_api_cost_after_micro_usd": batched.cost_micro_usd,
        "batch_api_cost_ratio": round(batched.cost_micro_usd / normal.cost_micro_usd, 3),
        "batch_api_batch_lines": batched.batch_lines,
        "batch_api_sync_calls": batched.calls,
        "runs": {
            "packing_off": unpacked.as_dict(),
            "packing_on": packed.as_dict(),
            "bulk_normal": normal.as_dict(),
            "bulk_batch_api": batched.as_dict(),
        },
        "workload": {
            "packable_requests": PACKABLE,
            "bulk_requests": BULK,
            "pack_max_items": Settings().pack_max_items,
            "pack_window_ms": Settings().pack_window_ms,
            "provider": "simulated, 20 ms latency",
        },
    }


def packing_figures() -> dict[str, Any]:
    """The packing and Batch API figures (runs the stacks; about 15 s)."""
    return asyncio.run(measure())


def main() -> None:
    """Measure, print a table, write bench/results/packing.json."""
    figures = packing_figures()
    runs = figures["runs"]
    rows = [
        (
            "packing: upstream calls",
            f"{runs['packing_off']['calls']} -> {runs['packing_on']['calls']} "
            f"({figures['packing_call_reduction']}x fewer)",
        ),
        (
            "packing: input tokens",
            f"{figures['packing_input_tokens_before']} -> {figures['packing_input_tokens_after']}"
            f" (x{figures['packing_input_token_ratio']})",
        ),
        (
            "packing: cost (micro-USD)",
            f"{figures['packing_cost_before_micro_usd']} -> "
            f"{figures['packing_cost_after_micro_usd']} (x{figures['packing_cost_ratio']})",
        ),
        (
            "batch API: cost (micro-USD)",
            f"{figures['batch_api_cost_before_micro_usd']} -> "
            f"{figures['batch_api_cost_after_micro_usd']} (x{figures['batch_api_cost_ratio']})",
        ),
        (
            "batch API: calls",
            f"{figures['batch_api_batch_lines']} batch lines, "
            f"{figures['batch_api_sync_calls']} synchronous calls",
        ),
    ]
    print(table(rows, "Packing and Batch API (simulated provider)"))
    print(f"written to {write('packing', figures)}")


if __name__ == "__main__":
    configure(service=True)  # warnings; FastStream's routine records only with -v
    main()
