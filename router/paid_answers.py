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
4. A marker whose lease expired (its replica died while the provider answered) is booked at
   its bound by a reaper on any replica (router.lost_call_reaper; PaidAnswers is one).
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
import logging
import os
import uuid
from collections.abc import Awaitable, Callable, Sequence

import msgspec
import redis.asyncio as aioredis
from faststream.nats import NatsBroker

from bus.codec import encode
from bus.liveness import Liveness, LoopLiveness, Renewal
from bus.messages import LedgerEvent, LlmRequest
from cost_ledger.budgets.config import EngineSettings
from cost_ledger.catalog import PriceCatalog
from cost_ledger.pricing import cost_micro_usd
from router.call_markers import DROP, EVENTS, LEASES, RENEW
from router.context import PaidCall, RequestContext
from router.kept_answers import KeptAnswer, answer_key
from router.lost_call_reaper import LostCallBudgets, LostCallReaper
from router.lost_events import Owed, lost_event, lost_parts, marker
from router.providers.client import Completion
from router.providers.errors import billed_failure
from router.token_bound import max_request_cost

log = logging.getLogger(__name__)
UNUSABLE_REASON = "unusable: the provider answered (and billed) but its answer could not be used"
"""How a billed failure's ledger event begins (router.providers.errors.billed_failure)."""
BOOKED_AS_LOST = "booked as a lost call at its bound while it ran (its lease lapsed), not again"
"""The reason's note on a result whose call a reaper booked first (Completion.booked_as_lost)."""


class PaidAnswers(LostCallReaper):
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
        super().__init__(redis, broker, lease_ms=int(lease_s * 1000), budgets=budgets)
        self._liveness = liveness if liveness is not None else LoopLiveness(redis)
        self._margin = (budgets.engine if budgets is not None else EngineSettings()).input_margin
        self._catalog = catalog
        self._catalog_version = catalog_version
        self._answer_ttl_s = int(answer_ttl_s)
        self._drop_script = redis.register_script(DROP)
        self._decoder = msgspec.json.Decoder(KeptAnswer)

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
        renewal = Renewal(script=RENEW, keys=(LEASES,), args=(call_id, self._lease_ms),
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

    async def _drop(self, call_id: str) -> bool:
        """Drop an answered (or never sent) call's lease and its lost-call event: one script,
        where a MULTI/EXEC pipeline cost four commands and redis-py's pipeline object.
        False when the event was gone: a reaper claimed it (booked the call) first."""
        return bool(await self._drop_script(keys=[LEASES, EVENTS], args=[call_id]))
