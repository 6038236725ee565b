"""bench/overhead's figures: what a phase measured, and the results file made of the phases
(each figure named for what it measured: see ``measures`` in the file)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from bench.load import pct

IN_FLIGHT = 200
"""Requests in flight in the closed-loop phases."""
PIPELINE = ("router", "ledger", "nats-server", "redis-server")
"""The processes whose CPU is the pipeline's own (not the requester's nor the provider's)."""


@dataclass(kw_only=True)
class Phase:
    """What one phase measured."""

    requests: int
    rps: float
    latencies_ms: list[float]
    cpu_us: dict[str, float]
    cache_hit_share: float
    provider_calls_per_request: float
    levers: dict[str, int]

    @property
    def pipeline_cpu_us(self) -> float:
        """CPU per request summed over router, ledger, nats-server and redis-server."""
        return round(sum(self.cpu_us[name] for name in PIPELINE), 1)

    def summary(self) -> dict[str, Any]:
        """The phase's figures for the results file."""
        out: dict[str, Any] = {
            "requests": self.requests,
            "rps": round(self.rps, 1),
            "pipeline_cpu_us_per_request": self.pipeline_cpu_us,
            "cpu_us_per_request": self.cpu_us,
            "cache_hit_share": round(self.cache_hit_share, 4),
            "provider_calls_per_request": round(self.provider_calls_per_request, 4),
            "levers": self.levers,
        }
        if self.latencies_ms:
            out["p50_ms"] = round(pct(self.latencies_ms, 50), 2)
            out["p99_ms"] = round(pct(self.latencies_ms, 99), 2)
        return out


def results(
    raw: float,
    phases: dict[str, Phase],
    scaling: dict[int, Phase],
    straight: list[float],
    straight_easy: list[float],
    easy: float,
    peers: dict[str, Any],
    quick: bool,
) -> dict[str, Any]:
    """The figures of the results file, each named for what it measured."""
    top = phases["throughput"]
    at_500, at_half = phases["interactive_at_500"], phases["interactive_at_half_capacity"]
    cores = os.cpu_count() or 1
    return {
        "raw_nats_rps": round(raw, 1),
        "pipeline_rps": round(top.rps, 1),
        "ratio": round(top.rps / raw, 4),
        "pipeline_cpu_us_per_request": top.pipeline_cpu_us,
        "cpu_us_per_request": top.cpu_us,
        "cache_hit_share": round(top.cache_hit_share, 4),
        "provider_calls_per_request": round(top.provider_calls_per_request, 4),
        "overhead_p50_ms_at_500": round(pct(at_500.latencies_ms, 50) - pct(straight, 50), 2),
        "overhead_p99_ms_at_500": round(pct(at_500.latencies_ms, 99) - pct(straight, 99), 2),
        "achieved_rps_at_500": round(at_500.rps, 1),
        "interactive_rps": round(phases["interactive_capacity"].rps, 1),
        "half_capacity_rps": easy,
        "overhead_p50_ms_at_half_capacity": round(
            pct(at_half.latencies_ms, 50) - pct(straight_easy, 50), 2
        ),
        "overhead_p99_ms_at_half_capacity": round(
            pct(at_half.latencies_ms, 99) - pct(straight_easy, 99), 2
        ),
        "direct_p50_ms_at_500": round(pct(straight, 50), 2),
        "direct_p99_ms_at_500": round(pct(straight, 99), 2),
        "router_scaling": {str(k): round(v.rps, 1) for k, v in scaling.items()},
        "router_scaling_per_core_rps": {
            str(k): round(v.rps / cores, 1) for k, v in scaling.items()
        },
        "router_scaling_pipeline_cpu_us": {str(k): v.pipeline_cpu_us for k, v in scaling.items()},
        "peers": peers["rps"],
        "peers_skipped": peers["skipped"],
        "phases": {name: phase.summary() for name, phase in phases.items()}
        | {f"router_scaling_{k}": v.summary() for k, v in scaling.items() if k != 1},
        "measures": {
            "throughput": "unique standard requests, 200 in flight, 1 router process",
            "cache_hits": "the throughput phase's texts again (exact-cache hits), 200 in flight",
            "interactive_at_500": "unique interactive requests opened at 500 req/s",
            "overhead_by_rate": "unique interactive requests opened at each fixed rate (RATES)",
            "overhead": "latency through FlipSync minus the same calls straight to the provider",
            "cpu": "process CPU time (user+system) over the phase and the ledger's drain",
        },
        "in_flight": IN_FLIGHT,
        "layout": "requester | router x N | ledger | simulated provider | nats | redis",
        "quick": quick,
    }


def by_rate(phases: dict[str, Phase], straight: dict[int, list[float]]) -> dict[str, Any]:
    """Overhead p50 and p99 (ms) of unique interactive requests opened at each of RATES,
    against the same calls straight to the provider at that rate, with the rate achieved."""
    out: dict[str, Any] = {}
    for rate, direct in straight.items():
        seen = phases[f"interactive_at_{rate}"]
        out[str(rate)] = {
            "overhead_p50_ms": round(pct(seen.latencies_ms, 50) - pct(direct, 50), 2),
            "overhead_p99_ms": round(pct(seen.latencies_ms, 99) - pct(direct, 99), 2),
            "achieved_rps": round(seen.rps, 1),
        }
    return out


def rows(figures: dict[str, Any]) -> list[tuple[str, str]]:
    """The printed table: headline figures, then CPU per process."""
    skip = {"phases", "measures", "cpu_us_per_request"}
    out = [(key, str(value)) for key, value in figures.items() if key not in skip]
    cpu = figures["cpu_us_per_request"].items()
    out += [(f"cpu_us/request {name}", str(us)) for name, us in cpu]
    return out
