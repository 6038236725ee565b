"""A bounded, deterministic fuzz of every HTTP endpoint and of llm.request (tests/fuzzing.py):
no 500, no internal text in a body, no message without a result or a dead letter."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from bus.settings import Settings
from flipsync.stack import Service, Stack, start_stack
from tests.fuzzing import FuzzReport, draw, fuzz_http, fuzz_nats, http_cases, nats_cases

TENANT = f"fz{uuid.uuid4().hex[:8]}"
KEY = "sk-test-" + uuid.uuid4().hex
HTTP_EXAMPLES = 160
NATS_EXAMPLES = 60
SEED = 12


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Stack]:
    """Provider, router, ledger and the API on embedded servers."""
    settings = Settings(
        sim_latency_ms=0,
        provider_max_retries=0,
        api_port=0,
        api_keys={KEY: TENANT},
        extra_agents=frozenset({"listing"}),
    )
    services = {Service.PROVIDER, Service.ROUTER, Service.LEDGER, Service.AGENTS, Service.API}
    running = await start_stack(settings, services)
    yield running
    await running.stop()


@pytest.mark.timeout(240)
async def test_http_fuzz_gets_no_500_and_leaks_nothing(stack: Stack) -> None:
    report = FuzzReport()
    await fuzz_http(stack, KEY, draw(http_cases(TENANT), HTTP_EXAMPLES, SEED), report)
    assert report.http_inputs >= HTTP_EXAMPLES // 2
    assert not report.five_xx, report.five_xx
    assert not report.leaks, report.leaks
    assert sum(n for status, n in report.statuses.items() if 400 <= status < 500) > 0


@pytest.mark.timeout(240)
async def test_every_fuzzed_request_message_gets_a_result_or_a_dead_letter(stack: Stack) -> None:
    report = FuzzReport()
    await fuzz_nats(stack, draw(nats_cases(TENANT), NATS_EXAMPLES, SEED), report)
    assert report.nats_inputs >= NATS_EXAMPLES // 2
    assert not report.untraced, report.untraced
