"""Lost calls booked: a call marker whose lease expired is claimed, settled and published.

A marker whose lease expired (its replica died while the provider answered) is claimed by
whichever replica's reaper runs next (every half lease, on every replica that has made a
call); its cost is settled into the budget
counters at once and taken off the reservation that held its room (the event's
reserved_by), then its ledger event is published (saying so, so the ledger does not settle
it again): the ledger may overstate a lost call, never understate it. The lease is a quarter
of the reservation's TTL, so the charge lands while the dead request's reservation still
holds its room; settled by the ledger instead, it could land after that reservation expired
and its room went to other requests. The redelivery that pays again finds that reservation
(HELD), grown back to its maximum or refused, and books its own call under the request id.

A call the provider billed but whose answer cannot be used is booked the same way, at once
(``_book_now``). router.paid_answers.PaidAnswers, which writes the markers, is a reaper.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

import msgspec
import redis.asyncio as aioredis
from faststream.nats import NatsBroker

from bus import subjects
from bus.codec import encode
from bus.messages import LedgerEvent
from bus.publishing import publish, scoped_msg_id
from cost_ledger.budgets.config import EngineSettings
from cost_ledger.budgets.gate import Settlement
from cost_ledger.budgets.projection import settled_mark
from router.call_markers import BEGIN, CLAIM, EVENTS, LEASES
from router.lost_events import marker

log = logging.getLogger(__name__)
REAP_BATCH = 20
"""Markers claimed by one script call."""


class LostCallBudgets(Protocol):
    """What booking a lost call needs of the budgets (cost_ledger's BudgetStore is one)."""

    @property
    def engine(self) -> EngineSettings:
        """Reservation settings: the input margin the budget stage reserves with."""
        ...

    async def settle_event(
        self, event: LedgerEvent, *, final: bool = True, alerts: bool = True
    ) -> Settlement:
        """Settle a ledger event into the budget counters, once per request id."""
        ...


class LostCallReaper:
    """Books the calls whose lease expired, every half lease, from any replica."""

    def __init__(
        self,
        redis: aioredis.Redis,
        broker: NatsBroker,
        *,
        lease_ms: int,
        budgets: LostCallBudgets | None,
    ) -> None:
        self._redis = redis
        self._budgets = budgets
        self._broker = broker
        self._lease_ms = lease_ms
        self._begin = redis.register_script(BEGIN)
        self._claim = redis.register_script(CLAIM)
        self._event_decoder = msgspec.json.Decoder(LedgerEvent | list[LedgerEvent])
        self._reaper: asyncio.Task[None] | None = None
        self._closed = False

    def _keep_reaping(self) -> None:
        """Reap every half lease from now on, so that a lost call is booked even when no
        other call follows it (started on first use: it needs the running loop)."""
        if not self._closed and (self._reaper is None or self._reaper.done()):
            self._reaper = asyncio.get_running_loop().create_task(self._reap_forever())

    async def close(self) -> None:
        """Stop this replica's reaper (the other replicas' reapers book what it leaves)."""
        self._closed = True
        reaper, self._reaper = self._reaper, None
        if reaper is not None:
            reaper.cancel()
            await asyncio.gather(reaper, return_exceptions=True)

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(self._lease_ms / 2000)
            try:
                await self.reap()
            except Exception:  # Redis or NATS away for now: the next round tries again
                log.debug("reaping lost calls failed", exc_info=True)

    async def _book_now(self, call_id: str, events: list[LedgerEvent], reason: str) -> None:
        """Book a call's events now: its lease made due at once, then reaped (should the reap
        fail, the reaper books it, as it books a lost call)."""
        booking = [msgspec.structs.replace(e, route_reason=reason) for e in events]
        await self._begin(keys=[LEASES, EVENTS], args=[call_id, 0, marker(booking)])
        await self.reap()

    async def reap(self) -> int:
        """Book every lost call whose lease expired; returns how many were booked here."""
        claimed: list[bytes] = await self._claim(keys=[LEASES, EVENTS], args=[REAP_BATCH])
        for claim in claimed:
            decoded = self._event_decoder.decode(claim)
            events = decoded if isinstance(decoded, list) else [decoded]
            try:
                for event in events:
                    raw = await self._settle_lost(event, encode(event))
                    await publish(self._broker, raw, subjects.ledger(event.tenant),
                                  stream=subjects.STREAM_LEDGER,
                                  msg_id=scoped_msg_id(event.tenant, event.event_id))  # fmt: skip
                    log.warning("booked lost call %s: %s", event.event_id, event.route_reason)
            except Exception:  # put it back: the next reap books it (settled once, published
                # once per event id: JetStream drops a duplicate id)
                await self._begin(keys=[LEASES, EVENTS], args=[events[0].event_id, 0, claim])
                raise
        return len(claimed)

    async def _settle_lost(self, event: LedgerEvent, raw: bytes) -> bytes:
        """Settle a claimed lost call into the budgets now, before its event is published
        (the settle also takes its cost off the reservation that held its room: reserved_by);
        returns the event to publish, marked settled when this settle was the first in every
        budget group (then the ledger skips it). A failed settle is left to the ledger."""
        if self._budgets is None:
            return raw
        try:
            settlement = await self._budgets.settle_event(event, final=False)
        except Exception:
            log.warning("lost call %s not settled here; the ledger will", event.event_id,
                        exc_info=True)  # fmt: skip
            return raw
        if not settlement.complete:  # settled before (an earlier claim whose publish failed)
            return raw
        event.router_settled = settled_mark(event)
        return encode(event)
