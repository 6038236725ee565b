"""The product workflow at scale: a replay of 200 uploads with realistic repeats.

    python -m bench.workflow [--bulk] [--latency-ms 0]

The replay is made deterministically from the shipped sample catalog (no third-party data):
40 base products (the 6 samples in colour variants, photos drawn by
agents/samples/make_photos.py), each listed by 4 of 5 sellers; then some sellers list a size
variant (same photos, other notes) or relist the same product. Everything runs embedded in
three processes (the simulated provider; the router and ledger, --routers replicas; the
workflow, its 34 agents per product and the replay itself), and the figures come from the
ledger and the provider's counters. Writes bench/results/workflow.json.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import os
import random
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp

from agents.catalog_file import load_catalog
from agents.intake import upload_and_wait
from agents.product_input import PhotoFile, ProductInput
from agents.samples.make_photos import draw
from bench.report import table, write
from bus.embedded import EmbeddedNats, EmbeddedRedis
from bus.embedded.process import free_port
from bus.logs import configure
from bus.messages import Priority
from bus.settings import Settings
from cost_ledger.aggregates import Totals
from cost_ledger.keys import Dimension
from cost_ledger.lever_split import lever_split
from flipsync.children import service_process, simulated_provider_process
from flipsync.stack import Service, Stack, start_stack

BASES = 40
SELLERS = 5
LISTED_BY = 4
PALETTE = (
    ("teal", "#2a8c8c"), ("red", "#b83a3a"), ("navy", "#24345c"), ("ochre", "#c9a23f"),
    ("olive", "#5b6b3a"), ("black", "#303030"), ("white", "#e8e8e8"),
)  # fmt: skip
SIZES = ("small", "large")
MICRO = Decimal("0.000001")


def base_products() -> list[ProductInput]:
    """BASES products: each sample product in colour variants, with their own photos."""
    samples = load_catalog()
    shapes = {"mug": "rectangle", "sneaker": "triangle", "lamp": "circle"}
    out = []
    for index in range(BASES):
        sample = samples[index % len(samples)]
        colour, hex_colour = PALETTE[index // len(samples) % len(PALETTE)]
        shape = shapes.get(sample.product_id.split("-")[0], "rectangle")
        photos = []
        for number in range(len(sample.photos)):
            image = draw(f"{sample.title_hint} {colour} {number}", hex_colour, shape)
            data = io.BytesIO()
            image.save(data, format="PNG")
            photos.append(PhotoFile(name=f"{index}-{number}.png", data=data.getvalue()))
        out.append(
            ProductInput(
                product_id=f"{sample.product_id}-{colour}",
                title_hint=f"{sample.title_hint}, {colour}",
                notes=f"{sample.notes} Colour: {colour}.",
                cost_price=sample.cost_price,
                photos=tuple(photos),
            )
        )
    return out


def replay() -> list[tuple[str, ProductInput]]:
    """(seller, product) uploads in order: first listings, then variants and relists."""
    rng = random.Random(6)
    bases = base_products()
    first: list[tuple[str, ProductInput]] = []
    later: list[tuple[str, ProductInput]] = []
    for index, product in enumerate(bases):
        sellers = [f"seller-{(index + k) % SELLERS}" for k in range(LISTED_BY)]
        first += [(seller, product) for seller in sellers]
        if index % 2 == 0:  # a size variant: the same photos, other notes
            size = SIZES[index // 2 % len(SIZES)]
            variant = ProductInput(
                product_id=f"{product.product_id}-{size}",
                title_hint=f"{product.title_hint}, {size}",
                notes=f"{product.notes} Size: {size}.",
                cost_price=product.cost_price,
                photos=product.photos,
            )
            later.append((sellers[0], variant))
        if index % 4 in (0, 1):  # the same seller lists the very same product again
            later.append((sellers[index % 4], product))
    rng.shuffle(first)
    rng.shuffle(later)
    return first + later


async def run(
    bulk: bool,
    latency_ms: float,
    limit: int | None = None,
    routers: int = 1,
    model_quality: bool = False,
) -> dict[str, Any]:
    """Replay the uploads (the first limit of them); the figures.

    The processes share the two cores as a deployment would: the simulated provider, the
    router with the ledger (routers replicas), and this one (workflow, agents, the replay).
    """
    uploads = replay()[:limit]
    nats, redis = EmbeddedNats(), EmbeddedRedis()
    await nats.start()
    await redis.start()
    port = free_port()
    sim = simulated_provider_process(port, latency_ms, model_quality=model_quality)
    env = {"NATS_URL": nats.url, "REDIS_URL": redis.url,
           "FLIPSYNC_SIM_BASE_URL": f"http://127.0.0.1:{port}/v1"}  # fmt: skip
    replicas = [service_process(["router", "ledger"], env) for _ in range(routers)]
    settings = Settings(nats_url=nats.url, redis_url=redis.url)
    stack: Stack | None = None
    try:
        await sim.start()
        for replica in replicas:
            await replica.start()
        stack = await start_stack(settings, [Service.WORKFLOW, Service.AGENTS])
        logging.getLogger("faststream.access.nats").setLevel(logging.WARNING)
        started = time.perf_counter()
        done = await upload_and_wait(
            stack.broker,
            [product for _seller, product in uploads],
            tenant=lambda i: uploads[i][0],
            priority=Priority.BULK if bulk else Priority.STANDARD,
            settings=settings,
            timeout_s=900,
        )
        elapsed = time.perf_counter() - started
        tenants = sorted({seller for seller, _ in uploads})
        expected = sum(event.cost_micro_usd for event in done)
        naive = sum(event.baseline_micro_usd for event in done)
        totals = await _settled(stack, tenants, expected, naive)
        levers = await _levers(stack, tenants)
        split = await lever_split(stack.broker.connection.jetstream(), set(tenants))
        provider_calls, invalid, by_model = await _provider_calls(port)
        cpu = {
            "workflow_agents_replay": round(time.process_time(), 1),
            "router_ledger": [_cpu_seconds(r.proc.pid if r.proc else None) for r in replicas],
            "simulated_provider": _cpu_seconds(sim.proc.pid if sim.proc else None),
        }
    finally:
        if stack is not None:
            await stack.stop()
        for replica in replicas:
            await replica.stop()
        await sim.stop()
        await redis.stop()
        await nats.stop()
    products = len(done)
    cost = Decimal(totals.spend_micro_usd) * MICRO / products
    baseline = Decimal(totals.baseline_micro_usd) * MICRO / products
    requests = sum(t.calls for lever, t in levers.items() if lever not in _FREE)
    return {
        "products": products,
        "products_per_minute": round(products / elapsed * 60, 1),
        "calls_per_product": round(provider_calls / products, 2),
        "cost_per_product_usd": float(cost.quantize(MICRO)),
        "baseline_per_product_usd": float(baseline.quantize(MICRO)),
        "cost_ratio": round(totals.spend_micro_usd / totals.baseline_micro_usd, 4),
        "requests_per_product": round(requests / products, 2),
        "failed": sum(not event.ok for event in done),
        "failure_reasons": dict(
            Counter(event.reason[:120] for event in done if not event.ok).most_common(5)
        ),
        "optional_gaps_per_product": round(sum(len(e.missing) for e in done) / products, 2),
        "spend_micro_usd": totals.spend_micro_usd,
        "baseline_micro_usd": totals.baseline_micro_usd,
        "by_lever": {
            lever: {"events": t.calls, "paid": t.paid_calls, "saved_micro_usd": t.savings_micro_usd}
            for lever, t in sorted(levers.items())
        },
        "savings_by_lever": split.gross,
        "lever_cost_micro_usd": split.lever_cost,
        "net_savings_by_lever": split.net,
        "split_adds_up": sum(split.net.values())
        == split.baseline_micro_usd - split.spend_micro_usd,
        "provider_calls": provider_calls,
        "sim_model_quality": model_quality,
        "invalid_answers": invalid,
        "calls_by_model": dict(sorted(by_model.items())),
        "validated_answer_rate": round(1 - invalid / provider_calls, 4) if provider_calls else None,
        "ledger_paid_events": totals.paid_calls,
        "seconds": round(elapsed, 1),
        "cpu_seconds": cpu,
        "replay": {
            "base_products": BASES,
            "sellers": SELLERS,
            "listed_by": LISTED_BY,
            "uploads": products,
            "priority": "bulk" if bulk else "standard",
            "sim_latency_ms": latency_ms,
            "layout": f"simulated provider | {routers} x flipsync run router ledger | "
            "workflow + agents + replay",
        },
    }


def _cpu_seconds(pid: int | None) -> float | None:
    """CPU seconds (user and system) a child process used so far; None off Linux."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 1)


async def _provider_calls(port: int) -> tuple[int, int, dict[str, int]]:
    """Completions the simulated provider produced (a packed call counts once), how many of
    them were answers that fail their schema (a weaker model's, or an injected fault), and
    the completions per model."""
    url = f"http://127.0.0.1:{port}/_sim/stats"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        stats = await response.json()
    by_model = {str(m): int(n) for m, n in dict(stats.get("by_model", {})).items()}
    return int(stats["calls"]), int(stats["faults"].get("schema_invalid", 0)), by_model


_FREE = frozenset({"zero_call", "photo_dedup"})
"""Ledger events that are not LLM requests."""


async def _settled(stack: Stack, tenants: list[str], expected: int, naive: int) -> Totals:
    """Wait until the ledger holds every cent the workflows reported, and their baseline (the
    workflow books call-free work as each ends, after the paid calls); the summed totals."""
    async with asyncio.timeout(60):
        while True:
            parts = [await stack.aggregates.totals(t) for t in tenants]
            spent = sum(p.spend_micro_usd for p in parts)
            if spent >= expected and sum(p.baseline_micro_usd for p in parts) >= naive:
                break
            await asyncio.sleep(0.2)
    return Totals(
        spend_micro_usd=sum(p.spend_micro_usd for p in parts),
        baseline_micro_usd=sum(p.baseline_micro_usd for p in parts),
        calls=sum(p.calls for p in parts),
        paid_calls=sum(p.paid_calls for p in parts),
    )


async def _levers(stack: Stack, tenants: list[str]) -> dict[str, Totals]:
    out: dict[str, Totals] = {}
    for tenant in tenants:
        for lever, part in (await stack.aggregates.breakdown(Dimension.LEVER, tenant)).items():
            have = out.get(lever, Totals())
            out[lever] = Totals(
                spend_micro_usd=have.spend_micro_usd + part.spend_micro_usd,
                baseline_micro_usd=have.baseline_micro_usd + part.baseline_micro_usd,
                calls=have.calls + part.calls,
                paid_calls=have.paid_calls + part.paid_calls,
            )
    return out


def main() -> None:
    """Run the replay, write bench/results/workflow.json, print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bulk", action="store_true", help="upload at bulk priority")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--products", type=int, default=None, help="replay only the first N")
    parser.add_argument("--routers", type=int, default=1, help="router+ledger replicas")
    parser.add_argument(
        "--model-quality", action="store_true",
        help="simulated models differ (simulator.quality); writes workflow_quality.json",
    )  # fmt: skip
    args = parser.parse_args()
    figures = asyncio.run(
        run(args.bulk, args.latency_ms, args.products, args.routers, args.model_quality)
    )
    path = write("workflow_quality" if args.model_quality else "workflow", figures)
    rows = [
        (key, str(figures[key]))
        for key in (
            "products", "products_per_minute", "calls_per_product", "requests_per_product",
            "cost_per_product_usd", "baseline_per_product_usd", "cost_ratio", "failed",
            "validated_answer_rate", "seconds", "cpu_seconds",
        )
    ]  # fmt: skip
    rows += [(f"lever {k}", str(v)) for k, v in figures["by_lever"].items()]
    rows += [(f"split {k} (gross)", str(v)) for k, v in figures["savings_by_lever"].items()]
    rows += [(f"lever cost {k}", str(v)) for k, v in figures["lever_cost_micro_usd"].items()]
    rows.append(("split adds up to baseline - spend", str(figures["split_adds_up"])))
    print(table(rows, f"Workflow replay (simulated provider) -> {path}"))


if __name__ == "__main__":
    configure(service=True)  # warnings; FastStream's routine records only with -v
    main()
