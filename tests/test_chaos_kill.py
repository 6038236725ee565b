"""Routers SIGKILLed while calls are at the provider, on 3 replicas under load: no request
lost, every provider call booked, the ledger never below the provider's bill."""

from __future__ import annotations

import pytest

from tests.chaos_scenario import ChaosCluster


@pytest.mark.slow
@pytest.mark.chaos
@pytest.mark.timeout(600)
async def test_kills_while_calls_are_at_the_provider_lose_and_underbook_nothing() -> None:
    cluster = ChaosCluster(replicas=3)
    try:
        await cluster.start()
        result = await cluster.run(requests=60, kills=1)
    finally:
        await cluster.stop()
    assert result.lost == 0
    assert result.kills_in_flight >= 1  # the kill caught calls at the provider
    assert result.booked_calls >= result.provider_calls
    assert result.ledger_minus_provider_micro_usd >= 0
