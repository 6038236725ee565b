"""A batch of ledger events applied in one call writes exactly what the events applied one by
one write, and counts each event once (redeliveries, replays, old markers)."""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as aioredis
from nats.aio.msg import Msg
from redis.exceptions import ResponseError

from bus import subjects
from bus.codec import encode
from bus.consumers import is_permanent
from bus.messages import LedgerEvent, Lever
from cost_ledger import keys
from cost_ledger.aggregates import AggregateStore, Applied
from cost_ledger.batch_apply import BatchApplier
from cost_ledger.consumer import LedgerConsumer
from cost_ledger.keys import Dimension
from tests.cost_events import as_old_deployment, ledger_event, ledger_keys


def mixed_events() -> list[LedgerEvent]:
    """Events over two tenants, two days, several levers and zero amounts."""
    return [
        ledger_event(at="2026-11-02T10:15:00"),
        ledger_event(at="2026-11-02T10:45:00", agent="pricer", workflow_id="wf1", cost=0),
        ledger_event(at="2026-11-02T11:05:00", tenant="beta", lever=Lever.EXACT_CACHE, cost=0),
        ledger_event(at="2026-11-03T09:00:00", lever=Lever.PACKED, pack_size=3, cost=33),
        ledger_event(at="2026-11-03T09:00:01", lever=Lever.PACKED, pack_size=3, cost=33),
        ledger_event(at="2026-11-03T09:30:00", lever=Lever.DEDUP, cost=0, baseline=0),
        ledger_event(at="2026-11-03T23:59:59", tenant="beta", model="", simulated=True),
        # Same rows, summed before they are written; their workflows' rows apart.
        ledger_event(at="2026-11-04T09:10:00", workflow_id="wf2", cost=33, output_tokens=7),
        ledger_event(at="2026-11-04T09:20:00", workflow_id="wf2", cost=34, cached_input_tokens=9),
        ledger_event(at="2026-11-04T09:25:00", workflow_id="wf3", cost=35),
        ledger_event(at="2026-11-04T09:26:00", cost=36, workspace="shop", project="spring"),
        ledger_event(at="2026-11-04T09:28:00", cost=37, workspace="shop"),
        ledger_event(at="2026-11-04T09:27:00", cost=0, baseline=0, input_tokens=0),
    ]


async def one_by_one(redis: aioredis.Redis, events: list[LedgerEvent]) -> dict[str, object]:
    """The ledger's Redis view after applying events with the per-event script."""
    await redis.flushall()
    store = AggregateStore(redis)
    for event in events:
        await store.apply_event(event)
    return await ledger_keys(redis)


async def test_a_batch_writes_what_its_events_write_one_by_one(
    redis_client: aioredis.Redis,
) -> None:
    events = mixed_events()
    expected = await one_by_one(redis_client, events)
    await redis_client.flushall()
    applied = await BatchApplier(AggregateStore(redis_client)).apply(events)
    assert applied == [Applied.NEW] * len(events)
    assert await ledger_keys(redis_client) == expected


async def test_a_replayed_or_repeated_event_counts_once(redis_client: aioredis.Redis) -> None:
    events = mixed_events()
    expected = await one_by_one(redis_client, events)
    await redis_client.flushall()
    store = AggregateStore(redis_client)
    applier = BatchApplier(store)
    assert await store.apply(events[2])  # applied before the batch came (a redelivery)
    doubled = [*events[:4], events[0], *events[4:]]  # and one event twice in the batch
    applied = await applier.apply(doubled)
    assert applied.count(Applied.NEW) == len(events) - 1
    assert applied[2] is Applied.BEFORE and applied[4] is Applied.BEFORE
    assert await ledger_keys(redis_client) == expected
    again = await applier.apply(events)  # the whole batch redelivered
    assert again == [Applied.BEFORE] * len(events)
    assert await ledger_keys(redis_client) == expected


async def test_events_an_older_script_applied_get_only_what_they_lack(
    redis_client: aioredis.Redis,
) -> None:
    events = mixed_events()
    expected = await one_by_one(redis_client, events)
    assert await as_old_deployment(redis_client) > 0  # markers at version 1, no cube
    applied = await BatchApplier(AggregateStore(redis_client)).apply(events)
    assert applied == [Applied.COMPLETED] * len(events)
    assert await ledger_keys(redis_client) == expected


class CountingApplier(BatchApplier):
    """A BatchApplier that records the size of each batch it is given."""

    def __init__(self, store: AggregateStore) -> None:
        super().__init__(store)
        self.batches: list[int] = []

    async def outcomes(self, events: Sequence[LedgerEvent]) -> list[Applied | Exception]:
        """Record the batch, then apply it."""
        self.batches.append(len(events))
        return await super().outcomes(events)


def message(event: LedgerEvent) -> Msg:
    """A ledger event as the consumer fetches it from its tenant's subject."""
    return Msg(_client=None, subject=subjects.ledger(event.tenant), data=encode(event))  # type: ignore[arg-type]


async def test_a_fetched_batch_is_applied_in_one_call(redis_client: aioredis.Redis) -> None:
    events = mixed_events()
    expected = await one_by_one(redis_client, events)
    await redis_client.flushall()
    consumer = LedgerConsumer(AggregateStore(redis_client))
    applier = CountingApplier(AggregateStore(redis_client))
    consumer._applier = applier  # noqa: SLF001 (counted)
    verdicts = await consumer.apply_batch([message(e) for e in events])
    assert verdicts == [None] * len(events)  # every message acked
    assert applier.batches == [len(events)]
    assert await ledger_keys(redis_client) == expected


async def test_an_event_that_cannot_be_applied_fails_alone(redis_client: aioredis.Redis) -> None:
    store = AggregateStore(redis_client)
    good = [ledger_event(at="2026-11-02T10:15:00") for _ in range(3)]
    bad = ledger_event(at="2026-11-02T10:15:00", tenant="beta")
    total = keys.aggregate(keys.scope("beta"), Dimension.TOTAL, keys.TOTAL_MEMBER)
    await redis_client.hset(total, "spend_micro_usd", 2**63 - 50)  # bad's cost overflows it
    outcomes = await BatchApplier(store).outcomes([*good, bad])
    assert outcomes[:3] == [Applied.NEW] * 3
    assert isinstance(outcomes[3], ResponseError) and "overflow" in str(outcomes[3])
    assert is_permanent(outcomes[3])
    assert (await store.totals("acme")).calls == 3  # the batch wrote nothing twice
