"""The shared state of coalesced calls: claims and outcomes in Redis, notices on core NATS.

A call's leader holds the claim ``flight:<tenant>:<fingerprint>:claim`` (SET NX with a short
TTL that it refreshes while it works). A request that finds the claim held counts itself a
waiter in the same script. When the leader finishes it stores its outcome under its own
request id and drops the claim in one script, then, if anyone waited, tells the waiters on
``llm.flight.<tenant>.<fingerprint>``. The notice is only a wake-up: a waiter that missed it
(it counted itself after the leader finished, or subscribed after the notice) finds the
stored outcome when it looks, and one whose leader died finds the claim gone and claims it
itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import nats.errors
import redis.asyncio as aioredis
from faststream.nats import NatsBroker
from nats.aio.subscription import Subscription

from bus import subjects
from bus.codec import decode, encode
from bus.errors import WireError
from bus.liveness import Liveness, LoopLiveness, Lost, Renewal
from bus.messages import FlightOutcome, LlmResult
from router import keys

# KEYS[1] claim, KEYS[2] waiters. ARGV: token, ttl ms. Returns the token holding the claim
# (ours if we won), or nil when it lapsed between the two calls (the caller tries again). A
# request that finds the claim held counts itself a waiter, so the leader knows to tell.
_CLAIM_LUA = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return ARGV[1]
end
redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return redis.call('GET', KEYS[1])
"""

# KEYS[1] claim, KEYS[2] the leader's outcome, KEYS[3] waiters. ARGV: token, outcome ('' for
# none), ttl ms. Returns 1 when a request waited on the claim (so the waiters need a notice).
_FINISH_LUA = """
if ARGV[2] ~= '' then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
return redis.call('DEL', KEYS[3])
"""

# KEYS[1] claim. ARGV: token, ttl ms. Returns 1 if the claim is still ours and was extended.
_REFRESH_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


def make_token(request_id: str, replica: str) -> str:
    """A leader's claim token: its request id, then the replica (host:pid) that runs it."""
    return f"{request_id}:{replica}"


def token_request_id(token: str) -> str:
    """The request id of the leader holding a claim token."""
    return token.split(":", 1)[0]


class FlightStore:
    """Claims and outcomes of coalesced calls, shared by every router replica."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        claim_ttl_s: float,
        result_ttl_s: float,
        liveness: Liveness | None = None,
    ) -> None:
        """liveness keeps a leader's claim alive (bus.liveness; default: beats on the loop)."""
        self._liveness = liveness if liveness is not None else LoopLiveness(redis)
        self._claim_ttl_ms = max(int(claim_ttl_s * 1000), 1)
        self._result_ttl_ms = max(int(result_ttl_s * 1000), 1)
        self._redis = redis
        self._claim = redis.register_script(_CLAIM_LUA)
        self._finish = redis.register_script(_FINISH_LUA)
        self._refresh = redis.register_script(_REFRESH_LUA)

    async def claim(self, tenant: str, fingerprint: str, token: str) -> str | None:
        """Try to lead: the token now holding the claim (token itself if we lead), or None."""
        held = await self._claim(
            keys=[keys.flight_claim(tenant, fingerprint), keys.flight_waiters(tenant, fingerprint)],
            args=[token, self._claim_ttl_ms],
        )
        return held.decode() if isinstance(held, bytes) else held

    def keep(self, tenant: str, fingerprint: str, token: str, on_lost: Lost) -> int:
        """Keep our claim alive, every third of its TTL, until forget(returned key); on_lost
        is called once if it lapsed and another took it."""
        renewal = Renewal(
            script=_REFRESH_LUA,
            keys=(keys.flight_claim(tenant, fingerprint),),
            args=(token, self._claim_ttl_ms),
            every_s=self._claim_ttl_ms / 3000,
        )
        return self._liveness.add(renewal, on_lost)

    def forget(self, kept: int) -> None:
        """Stop keeping a claim alive."""
        self._liveness.remove(kept)

    async def refresh(self, tenant: str, fingerprint: str, token: str) -> bool:
        """Extend our claim; False if it lapsed and is no longer ours."""
        done = await self._refresh(
            keys=[keys.flight_claim(tenant, fingerprint)], args=[token, self._claim_ttl_ms]
        )
        return bool(done)

    async def finish(
        self, tenant: str, fingerprint: str, token: str, outcome: FlightOutcome | None
    ) -> bool:
        """Store the outcome under the leader's request id (if any) and drop its claim;
        returns whether any request waited on the claim (and so needs to be told)."""
        claim = keys.flight_claim(tenant, fingerprint)
        done = keys.flight_done(tenant, fingerprint, token_request_id(token))
        waiters = keys.flight_waiters(tenant, fingerprint)
        value = encode(outcome) if outcome is not None and outcome.result is not None else b""
        waited = await self._finish(
            keys=[claim, done, waiters], args=[token, value, self._result_ttl_ms]
        )
        return bool(waited)

    async def outcome(
        self, tenant: str, fingerprint: str, leader_request_id: str
    ) -> LlmResult | None:
        """The stored result of the call led by leader_request_id, if it finished."""
        raw = await self._redis.get(keys.flight_done(tenant, fingerprint, leader_request_id))
        if raw is None:
            return None
        try:
            return decode(raw if isinstance(raw, bytes) else raw.encode(), FlightOutcome).result
        except WireError:
            return None


@dataclass
class Inbox:
    """The notices of one fingerprint's calls, as this replica receives them."""

    subscription: Subscription

    async def next(self, timeout_s: float) -> FlightOutcome | None:
        """The next notice, or None if none came within timeout_s."""
        try:
            msg = await self.subscription.next_msg(timeout=max(timeout_s, 0.001))
        except nats.errors.TimeoutError:
            return None
        try:
            return decode(msg.data, FlightOutcome)
        except WireError:
            return None


class FlightChannel:
    """Notices of finished coalesced calls on core NATS (no stream: a wake-up, not a record)."""

    def __init__(self, broker: NatsBroker) -> None:
        self._broker = broker

    async def publish(self, tenant: str, outcome: FlightOutcome) -> None:
        """Tell every waiter of outcome's fingerprint."""
        subject = subjects.llm_flight(tenant, outcome.fingerprint)
        await self._broker.connection.publish(subject, encode(outcome))

    @contextlib.asynccontextmanager
    async def listen(self, tenant: str, fingerprint: str) -> AsyncIterator[Inbox]:
        """Subscribe to a fingerprint's notices (confirmed by the server before this yields)."""
        connection = self._broker.connection
        subscription = await connection.subscribe(subjects.llm_flight(tenant, fingerprint))
        try:
            await connection.flush()
            yield Inbox(subscription)
        finally:
            with contextlib.suppress(nats.errors.Error):
                await subscription.unsubscribe()
