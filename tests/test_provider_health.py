"""Provider health units: EWMA, the breaker state machine, backoff, and the Redis copy of it."""

from __future__ import annotations

import json
import random
import re
from typing import Any

import pytest
import redis.asyncio as aioredis

from bus.embedded import EmbeddedRedis
from bus.settings import Settings
from cost_ledger.report import SIMULATED_NOTE
from flipsync.provider_report import print_providers
from router.health import Breaker, BreakerPolicy, BreakerState, HealthStore, Outcome, keys
from router.health.config import RetryPolicy
from router.health.ewma import ewma
from router.health.retry import backoff_s, retry_delay_s
from router.health.snapshot import breaker_states, health_snapshot
from router.health.store import CLOSED_TRUSTED_S
from router.providers.client import retry_after_s
from router.providers.errors import ProviderCallError, stored_reason
from router.routing.quality import QualitySignal, SignalKind
from router.routing.quality_store import QualityStore, quality_estimates
from tests.helpers import make_request

POLICY = BreakerPolicy(failures=3, error_rate=0.5, min_calls=10, cooldown_s=30.0, alpha=0.2)


def test_ewma_starts_at_the_first_value_and_weighs_the_newest_by_alpha() -> None:
    assert ewma(None, 100.0, 0.2) == 100.0
    assert ewma(100.0, 200.0, 0.2) == pytest.approx(120.0)
    value = None
    for _ in range(50):
        value = ewma(value, 1.0, 0.2)
    assert value == pytest.approx(1.0)


def test_consecutive_failures_open_the_circuit() -> None:
    breaker = Breaker()
    for now in (1.0, 2.0):
        breaker = breaker.on_failure(POLICY, now)
        assert breaker.state is BreakerState.CLOSED
    breaker = breaker.on_failure(POLICY, 3.0)
    assert breaker.state is BreakerState.OPEN and breaker.reopen_at == 33.0


def test_a_success_resets_the_consecutive_count() -> None:
    breaker = Breaker().on_failure(POLICY, 0).on_failure(POLICY, 0).on_success(POLICY)
    breaker = breaker.on_failure(POLICY, 0).on_failure(POLICY, 0)
    assert breaker.state is BreakerState.CLOSED and breaker.consecutive_failures == 2


def test_a_high_error_rate_opens_it_once_enough_calls_are_known() -> None:
    policy = BreakerPolicy(failures=100, error_rate=0.5, min_calls=10, alpha=0.3)
    breaker = Breaker()
    for i in range(9):  # alternate: the rate stays near 0.5, below min_calls
        breaker = breaker.on_failure(policy, 0) if i % 2 else breaker.on_success(policy)
    assert breaker.state is BreakerState.CLOSED
    breaker = breaker.on_failure(policy, 0).on_failure(policy, 0)
    assert breaker.state is BreakerState.OPEN and breaker.error_rate is not None
    assert breaker.error_rate >= 0.5


def test_open_lets_one_probe_through_after_the_cool_down() -> None:
    breaker = Breaker(state=BreakerState.OPEN, reopen_at=30.0)
    allowed, breaker = breaker.allow(29.0, lease_s=5)
    assert not allowed and breaker.state is BreakerState.OPEN
    allowed, breaker = breaker.allow(30.0, lease_s=5)
    assert allowed and breaker.state is BreakerState.HALF_OPEN
    allowed, _ = breaker.allow(31.0, lease_s=5)
    assert not allowed  # one probe at a time
    allowed, _ = breaker.allow(36.0, lease_s=5)
    assert allowed  # the first probe's lease lapsed


def test_half_open_closes_on_success_and_reopens_on_failure() -> None:
    half = Breaker(state=BreakerState.HALF_OPEN, probe_until=40.0)
    assert half.on_success(POLICY).state is BreakerState.CLOSED
    reopened = half.on_failure(POLICY, 50.0)
    assert reopened.state is BreakerState.OPEN and reopened.reopen_at == 80.0


def test_backoff_is_exponential_with_full_jitter_and_capped() -> None:
    policy = RetryPolicy(base_s=0.1, max_s=1.0)
    rng = random.Random(1)
    for attempt, ceiling in ((0, 0.1), (1, 0.2), (2, 0.4), (6, 1.0)):
        draws = [backoff_s(attempt, policy, rng) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in draws)
        assert max(draws) > ceiling * 0.8


def test_retry_after_is_honoured_never_shortened() -> None:
    rng = random.Random(2)
    delays = [retry_delay_s(0, RetryPolicy(), rng, retry_after_s=2.0) for _ in range(100)]
    assert all(2.0 <= d <= 2.2 for d in delays)


def test_retry_after_headers_are_read_ms_first() -> None:
    assert retry_after_s({"retry-after-ms": "250", "retry-after": "1"}) == 0.25
    assert retry_after_s({"retry-after": "3"}) == 3.0
    assert retry_after_s({"retry-after": "Wed, 21 Oct 2026 07:28:00 GMT"}) is None
    assert retry_after_s({}) is None


async def test_the_redis_breaker_follows_the_same_machine(redis_client: aioredis.Redis) -> None:
    # A fixed clock (ms), passed to the scripts: no sleeps, no wall-clock bounds.
    policy = BreakerPolicy(failures=3, error_rate=0.9, min_calls=100, cooldown_s=30.0, alpha=0.2)
    store = HealthStore(redis_client, policy, probe_lease_s=5.0)
    t = 1_000_000

    async def record(outcome: Outcome, now_ms: int, **fields: Any) -> BreakerState:
        return await store.record("p", "m", outcome, now_ms=now_ms, **fields)

    for _ in range(2):
        assert await record(Outcome.FAIL, t, error="HTTP 500") is BreakerState.CLOSED
    assert await record(Outcome.RATE_LIMITED, t) is BreakerState.CLOSED
    assert await record(Outcome.FAIL, t) is BreakerState.OPEN  # a 429 is no failure
    permit = await store.acquire("p", "m", now_ms=t + 1_000)
    assert not permit.allowed and permit.retry_in_s == 29.0
    assert await breaker_states(redis_client) == {("p", "m"): BreakerState.OPEN}
    assert not (await store.acquire("p", "m", now_ms=t + 29_999)).allowed

    probe = await store.acquire("p", "m", now_ms=t + 30_000)  # the cool-down is over
    assert probe.allowed and probe.state is BreakerState.HALF_OPEN
    held = await store.acquire("p", "m", now_ms=t + 34_999)  # one probe at a time...
    assert not held.allowed and held.retry_in_s == 0.001
    assert (await store.acquire("p", "m", now_ms=t + 35_000)).allowed  # ...till its lease ends
    assert await record(Outcome.FAIL, t + 36_000) is BreakerState.OPEN  # a failed probe
    assert not (await store.acquire("p", "m", now_ms=t + 65_999)).allowed
    assert (await store.acquire("p", "m", now_ms=t + 66_000)).allowed
    state = await record(Outcome.OK, t + 66_100, latency_ms=100, cost_micro_usd=30, input_tokens=9)
    assert state is BreakerState.CLOSED
    assert (await store.acquire("p", "m", now_ms=t + 66_200)).state is BreakerState.CLOSED


async def test_a_circuit_seen_closed_lately_needs_no_permit_until_it_is_seen_open(
    redis_client: aioredis.Redis,
) -> None:
    """Dispatch asks for a permit only where the circuit was not seen closed within
    CLOSED_TRUSTED_S (a Redis script and a task per call saved); a record that answers open,
    here one made by another replica's failures, ends the trust at once."""
    now = [100.0]
    mine = HealthStore(redis_client, POLICY, probe_lease_s=5.0, clock=lambda: now[0])
    other = HealthStore(redis_client, POLICY, probe_lease_s=5.0)
    assert not mine.closed_lately("p", "m")  # never seen
    assert await mine.record("p", "m", Outcome.OK) is BreakerState.CLOSED
    assert mine.closed_lately("p", "m")
    for _ in range(3):
        await other.record("p", "m", Outcome.FAIL, error="HTTP 500")
    assert mine.closed_lately("p", "m")  # not seen yet: one more call may go
    assert await mine.record("p", "m", Outcome.FAIL) is BreakerState.OPEN
    assert not mine.closed_lately("p", "m")
    assert not (await mine.acquire("p", "m")).allowed
    await redis_client.delete(keys.stats("p", "m"))  # closed again, as after a probe
    assert (await mine.acquire("p", "m")).allowed and mine.closed_lately("p", "m")
    now[0] += CLOSED_TRUSTED_S + 0.5
    assert not mine.closed_lately("p", "m")  # trusted for CLOSED_TRUSTED_S only


async def test_the_snapshot_reports_ewma_latency_errors_and_cost(
    redis_client: aioredis.Redis,
) -> None:
    store = HealthStore(redis_client, POLICY, probe_lease_s=1)
    await store.record("p", "m", Outcome.OK, latency_ms=100, cost_micro_usd=10)
    await store.record("p", "m", Outcome.OK, latency_ms=200, cost_micro_usd=30)
    await store.record("p", "m", Outcome.FAIL, error="HTTP 503")
    await store.record("q", "m", Outcome.RATE_LIMITED)
    p, q = await health_snapshot(redis_client)
    assert (p.provider, p.ok, p.failures, p.cost_micro_usd) == ("p", 2, 1, 40)
    assert p.latency_ms == pytest.approx(120.0)
    assert p.error_rate == pytest.approx(0.2)
    assert p.reliability == pytest.approx(2 / 3) and p.mean_cost_micro_usd == 20
    assert p.last_error == "HTTP 503" and p.state is BreakerState.CLOSED
    assert (q.rate_limited, q.latency_ms, q.reliability) == (1, None, None)
    assert "quality" not in await redis_client.hgetall(keys.stats("p", "m"))  # one figure only


async def test_stored_errors_never_keep_credentials(redis_client: aioredis.Redis) -> None:
    store = HealthStore(redis_client, POLICY, probe_lease_s=1)
    echoed = (
        "HTTP 502: upstream said Authorization: Bearer abc.def.ghi for key=AIzaSecret1 sk-live-9x"
    )
    await store.record("p", "m", Outcome.FAIL, error=echoed)
    [health] = await health_snapshot(redis_client)
    assert "abc.def" not in health.last_error and "AIzaSecret1" not in health.last_error
    assert "sk-live" not in health.last_error and health.last_error.startswith("HTTP 502")
    assert health.last_error.count("[redacted]") == 3
    denied = ProviderCallError(
        "p", "m", "Incorrect API key provided: sk-proj-abcd1234", retryable=False,
        unhealthy=True, status=401,
    )  # fmt: skip
    assert stored_reason(denied) == "HTTP 401 (ProviderCallError)"
    forbidden = ProviderCallError("p", "m", "token xyz123 lacks scope", retryable=False,
                                  unhealthy=True, status=403)  # fmt: skip
    assert "xyz123" not in stored_reason(forbidden)
    assert stored_reason(ProviderCallError.from_status("p", "m", 500)) == "p/m: HTTP 500"


async def test_flipsync_providers_prints_the_report(
    redis_client: aioredis.Redis, redis_server: EmbeddedRedis, capsys: pytest.CaptureFixture[str]
) -> None:
    store = HealthStore(redis_client, POLICY, probe_lease_s=1)
    await store.record("sim-a", "gpt-4o-mini", Outcome.OK, latency_ms=80, cost_micro_usd=1500)
    for _ in range(3):
        await store.record("sim-b", "gpt-4o-mini", Outcome.FAIL, error="HTTP 500")
    signals = QualityStore(redis_client)
    for i in range(20):  # every answer invalid: the estimate falls far below the prior
        bad = QualitySignal(model="gpt-4o-mini", task_type="titles", kind=SignalKind.SCHEMA,
                            good=False)  # fmt: skip
        await signals.record(bad, f"signal-{i}")
    estimate = (await quality_estimates(redis_client))[("gpt-4o-mini", "titles")]
    assert estimate.mean < 0.5 and estimate.n == 20
    assert await print_providers(Settings(redis_url=redis_server.url)) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["provider", "model", "circuit"]
    assert "quality" not in table[0]  # health keeps no quality figure of its own
    a = next(line for line in table if line.startswith("sim-a"))
    b = next(line for line in table if line.startswith("sim-b"))
    assert "closed" in a and "100.0%" in a and "80" in a and "0.001500" in a
    # Open, reopening after the 30 s cool-down less the time since it opened (rounded): a
    # stalled test process may have let a few seconds of it pass already.
    reopen = re.search(r"open \((\d+)s\)", b)
    assert reopen is not None and 25 <= int(reopen.group(1)) <= 30, b
    assert "0.0%" in b
    quality = next(line for line in table if line.startswith("gpt-4o-mini"))
    assert quality.split() == ["gpt-4o-mini", "titles", f"{estimate.mean:.1%}", "20"]
    assert SIMULATED_NOTE not in "\n".join(table)  # no simulated call was booked here
    assert await print_providers(Settings(redis_url=redis_server.url), as_json=True) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["provider"], r["circuit"]) for r in rows] == [("sim-a", "closed"), ("sim-b", "open")]
    assert rows[0]["quality"]["titles"] == {"mean": estimate.mean, "signals": 20}
    assert "key" not in json.dumps(rows).lower()


def test_vendor_providers_read_keys_from_the_environment_and_never_print_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cost_ledger.catalog import PriceCatalog
    from flipsync.providers import ProviderConfigError, provider_configs

    catalog = PriceCatalog.load()
    specs = [{"name": "claude", "kind": "anthropic"}, {"name": "gemini", "kind": "google"}]
    settings = Settings(providers=specs)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(ProviderConfigError, match="ANTHROPIC_API_KEY"):
        provider_configs(settings, catalog, None)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-secret")
    monkeypatch.setenv("GEMINI_API_KEY", "gm-secret")
    claude, gemini = provider_configs(settings, catalog, None)
    assert claude.base_url == "https://api.anthropic.com/v1/"
    assert set(claude.models) == {"claude-sonnet-4", "claude-haiku-3.5"}
    assert gemini.base_url.startswith("https://generativelanguage.googleapis.com/")
    assert claude.api_key.get_secret_value() == "sk-ant-secret"
    assert "secret" not in repr(claude) + str(claude) + repr(gemini)
    local = Settings(providers=[{"name": "vllm", "base_url": "http://vllm:8000/v1"}])
    with pytest.raises(ProviderConfigError, match="models"):
        provider_configs(local, catalog, None)


async def test_named_simulated_providers_start_with_their_own_faults() -> None:
    from cost_ledger.catalog import PriceCatalog
    from flipsync.providers import start_providers

    specs = [
        {"name": "steady", "kind": "simulated"},
        {"name": "flaky", "kind": "simulated", "simulated": {"faults": {"server_error": 1.0}}},
    ]
    registry = await start_providers(
        Settings(providers=specs),
        PriceCatalog.load(),
        None,
    )
    try:
        assert registry.names() == ["steady", "flaky"]
        steady, flaky = registry.get("steady"), registry.get("flaky")
        assert steady.config.simulated and steady.config.base_url != flaky.config.base_url
        request = make_request()
        assert (await steady.complete(request, "gpt-4o-mini")).content
        with pytest.raises(ProviderCallError, match="HTTP 500"):
            await flaky.complete(request, "gpt-4o-mini")
    finally:
        await registry.close()
