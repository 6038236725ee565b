"""Growing a standing reservation (a fallback, an escalation, a packed item retried alone)."""

from __future__ import annotations

import redis.asyncio as aioredis

from bus.messages import now_ms
from cost_ledger.budgets.scripts import Code
from tests.test_budget_store import ACME, day_counter, make_store, tenant_budget


async def test_extend_grows_every_counter_and_settle_releases_all_of_it(
    redis_client: aioredis.Redis,
) -> None:
    store = await make_store(redis_client, [tenant_budget(1000)])
    counter = day_counter("tenant:acme")
    assert (await store.reserve("x1", ACME, 400)).code is Code.RESERVED
    assert (await store.extend("x1", ACME, 300)).code is Code.RESERVED
    assert await store.counter(counter) == (0, 700)
    await store.settle("x1", ACME, cost=650, messages=0, at_ms=now_ms())
    assert await store.counter(counter) == (650, 0)  # the grown part is released too


async def test_extend_past_the_limit_is_denied_and_changes_nothing(
    redis_client: aioredis.Redis,
) -> None:
    store = await make_store(redis_client, [tenant_budget(1000)])
    counter = day_counter("tenant:acme")
    assert (await store.reserve("x2", ACME, 600)).code is Code.RESERVED
    got = await store.extend("x2", ACME, 401)
    assert got.code is Code.DENIED and not got.holds
    assert got.check is not None and got.check.limit == 1000 and got.reserved == 600
    assert await store.counter(counter) == (0, 600)
    assert (await store.extend("x2", ACME, 400)).holds  # exactly to the limit fits
    assert await store.counter(counter) == (0, 1000)


async def test_extend_without_a_standing_reservation_is_not_held(
    redis_client: aioredis.Redis,
) -> None:
    store = await make_store(redis_client, [tenant_budget(1000)])
    assert (await store.reserve("x3", ACME, 100)).holds
    await store.release("x3")
    assert (await store.extend("x3", ACME, 50)).code is Code.NOT_HELD
    assert (await store.extend("never", ACME, 50)).code is Code.NOT_HELD


async def test_give_back_moves_a_booked_part_off_the_reservation_never_below_it(
    redis_client: aioredis.Redis,
) -> None:
    """A call of the request booked at its bound was settled into spend under another id:
    that part leaves the reservation, so it is not counted as spent and held at once."""
    store = await make_store(redis_client, [tenant_budget(1000)])
    counter = day_counter("tenant:acme")
    assert (await store.reserve("g1", ACME, 400)).code is Code.RESERVED
    await store.give_back("g1", ACME, 150)
    assert await store.counter(counter) == (0, 250)
    await store.give_back("g1", ACME, 1000)  # never more than it holds: others' room stays
    assert await store.counter(counter) == (0, 0)
    # A reservation given back to 0 still settles (Lua's -0 once broke the release).
    settled = await store.settle("g1", ACME, cost=90, messages=0, at_ms=now_ms())
    assert settled.applied and settled.held
    assert await store.counter(counter) == (90, 0)
