"""Read-only views of provider health: for `flipsync providers`, the routing policy and a
Prometheus collector. Each reads Redis only; none changes a circuit."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from router.health import keys
from router.health.breaker import BreakerState


@dataclass(frozen=True, kw_only=True)
class ProviderHealth:
    """What is known of one provider+model from its calls so far."""

    provider: str
    model: str
    ok: int
    """Calls that answered."""
    failures: int
    """Calls that failed in a way that counts against the circuit."""
    rate_limited: int
    """429 answers."""
    latency_ms: float | None
    """EWMA latency of answered calls."""
    error_rate: float
    """EWMA of failures (1) against answers (0)."""
    cost_micro_usd: int
    """What the answered calls cost."""
    input_tokens: int
    output_tokens: int
    state: BreakerState
    opened: int
    """Times the circuit has opened."""
    reopen_in_s: float
    """For an open circuit: seconds until it lets a probe through (0 when due)."""
    last_error: str

    @property
    def calls(self) -> int:
        """Calls made, 429s included."""
        return self.ok + self.failures + self.rate_limited

    @property
    def reliability(self) -> float | None:
        """Share of judged calls that answered (None before any)."""
        judged = self.ok + self.failures
        return self.ok / judged if judged else None

    @property
    def mean_cost_micro_usd(self) -> float | None:
        """Mean cost of an answered call."""
        return self.cost_micro_usd / self.ok if self.ok else None


async def health_snapshot(redis: aioredis.Redis) -> list[ProviderHealth]:
    """Health of every provider+model that has been called, sorted by provider and model."""
    stats_keys = sorted(await redis.smembers(keys.INDEX))
    if not stats_keys:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for key in stats_keys:
            pipe.hgetall(key)
        hashes = await pipe.execute()
    seconds, micros = await redis.time()  # on its own: a cluster pipeline refuses TIME
    now_ms = seconds * 1000 + micros / 1000
    out = [_health(_decoded(raw), now_ms) for raw in hashes if raw]
    return sorted(out, key=lambda h: (h.provider, h.model))


async def breaker_states(redis: aioredis.Redis) -> dict[tuple[str, str], BreakerState]:
    """The circuit state of every known (provider, model), e.g. for a Prometheus gauge."""
    return {(h.provider, h.model): h.state for h in await health_snapshot(redis)}


def latency_by_model(snapshot: list[ProviderHealth]) -> dict[tuple[str, str], float]:
    """Measured EWMA latency (ms) per (provider, model), for routing estimates."""
    return {(h.provider, h.model): h.latency_ms for h in snapshot if h.latency_ms is not None}


def _decoded(raw: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in raw.items()}


def _health(fields: dict[str, str], now_ms: float) -> ProviderHealth:
    def integer(name: str) -> int:
        return int(fields.get(name, "0"))

    def number(name: str) -> float | None:
        value = fields.get(name)
        return float(value) if value is not None else None

    state = BreakerState(fields.get("state", BreakerState.CLOSED))
    reopen_ms = integer("reopen_ms")
    return ProviderHealth(
        provider=fields.get("provider", "?"),
        model=fields.get("model", "?"),
        ok=integer("ok"),
        failures=integer("failures"),
        rate_limited=integer("rate_limited"),
        latency_ms=number("latency_ms"),
        error_rate=number("error_rate") or 0.0,
        cost_micro_usd=integer("cost_micro_usd"),
        input_tokens=integer("input_tokens"),
        output_tokens=integer("output_tokens"),
        state=state,
        opened=integer("opened"),
        reopen_in_s=max(reopen_ms - now_ms, 0) / 1000 if state is BreakerState.OPEN else 0.0,
        last_error=fields.get("last_error", ""),
    )
