"""`flipsync providers`: latency, cost, quality and reliability per provider and model."""

from __future__ import annotations

import json
import sys
from decimal import Decimal

import redis.asyncio as aioredis

from bus.settings import Settings
from router.health.snapshot import ProviderHealth, health_snapshot

HEADER = (
    "provider", "model", "circuit", "calls", "ok", "failed", "429", "reliability",
    "latency_ms", "error_rate", "quality", "cost_usd", "usd_per_call",
)  # fmt: skip


def render_providers(snapshot: list[ProviderHealth]) -> str:
    """A fixed-width table of every provider+model's health (EWMA latency and error rate)."""
    if not snapshot:
        return "no provider calls recorded yet\n"
    rows = [HEADER, *(_row(h) for h in snapshot)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def providers_json(snapshot: list[ProviderHealth]) -> str:
    """The same figures as JSON, money in integer micro-dollars."""
    return json.dumps(
        [
            {
                "provider": h.provider,
                "model": h.model,
                "circuit": h.state.value,
                "reopen_in_s": h.reopen_in_s,
                "ok": h.ok,
                "failures": h.failures,
                "rate_limited": h.rate_limited,
                "reliability": h.reliability,
                "latency_ms": h.latency_ms,
                "error_rate": h.error_rate,
                "quality": h.quality,
                "cost_micro_usd": h.cost_micro_usd,
                "input_tokens": h.input_tokens,
                "output_tokens": h.output_tokens,
                "last_error": h.last_error,
            }
            for h in snapshot
        ],
        indent=2,
    )


async def print_providers(settings: Settings, *, as_json: bool = False) -> int:
    """Print the provider report of a running deployment (REDIS_URL)."""
    if settings.redis_url is None:
        print("flipsync providers: set REDIS_URL to the deployment's Redis", file=sys.stderr)
        return 2
    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        snapshot = await health_snapshot(client)
    finally:
        await client.aclose()
    print(providers_json(snapshot) if as_json else render_providers(snapshot), end="")
    return 0


def _row(h: ProviderHealth) -> tuple[str, ...]:
    circuit = h.state.value + (f" ({h.reopen_in_s:.0f}s)" if h.reopen_in_s else "")
    mean = h.mean_cost_micro_usd
    return (
        h.provider,
        h.model,
        circuit,
        str(h.calls),
        str(h.ok),
        str(h.failures),
        str(h.rate_limited),
        _share(h.reliability),
        f"{h.latency_ms:.0f}" if h.latency_ms is not None else "-",
        f"{h.error_rate:.3f}",
        _share(h.quality),
        f"{Decimal(h.cost_micro_usd).scaleb(-6):.6f}",
        f"{Decimal(round(mean)).scaleb(-6):.6f}" if mean is not None else "-",
    )


def _share(value: float | None) -> str:
    return f"{value:.1%}" if value is not None else "-"
