"""Singleflight: identical requests in flight share one upstream call across replicas.

Two levels. Inside a replica, the first request of a fingerprint represents it and the others
await its outcome (an asyncio future, no I/O). Across replicas, representatives coordinate
through a Redis claim (see router/stages/flight.py): the one whose SET NX wins leads and
calls upstream; the others subscribe to the fingerprint's notice subject and wait.

Why a Redis claim and not NATS subject-mapping partitions: partitioning would need the
fingerprint in the request subject, so every publisher would compute it (normalization,
trimming and tiers live in the router), and a fixed partition count with one owner per
partition, which JetStream consumers shared by replicas do not give: replicas come and go and
would have to rebalance. A claim works with any number of replicas, keeps the one shared
durable consumer, and its short TTL, refreshed by a live leader, is what lets waiters take
over from a dead one. Redis is already the shared state of the caches and budgets.

Failure and redelivery:
- A leader that dies stops refreshing its claim; within the claim TTL a waiter claims it and
  calls. The dead leader's own request is redelivered after ack_wait and is served by that
  call (or the cache) at no cost: the ledger records one paid call.
- A leader's outcome is stored under its own request id before waiters are told; in the
  router service that happens after its own result is published (RequestContext.later), its
  claim kept alive until then. A leader killed before its result reached JetStream is
  redelivered and finds its paid answer kept (router.paid_answers) or its outcome, so its
  paid call is in the ledger once; one killed after its result but before the finish lets
  its claim lapse, and a waiter calls again (each call booked once: a cost, not a loss).
- Only shareable outcomes are passed on (ok, or a provider error an identical request would
  get too); a leader refused for its own reasons (deadline, budget) releases the claim and a
  waiter calls instead.
- Without Redis, requests are answered without coalescing rather than failed.

Near-duplicates (similar, not identical, within a short window; only for task types that
allow it) are the semantic cache's call: given a near_duplicates hook, dedup asks it first.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
from collections.abc import Callable
from typing import Protocol

import nats.errors
from redis.exceptions import RedisError

from bus.messages import (
    CachePolicy,
    FlightOutcome,
    Lever,
    LlmRequest,
    LlmResult,
    error_result,
)
from router.context import RequestContext
from router.errors import DeadlineExceededError, RouterError
from router.levers.served import SHAREABLE_ERRORS, served_copy, shareable
from router.pipeline import Handler
from router.stages.flight import FlightChannel, FlightStore, Inbox, make_token, token_request_id

log = logging.getLogger(__name__)


class NearDuplicates(Protocol):
    """Answers of near-identical requests of the same tenant (the semantic cache's window)."""

    async def get_near_duplicate(self, request: LlmRequest) -> LlmResult | None:
        """A near-identical request's answer re-addressed to request (lever DEDUP), or None."""
        ...


def replica_name() -> str:
    """This process as host:pid, as it appears in the claims it holds."""
    return f"{socket.gethostname()}:{os.getpid()}"


class DedupStage:
    """Coalesce identical requests in flight into one call; every waiter gets its own copy."""

    name = "dedup"

    def __init__(
        self,
        *,
        key: Callable[[LlmRequest], str],
        store: FlightStore,
        channel: FlightChannel,
        claim_ttl_s: float,
        replica: str | None = None,
        near_duplicates: NearDuplicates | None = None,
    ) -> None:
        self._key = key
        self._near = near_duplicates
        self._store = store
        self._channel = channel
        self._poll_s = claim_ttl_s / 2
        self._replica = replica or replica_name()
        self._local: dict[str, asyncio.Future[LlmResult | None]] = {}

    async def __call__(self, ctx: RequestContext, call_next: Handler) -> LlmResult:
        """The result of the one call made for all identical requests in flight."""
        request = ctx.request
        if request.cache_policy is CachePolicy.BYPASS or Lever.DEDUP in ctx.disabled_levers:
            return await call_next(ctx)
        fingerprint = self._key(request)
        if ctx.delivery > 1:  # only a redelivery can have led a call already
            try:
                own = await self._store.outcome(request.tenant, fingerprint, request.id)
            except RedisError as exc:
                log.warning("dedup unavailable, calling without coalescing: %s", exc)
                return await call_next(ctx)
            if own is not None and own.request_id == request.id:
                return own  # a redelivered leader: the call it already paid for
        if self._near is not None and request.cache_policy is CachePolicy.DEFAULT:
            near = await self._near.get_near_duplicate(request)
            if near is not None:
                return near
        while (pending := self._local.get(fingerprint)) is not None:
            source = await self._await_local(pending, ctx)
            if source is not None:
                return self._copy(source, ctx)
        future: asyncio.Future[LlmResult | None] = asyncio.get_running_loop().create_future()
        self._local[fingerprint] = future
        source = None
        try:
            result, source = await self._flight(ctx, call_next, fingerprint)
            return result
        finally:  # no await in here: local waiters see the outcome and the slot free together
            future.set_result(source)
            if self._local.get(fingerprint) is future:
                del self._local[fingerprint]

    async def _await_local(
        self, pending: asyncio.Future[LlmResult | None], ctx: RequestContext
    ) -> LlmResult | None:
        """The outcome of this replica's representative, within the request's deadline."""
        remaining = ctx.remaining_s()
        try:
            async with asyncio.timeout(remaining):
                return await asyncio.shield(pending)
        except TimeoutError:
            raise DeadlineExceededError(
                "the deadline passed while an identical request was in flight"
            ) from None

    async def _flight(
        self, ctx: RequestContext, call_next: Handler, fingerprint: str
    ) -> tuple[LlmResult, LlmResult | None]:
        """(this request's result, the outcome local waiters may share) across replicas."""
        request = ctx.request
        token = make_token(request.id, self._replica)
        try:
            holder = await self._store.claim(request.tenant, fingerprint, token)
        except RedisError as exc:
            log.warning("dedup unavailable, calling without coalescing: %s", exc)
            return await call_next(ctx), None
        if holder != token:
            async with self._channel.listen(request.tenant, fingerprint) as inbox:
                while holder != token:
                    source = await self._wait(ctx, inbox, fingerprint, holder)
                    if source is not None:
                        return self._copy(source, ctx), source
                    holder = await self._store.claim(request.tenant, fingerprint, token)
        return await self._lead(ctx, call_next, fingerprint, token)

    async def _wait(
        self, ctx: RequestContext, inbox: Inbox, fingerprint: str, holder: str | None
    ) -> LlmResult | None:
        """A shareable outcome, or None when it is time to try the claim again."""
        request = ctx.request
        if holder is None:  # the claim lapsed a moment ago: try it at once
            return None
        stored = await self._store.outcome(request.tenant, fingerprint, token_request_id(holder))
        if stored is not None and shareable(stored):
            return stored
        timeout = self._poll_s
        remaining = ctx.remaining_s()
        if remaining is not None:
            if remaining <= 0:
                raise DeadlineExceededError(
                    "the deadline passed while waiting for a coalesced call"
                )
            timeout = min(timeout, remaining)
        notice = await inbox.next(timeout)
        if notice is not None and notice.result is not None and shareable(notice.result):
            return notice.result
        return None

    async def _lead(
        self, ctx: RequestContext, call_next: Handler, fingerprint: str, token: str
    ) -> tuple[LlmResult, LlmResult | None]:
        """Make the call, keeping the claim alive, then hand the outcome to the waiters."""
        request = ctx.request
        source: LlmResult | None = None
        lead = _Lead(fingerprint)
        kept = self._store.keep(request.tenant, fingerprint, token, lead.lost)
        try:
            result = await call_next(ctx)
            source = result if shareable(result) else None
            return result, source
        except RouterError as exc:
            if exc.code not in SHAREABLE_ERRORS:
                raise
            # The leader's error result, made here as the service would, so waiters share it.
            source = error_result(request.id, request.tenant, request.agent, exc.code, exc.reason)
            return source, source
        finally:  # after the result is published (RequestContext.later): waiters on other
            # replicas get the outcome then; the claim is kept alive until it is stored
            await ctx.later(
                functools.partial(self._done, request.tenant, lead, token, source, kept)
            )

    async def _done(
        self, tenant: str, lead: _Lead, token: str, source: LlmResult | None, kept: int
    ) -> None:
        """Finish the claim (outcome stored, claim dropped, waiters told), then stop keeping
        it alive: kept until then, a stall before the finish cannot hand it to a waiter who
        would call again."""
        lead.finishing = True  # a renewal that meets the claim dropped by the finish is no loss
        try:
            await self._finish(tenant, lead.fingerprint, token, source)
        finally:
            self._store.forget(kept)

    async def _finish(
        self, tenant: str, fingerprint: str, token: str, source: LlmResult | None
    ) -> None:
        """Store the outcome and drop the claim, then wake the waiters (a release if None)."""
        outcome = FlightOutcome(fingerprint=fingerprint, result=source)
        with contextlib.suppress(RedisError, nats.errors.Error, OSError):
            if await self._store.finish(tenant, fingerprint, token, outcome):
                await self._channel.publish(tenant, outcome)  # only where someone waits

    def _copy(self, source: LlmResult, ctx: RequestContext) -> LlmResult:
        if source.request_id == ctx.request.id:
            # A second delivery of the leader itself (redelivered while the first still ran):
            # the same paid result, so the results and the ledger keep it exactly once.
            return source
        reason = f"coalesced with request {source.request_id}"
        return served_copy(source, ctx.request, Lever.DEDUP, reason, ctx.elapsed_ms())


class _Lead:
    """A call this replica leads: told when its claim lapsed, unless its finish dropped it."""

    def __init__(self, fingerprint: str) -> None:
        self.fingerprint = fingerprint
        self.finishing = False
        """Set when the finish starts: the claim is still renewed until the finish has
        dropped it, so a renewal that finds it gone meanwhile raced the drop (no lapse)."""

    def lost(self) -> None:
        """The claim lapsed while the call ran (another may have taken it): say so."""
        if not self.finishing:
            log.warning("lost the claim of call %s; a waiter may call again", self.fingerprint)
