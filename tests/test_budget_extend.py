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


async def test_a_booking_settled_first_moves_its_cost_off_the_reservation_that_held_it(
    redis_client: aioredis.Redis,
) -> None:
    """A call of request g1 booked at its bound is settled under its own id: its first
    settle takes that cost off g1's reservation, so it is not counted as spent and held at
    once; a second settle of the same booking takes nothing more, and never below it holds."""
    store = await make_store(redis_client, [tenant_budget(1000)])
    counter = day_counter("tenant:acme")
    assert (await store.reserve("g1", ACME, 400)).code is Code.RESERVED
    at = now_ms()
    await store.settle("lost-1", ACME, cost=150, messages=0, at_ms=at, reserved_by="g1")
    assert await store.counter(counter) == (150, 250)
    again = await store.settle("lost-1", ACME, cost=150, messages=0, at_ms=at, final=True,
                               reserved_by="g1")  # fmt: skip
    assert not again.applied  # the ledger confirming the router's settle gives back nothing
    assert await store.counter(counter) == (150, 250)
    await store.settle("lost-2", ACME, cost=600, messages=0, at_ms=at, reserved_by="g1")
    assert await store.counter(counter) == (750, 0)  # never more than g1 held: others' stays
    # A reservation given back to 0 still settles (Lua's -0 once broke the release).
    settled = await store.settle("g1", ACME, cost=90, messages=0, at_ms=at)
    assert settled.applied and settled.held
    assert await store.counter(counter) == (840, 0)


async def test_a_redelivery_finds_a_held_reservation_grown_back_to_its_maximum(
    redis_client: aioredis.Redis,
) -> None:
    """The first delivery of r1 reserved 400, its call was lost and booked at 400 (taken off
    the reservation); the redelivery finds the reservation held with nothing in it, and must
    find room for its own call like a new request: refused when there is none."""
    store = await make_store(redis_client, [tenant_budget(1000)])
    counter = day_counter("tenant:acme")
    assert (await store.reserve("r1", ACME, 400)).code is Code.RESERVED
    await store.settle("r1-lost", ACME, cost=400, messages=0, at_ms=now_ms(), reserved_by="r1")
    assert await store.counter(counter) == (400, 0)
    assert (await store.reserve("r1", ACME, 400)).code is Code.HELD
    assert await store.counter(counter) == (400, 400)  # grown back to this delivery's maximum
    assert (await store.reserve("r1", ACME, 400)).code is Code.HELD  # held in full: no growth
    assert await store.counter(counter) == (400, 400)
    # r2 the same way, with 200 left: its redelivery is refused, and nothing grows.
    assert (await store.reserve("r2", ACME, 200)).code is Code.RESERVED
    await store.settle("r2-lost", ACME, cost=200, messages=0, at_ms=now_ms(), reserved_by="r2")
    assert await store.counter(counter) == (600, 400)
    got = await store.reserve("r2", ACME, 500)
    assert got.code is Code.DENIED and not got.holds and got.spent == 600
    assert await store.counter(counter) == (600, 400)
    # Within the limit but for what r1 holds: it waits, as a new reservation would.
    got = await store.reserve("r2", ACME, 300)
    assert got.code is Code.WAIT and await store.counter(counter) == (600, 400)
    await store.settle("r1", ACME, cost=0, messages=0, at_ms=now_ms())
    assert (await store.reserve("r2", ACME, 300)).code is Code.HELD
    assert await store.counter(counter) == (600, 300)
