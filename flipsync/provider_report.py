"""`flipsync providers`: latency, cost and reliability per provider and model, and quality.

Quality is the one figure routing uses (router.routing.quality_store): per model and task
type, the catalog's prior plus the quality signals recorded so far.
"""

from __future__ import annotations

import json
import sys
from decimal import Decimal

from bus.reachable import open_redis
from bus.settings import Settings
from cost_ledger.aggregates import AggregateStore
from cost_ledger.api_models import Filter
from cost_ledger.report import simulated_note
from router.health.snapshot import ProviderHealth, health_snapshot
from router.routing.quality import BetaEstimate
from router.routing.quality_store import quality_estimates

Quality = dict[tuple[str, str], BetaEstimate]
"""Quality estimates by (model, task type)."""

HEADER = (
    "provider", "model", "circuit", "calls", "ok", "failed", "429", "reliability",
    "latency_ms", "error_rate", "cost_usd", "usd_per_call",
)  # fmt: skip
QUALITY_HEADER = ("model", "task_type", "quality", "signals")


def render_providers(snapshot: list[ProviderHealth], quality: Quality | None = None) -> str:
    """The health table, then the quality routing estimates per model and task type."""
    out = _health_table(snapshot)
    if quality:
        rows = [(model, task, f"{q.mean:.1%}", f"{q.n:g}") for (model, task), q in quality.items()]
        out += "\nquality (routing estimate: catalog prior plus recorded signals)\n"
        out += _table([QUALITY_HEADER, *rows])
    return out


def _health_table(snapshot: list[ProviderHealth]) -> str:
    """A fixed-width table of every provider+model's health (EWMA latency and error rate)."""
    if not snapshot:
        return "no provider calls recorded yet\n"
    return _table([HEADER, *(_row(h) for h in snapshot)])


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _quality_of(model: str, quality: Quality) -> dict[str, dict[str, float]]:
    return {
        task: {"mean": q.mean, "signals": q.n} for (m, task), q in quality.items() if m == model
    }


def providers_json(snapshot: list[ProviderHealth], quality: Quality | None = None) -> str:
    """The same figures as JSON, money in integer micro-dollars; each row's quality is its
    model's routing estimate per task type."""
    quality = quality or {}
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
                "quality": _quality_of(h.model, quality),
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
    """Print the provider report of a running deployment (REDIS_URL), with SIMULATED_NOTE
    under the table when any booked call came from the simulated provider."""
    if settings.redis_url is None:
        print(
            "flipsync providers: no ledger here: set REDIS_URL to the deployment's Redis, "
            "or run `make demo` or `flipsync upload` first",
            file=sys.stderr,
        )
        return 2
    client = await open_redis(settings.redis_url, settings.connect_timeout_s)
    try:
        snapshot = await health_snapshot(client)
        quality = await quality_estimates(client)
        note = "" if as_json else await simulated_note(AggregateStore(client), Filter())
    finally:
        await client.aclose()
    out = providers_json(snapshot, quality) if as_json else render_providers(snapshot, quality)
    print(out + note, end="")
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
        f"{Decimal(h.cost_micro_usd).scaleb(-6):.6f}",
        f"{Decimal(round(mean)).scaleb(-6):.6f}" if mean is not None else "-",
    )


def _share(value: float | None) -> str:
    return f"{value:.1%}" if value is not None else "-"
