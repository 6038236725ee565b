"""Every paid call is booked: answers kept the moment they arrive, lost calls booked at most.

Around each provider call dispatch makes (``PaidAnswers.call``):
1. Before it, a call marker goes to Redis: a lease (refreshed while the call runs) and the
   ledger event to book if the replica dies now, priced at the call's maximum cost: the
   bound the budget stage reserved for it (router.token_bound, with the budgets' input
   margin), never more, so that booking it cannot take settled spend past a budget. A call
   serving several requests (a packed call) holds one event per request, its bound split
   among them within what each reserved (``lost_parts``; the packer grew the reservations
   to hold the bound first: router.context.cover), each on that request's own budgets.
2. The moment the answer arrives, the answer is stored by request id, then the marker is
   removed (two steps, so that each touches one Redis Cluster slot: the answer lives by
   tenant and request, the markers of every call together in ``{calls}``; a death between
   the two books the call twice, never zero times); the call is noted on the request's
   context, so a failure after it (validation, a bug, a publish error) still books it
   (``router.paid_calls.booked``).
3. A redelivered request finds the stored answer and prices it again without paying again.
4. A marker whose lease expired (its replica died while the provider answered) is claimed by
   whichever replica next calls a provider, or reaps; its cost is settled into the budget
   counters at once and taken off the reservation that held its room (the event's
   reserved_by), then its ledger event is published (saying so, so the ledger does not
   settle it again): the ledger may overstate a lost call, never understate it. The lease
   is a quarter of the reservation's TTL, so the charge lands while the dead request's
   reservation still holds its room; settled by the ledger instead, it could land after
   that reservation expired and its room went to other requests. The redelivery that pays
   again finds that reservation (HELD), grown back to its maximum or refused, and books
   its own call under the request id.
5. A call the provider answered (a 2xx) whose answer cannot be used (a body that is not JSON,
   no choices, a stream cut after it began: ``billed_failure``) was billed: its marker's
   event is booked at once, at the maximum, reason "unusable: ...", as a lost call is.
A call that failed otherwise (an error status, a timeout, a cancellation) drops its marker:
it is not booked, as before (a timed-out call's reason says it may have been billed), unless
a reaper booked it at its bound first (its lease lapsed while the loop stalled): then its
payers' parts are noted, as for an answered call, so that a fallback needs room beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import os
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import msgspec
import redis.asyncio as aioredis
from faststream.nats import NatsBroker

from bus import subjects
from bus.codec import encode
from bus.liveness import Liveness, LoopLiveness, Renewal
from bus.messages import LedgerEvent, LlmRequest, Usage
from bus.publishing import publish, scoped_msg_id
from bus.subjects import token
from cost_ledger.budgets.config import EngineSettings
from cost_ledger.budgets.gate import Settlement
from cost_ledger.budgets.projection import settled_mark
from cost_ledger.catalog import PriceCatalog
from cost_ledger.pricing import cost_micro_usd
from router.context import PaidCall, RequestContext
from router.keys import PREFIX
from router.lost_events import Owed, lost_event, lost_parts, marker
from router.providers.client import Completion
from router.providers.errors import billed_failure
from router.token_bound import max_request_cost

log = logging.getLogger(__name__)
UNUSABLE_REASON = "unusable: the provider answered (and billed) but its answer could not be used"
"""How a billed failure's ledger event begins (router.providers.errors.billed_failure)."""
CALLS_TAG = "{calls}"
"""Hash tag of the call markers: every script here touches both of them, so one slot."""
LEASES = f"{PREFIX}{CALLS_TAG}:leases"
"""Sorted set of calls at a provider, scored by lease expiry (Redis ms)."""
EVENTS = f"{PREFIX}{CALLS_TAG}:events"
"""Hash of call id to the encoded ledger event to book if that call is lost: one event, or
a list of them, one per request the call serves (a packed call's items)."""
REAP_BATCH = 20
BOOKED_AS_LOST = "booked as a lost call at its bound while it ran (its lease lapsed), not again"
"""The reason's note on a result whose call a reaper booked first (Completion.booked_as_lost)."""

_BEGIN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return 1
"""
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZADD', KEYS[1], 'XX', 'CH', now + tonumber(ARGV[2]), ARGV[1])
"""
_DROP = """
redis.call('ZREM', KEYS[1], ARGV[1])
return redis.call('HDEL', KEYS[2], ARGV[1])
"""
_CLAIM = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local out = {}
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  local event = redis.call('HGET', KEYS[2], id)
  redis.call('HDEL', KEYS[2], id)
  if event then out[#out + 1] = event end
end
return out
"""


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


class KeptAnswer(msgspec.Struct, kw_only=True):
    """A provider's answer as stored by request id, enough to price it again."""

    provider: str
    model: str
    content: str
    answered_model: str
    usage: Usage
    latency_ms: float
    finish_reason: str
    tool_calls: list[dict[str, object]] = []
    booked_as_lost: bool = False
    """Its call was booked at its bound by a reaper while it ran (Completion.booked_as_lost)."""

    def completion(self) -> Completion:
        """The answer as dispatch received it."""
        return Completion(
            content=self.content,
            model=self.answered_model,
            usage=self.usage,
            latency_ms=self.latency_ms,
            finish_reason=self.finish_reason,
            tool_calls=self.tool_calls,
            booked_as_lost=self.booked_as_lost,
        )


def answer_key(tenant: str, request_id: str, model: str) -> str:
    """Where a request's paid answer from a model is kept (tenant first, like every router
    key; per model, so a cascade's cheap answer never stands in for its escalation)."""
    digest = hashlib.sha256(model.encode()).hexdigest()[:16]
    return f"{PREFIX}answer:{token(tenant)}:{token(request_id)}:{digest}"


class PaidAnswers:
    """Keeps paid answers and books lost calls, in Redis, for every replica."""

    def __init__(
        self,
        redis: aioredis.Redis,
        broker: NatsBroker,
        catalog: PriceCatalog,
        catalog_version: Callable[[], str],
        *,
        lease_s: float,
        answer_ttl_s: float,
        budgets: LostCallBudgets | None = None,
        liveness: Liveness | None = None,
    ) -> None:
        """lease_s must be well under ack_wait, so a redelivery finds the lost call claimable,
        and under the budgets' reservation TTL, so a lost call is settled (into budgets, when
        given) while its request's reservation still holds its room. liveness renews the
        leases (bus.liveness; default: beats on the loop)."""
        self._redis = redis
        self._liveness = liveness if liveness is not None else LoopLiveness(redis)
        self._budgets = budgets
        self._margin = (budgets.engine if budgets is not None else EngineSettings()).input_margin
        self._broker = broker
        self._catalog = catalog
        self._catalog_version = catalog_version
        self._lease_ms = int(lease_s * 1000)
        self._answer_ttl_s = int(answer_ttl_s)
        self._begin = redis.register_script(_BEGIN)
        self._claim = redis.register_script(_CLAIM)
        self._drop_script = redis.register_script(_DROP)
        self._decoder = msgspec.json.Decoder(KeptAnswer)
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

    async def kept(self, request: LlmRequest, model: str) -> KeptAnswer | None:
        """The answer from model an earlier delivery of this request paid for, if kept."""
        self._keep_reaping()
        raw = await self._redis.get(answer_key(request.tenant, request.id, model))
        if raw is None:
            return None
        try:
            return self._decoder.decode(raw)
        except msgspec.DecodeError:
            return None

    async def call(
        self,
        ctx: RequestContext,
        *,
        provider: str,
        model: str,
        input_tokens: int,
        simulated: bool,
        make: Callable[[], Awaitable[Completion]],
    ) -> Completion:
        """Make one provider call under a lease; keep its answer and note it on ctx."""
        price = self._catalog.get(model)

        def noted(completion: Completion) -> None:
            cost = 0 if completion.booked_as_lost else cost_micro_usd(price, completion.usage)
            ctx.paid.append(PaidCall(model=model, provider=provider, usage=completion.usage,
                                     cost_micro_usd=cost, simulated=simulated))  # fmt: skip

        return await self.leased(ctx.request, provider=provider, model=model,
                                 input_tokens=input_tokens, simulated=simulated, make=make,
                                 on_answer=noted, keep=True, payers=[ctx])  # fmt: skip

    async def leased(
        self,
        request: LlmRequest,
        *,
        provider: str,
        model: str,
        input_tokens: int,
        simulated: bool,
        make: Callable[[], Awaitable[Completion]],
        on_answer: Callable[[Completion], None] | None = None,
        keep: bool = False,
        payers: Sequence[RequestContext] = (),
    ) -> Completion:
        """Make one provider call (for request, or a packed request) under a lease that books
        it at its maximum if this replica dies before the answer; keep=True stores the
        answer by request id and model, for a redelivery. payers are the requests the call
        serves (a packed call's items), each booked its part (``lost_parts``); none: request."""
        # Lost calls are booked by the reaper every half lease (_keep_reaping), not before each
        # call: that was one more script, one after the other, on every provider call's way.
        self._keep_reaping()
        call_id = f"{os.getpid():x}-{uuid.uuid4().hex}"  # which process holds it, for operators
        most = self.most(request, model, input_tokens)
        version = self._catalog_version()
        parts = lost_parts(request, call_id, most, payers)
        lost = [
            lost_event(payer, event_id, provider, model, part, simulated, version)
            for payer, event_id, part in parts
        ]
        owed = Owed(payers, [part for _, _, part in parts])
        await self._begin(keys=[LEASES, EVENTS], args=[call_id, self._lease_ms, marker(lost)])
        renewal = Renewal(script=_RENEW, keys=(LEASES,), args=(call_id, self._lease_ms),
                          every_s=self._lease_ms / 3000)  # fmt: skip
        renewing = self._liveness.add(renewal)
        try:
            return await self._call_under_lease(
                request, call_id, provider=provider, model=model, make=make,
                on_answer=on_answer, keep=keep, lost=lost, owed=owed,
            )  # fmt: skip
        finally:
            self._liveness.remove(renewing)

    async def _call_under_lease(
        self,
        request: LlmRequest,
        call_id: str,
        *,
        provider: str,
        model: str,
        make: Callable[[], Awaitable[Completion]],
        on_answer: Callable[[Completion], None] | None,
        keep: bool,
        lost: list[LedgerEvent],
        owed: Owed,
    ) -> Completion:
        """leased()'s call once its lease is taken: keep the answer, then drop the lease. A
        failure the provider billed (an unusable 2xx answer) books lost, reworded, instead.
        Either way a call booked at its bound has each payer's part noted on its context."""
        answered = noted = False
        try:
            completion = await make()
            answered = True
            kept = None
            if keep:  # kept before the marker goes: a death between books it twice, not never
                kept = KeptAnswer(
                    provider=provider,
                    model=model,
                    content=completion.content,
                    answered_model=completion.model,
                    usage=completion.usage,
                    latency_ms=completion.latency_ms,
                    finish_reason=completion.finish_reason,
                    tool_calls=completion.tool_calls,
                )
                await self._redis.set(answer_key(request.tenant, request.id, model),
                                      encode(kept), ex=self._answer_ttl_s)  # fmt: skip
            if not await self._drop(call_id):  # a reaper booked it at its bound meanwhile
                completion = await self._booked_meanwhile(request, call_id, completion, kept)
                owed.note()
            noted = True
            if on_answer is not None:
                on_answer(completion)
            return completion
        except BaseException as exc:
            if answered and not noted and on_answer is not None:
                on_answer(completion)  # answered, then Redis failed: the request books it
            if not answered:  # failed before an answer: not booked (see the module doc)
                billed = billed_failure(exc)
                with contextlib.suppress(Exception):
                    if billed is None:
                        if not await asyncio.shield(self._drop(call_id)):
                            owed.note()  # a reaper booked it at its bound meanwhile (a stall)
                    else:  # paid for an answer we cannot use: booked at its maximum
                        reason = f"{UNUSABLE_REASON}: {billed.reason} (request {request.id})"
                        owed.note()  # a further call needs room beside it, settled here or not
                        await asyncio.shield(self._book_now(call_id, lost, reason))
            raise

    async def _booked_meanwhile(
        self, request: LlmRequest, call_id: str, completion: Completion, kept: KeptAnswer | None
    ) -> Completion:
        """The answer of a call a reaper booked at its bound while it ran (its lease lapsed:
        this replica's loop stalled; it was not dead), marked so that it is booked once: at
        that bound, not again at its cost by its request (or by a redelivery's kept answer)."""
        log.warning("call %s of request %s was booked as lost while it ran (its lease lapsed);"
                    " its answer is not booked again", call_id, request.id)  # fmt: skip
        if kept is not None:
            kept.booked_as_lost = True
            await self._redis.set(answer_key(request.tenant, request.id, kept.model),
                                  encode(kept), ex=self._answer_ttl_s)  # fmt: skip
        return dataclasses.replace(completion, booked_as_lost=True)

    async def _book_now(self, call_id: str, events: list[LedgerEvent], reason: str) -> None:
        """Book a call's events now: its lease made due at once, then reaped (should the reap
        fail, the reaper books it, as it books a lost call)."""
        booking = [msgspec.structs.replace(e, route_reason=reason) for e in events]
        await self._begin(keys=[LEASES, EVENTS], args=[call_id, 0, marker(booking)])
        await self.reap()

    def most(self, request: LlmRequest, model: str, input_tokens: int) -> int:
        """What a lost call of request on model is booked at: the bound the budget stage
        reserved for it (input_tokens is the router's estimate, as the stage counts it).

        Not more than its payers reserved: the charge has no reservation of its own, it is
        covered by the dead requests', so a dearer one took settled spend past a full budget
        (a margin of 2 on the estimate, against the budgets' 1.10, booked 81 micro-USD for a
        72 reservation). Dispatch falls back only to models whose bound fits the reservation
        (_fits). A packed call's bound (its own instructions, each item's output overhead)
        passes the sum of what its items reserved alone (gpt-4o-mini, 2 items: 191 against
        144 micro-USD; 8 items: 672 against 576): the packer has the items' reservations
        grown to hold it before the call goes (router.context.cover), and the lost call is
        booked per item, each part within its item's reservation (``lost_parts``).
        """
        price = self._catalog.get(model)
        return max_request_cost(request, price, self._margin, estimate=input_tokens)

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

    async def _drop(self, call_id: str) -> bool:
        """Drop an answered (or never sent) call's lease and its lost-call event: one script,
        where a MULTI/EXEC pipeline cost four commands and redis-py's pipeline object.
        False when the event was gone: a reaper claimed it (booked the call) first."""
        return bool(await self._drop_script(keys=[LEASES, EVENTS], args=[call_id]))
