"""Per-arm sums of the running experiments, kept in Redis by one consumer of the ledger and
one of the quality signals.

A ledger event carries its arm; a quality signal carries only its request id. Each ledger
event is counted once, guarded by its event id (a replay of the LEDGER stream counts nothing
twice), and leaves its arm on its request's small hash; a request's quality signal is
counted once, in the arm of the request, whichever of the two arrives first. Every key a
script touches is declared in KEYS: the quality signal's arm is looked up first.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from faststream.nats import NatsRouter
from faststream.nats.message import NatsMessage
from redis.exceptions import RedisError

from bus import subjects
from bus.consumers import dead_letter_publisher, durable_consumer, is_permanent, redis_applier
from bus.messages import LedgerEvent, QualitySignal
from bus.settings import Settings
from cost_ledger.keys import SEEN_TTL_S
from optimizer import keys

RETRY_DELAY_S = 1.0
ACTIVE_CHECK_S = 5.0
"""How often the consumer checks whether any experiment runs (none: quality is not kept)."""
DLQ_LEDGER = "experiment-ledger"
DLQ_QUALITY = "experiment-quality"
INT64_MAX = 2**63 - 1
QUALITY_TRIES = 3
"""Lookups of a request's arm before giving up on a race (the arm is set once, so 2 do)."""
log = logging.getLogger(__name__)

# KEYS[1] the event's seen marker, KEYS[2] the request's hash, KEYS[3] the arm's sums.
# ARGV: seen ttl s, request ttl s, cost, cost^2, latency ms, latency^2. Counts the event
# once; the request's first event adds the request's quality if it arrived first. The
# squares go first: an overflowing one fails the script before anything else is written.
_LEDGER_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HINCRBY', KEYS[3], 'cost2', ARGV[4])
redis.call('HINCRBY', KEYS[3], 'lat2', ARGV[6])
redis.call('HINCRBY', KEYS[3], 'cost', ARGV[3])
redis.call('HINCRBY', KEYS[3], 'lat', ARGV[5])
redis.call('HINCRBY', KEYS[3], 'n', 1)
redis.call('SET', KEYS[1], 1, 'EX', ARGV[1])
local first = redis.call('HSETNX', KEYS[2], 'arm', KEYS[3])
redis.call('EXPIRE', KEYS[2], ARGV[2])
if first == 1 then
  local valid = redis.call('HGET', KEYS[2], 'valid')
  if valid then
    redis.call('HINCRBY', KEYS[3], 'judged', 1)
    redis.call('HINCRBY', KEYS[3], 'valid', valid)
  end
end
return 1
"""

# KEYS[1] the request's hash, KEYS[2] (if given) the arm's sums read from it. ARGV: valid
# (0/1), ttl s, the arm looked up ('' for none). Counts the first signal of a request;
# -1 when the request's arm changed since it was looked up (look up again).
_QUALITY_LUA = """
local arm = redis.call('HGET', KEYS[1], 'arm') or ''
if arm ~= ARGV[3] then return -1 end
if redis.call('HSETNX', KEYS[1], 'valid', ARGV[1]) == 0 then return 0 end
redis.call('EXPIRE', KEYS[1], ARGV[2])
if arm ~= '' then
  redis.call('HINCRBY', KEYS[2], 'judged', 1)
  redis.call('HINCRBY', KEYS[2], 'valid', ARGV[1])
end
return 1
"""


@dataclass(frozen=True, kw_only=True)
class ArmSums:
    """What one arm collected: requests, cost (micro-USD), latency (ms), valid answers."""

    n: int = 0
    cost: int = 0
    cost2: int = 0
    lat: int = 0
    lat2: int = 0
    judged: int = 0
    valid: int = 0


class ArmStats:
    """Reads and writes the per-arm sums."""

    def __init__(self, redis: aioredis.Redis, *, ttl_s: int = keys.REQUEST_TTL_S) -> None:
        self._redis = redis
        self._ttl_s = ttl_s
        self._ledger = redis.register_script(_LEDGER_LUA)
        self._quality = redis.register_script(_QUALITY_LUA)
        self._active_until = 0.0

    async def add_event(self, event: LedgerEvent) -> bool:
        """Count a ledger event in its arm (once per event id); False if it has no arm or was
        counted. Raises ValueError for an arm or sums that can never be counted."""
        if not event.arm or "/" not in event.arm:
            return False
        experiment, arm = event.arm.split("/", 1)
        cost = event.cost_micro_usd
        latency = max(event.finished_ms - event.started_ms, 0)
        args = [cost, cost * cost, latency, latency * latency]
        if any(abs(value) > INT64_MAX for value in args):
            raise ValueError(f"ledger event {event.event_id} has sums beyond 64 bits: {args}")
        sums = keys.arm_stats(experiment, arm)  # ValueError for a bad arm
        seen, request = keys.event_seen(event.event_id), keys.request_arm(event.request_id)
        ttls = [SEEN_TTL_S, self._ttl_s]
        return bool(await self._ledger(keys=[seen, request, sums], args=[*ttls, *args]))

    async def add_quality(self, signal: QualitySignal) -> bool:
        """Count a quality signal in its request's arm (once), while an experiment runs."""
        if signal.attempt != 0 or not await self._active():
            return False
        request = keys.request_arm(signal.request_id)
        for _ in range(QUALITY_TRIES):
            arm = await self._redis.hget(request, "arm")
            arm_key = keys.raw(arm) if arm is not None else b""
            args: list[bytes | int] = [int(signal.valid), self._ttl_s, arm_key]
            script_keys: list[bytes | str] = [request, arm_key] if arm_key else [request]
            counted = int(await self._quality(keys=script_keys, args=args))
            if counted >= 0:
                return counted == 1
        raise RedisError(f"request {signal.request_id}'s arm kept changing")

    async def sums(self, experiment: str, arm: str) -> ArmSums:
        """One arm's sums so far."""
        raw = await self._redis.hgetall(keys.arm_stats(experiment, arm))
        values = {keys.raw(k).decode(): int(v) for k, v in raw.items()}
        return ArmSums(**values)

    async def _active(self) -> bool:
        now = time.monotonic()
        if now < self._active_until:
            return True
        active = await self._redis.exists(keys.EXPERIMENTS) > 0
        if active:
            self._active_until = now + ACTIVE_CHECK_S
        return active


async def replay_arm_event(redis: aioredis.Redis, event: LedgerEvent) -> bool:
    """Count one replayed ledger event in its arm (a rebuild from the LEDGER stream); True if
    counted now. Idempotent by event id; an event that can never be counted is logged and
    skipped. Raises RedisError when Redis is unreachable."""
    try:
        return await ArmStats(redis).add_event(event)
    except (ValueError, RedisError) as exc:
        if not is_permanent(exc):
            raise
        log.warning("replayed ledger event %s not counted in its arm: %s", event.event_id, exc)
        return False


def experiment_router(redis: aioredis.Redis, settings: Settings) -> NatsRouter:
    """The two durable consumers (ledger events, quality signals) that feed the arm sums.

    Undecodable messages are skipped (the ledger and quality consumers dead-letter them);
    an event or signal that can never be counted (a bad arm, an overflow) is dead-lettered."""
    router = NatsRouter()
    stats = ArmStats(redis)

    async def add_event(event: LedgerEvent, msg: NatsMessage) -> None:
        """Add an event with an arm to its arm's sums."""
        await stats.add_event(event)

    async def add_quality(signal: QualitySignal, msg: NatsMessage) -> None:
        """Add a quality signal to its request's arm."""
        await stats.add_quality(signal)

    durable_consumer(
        router,
        redis_applier(
            LedgerEvent,
            add_event,
            retry_delay_s=RETRY_DELAY_S,
            dead_letter=dead_letter_publisher(router, DLQ_LEDGER),
            dead_letter_undecodable=False,
        ),
        subject=subjects.LEDGER_ARMS,  # only events with an arm: the rest are not decoded
        stream=subjects.STREAM_LEDGER,
        durable=subjects.DURABLE_EXPERIMENT_LEDGER,
        settings=settings,
        workers=16,
        title="experiment-ledger",
    )
    durable_consumer(
        router,
        redis_applier(
            QualitySignal,
            add_quality,
            retry_delay_s=RETRY_DELAY_S,
            dead_letter=dead_letter_publisher(router, DLQ_QUALITY),
            dead_letter_undecodable=False,
        ),
        subject=subjects.QUALITY_ALL,
        stream=subjects.STREAM_WORKFLOW,
        durable=subjects.DURABLE_EXPERIMENT_QUALITY,
        settings=settings,
        workers=16,
        title="experiment-quality",
    )
    return router
