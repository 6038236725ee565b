"""Per-arm sums of the running experiments, kept in Redis by one consumer of the ledger and
one of the quality signals.

A ledger event carries its arm; a quality signal carries only its request id. Whichever of
the two arrives first is kept on the request's own small hash, and the second one completes
the arm's sums, in one Lua script each, once per request (redeliveries count nothing).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from faststream.exceptions import NackMessage
from faststream.nats import NatsRouter
from redis.exceptions import RedisError

from bus import subjects
from bus.codec import decode
from bus.consumers import Incoming, durable_consumer, message
from bus.errors import WireError
from bus.messages import LedgerEvent, QualitySignal
from bus.settings import Settings
from optimizer import keys

RETRY_DELAY_S = 1.0
ACTIVE_CHECK_S = 5.0
"""How often the consumer checks whether any experiment runs (none: quality is not kept)."""
log = logging.getLogger(__name__)

# KEYS[1] the request's hash, KEYS[2] the arm's sums. ARGV: ttl s, cost, cost^2, latency ms,
# latency^2. Counts the event once; adds the request's quality if it arrived first.
_LEDGER_LUA = """
if redis.call('HSETNX', KEYS[1], 'l', 1) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'arm', KEYS[2])
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('HINCRBY', KEYS[2], 'n', 1)
redis.call('HINCRBY', KEYS[2], 'cost', ARGV[2])
redis.call('HINCRBY', KEYS[2], 'cost2', ARGV[3])
redis.call('HINCRBY', KEYS[2], 'lat', ARGV[4])
redis.call('HINCRBY', KEYS[2], 'lat2', ARGV[5])
local valid = redis.call('HGET', KEYS[1], 'valid')
if valid then
  redis.call('HINCRBY', KEYS[2], 'judged', 1)
  redis.call('HINCRBY', KEYS[2], 'valid', valid)
end
return 1
"""

# KEYS[1] the request's hash. ARGV: valid (0/1), ttl s. Counts the first signal of a request.
_QUALITY_LUA = """
if redis.call('HSETNX', KEYS[1], 'valid', ARGV[1]) == 0 then return 0 end
redis.call('EXPIRE', KEYS[1], ARGV[2])
local arm = redis.call('HGET', KEYS[1], 'arm')
if arm then
  redis.call('HINCRBY', arm, 'judged', 1)
  redis.call('HINCRBY', arm, 'valid', ARGV[1])
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
        """Count a ledger event in its arm (once); False if it has no arm or was counted."""
        if not event.arm or "/" not in event.arm:
            return False
        experiment, arm = event.arm.split("/", 1)
        cost = event.cost_micro_usd
        latency = max(event.finished_ms - event.started_ms, 0)
        args = [self._ttl_s, cost, cost * cost, latency, latency * latency]
        request, sums = keys.request_arm(event.request_id), keys.arm_stats(experiment, arm)
        return bool(await self._ledger(keys=[request, sums], args=args))

    async def add_quality(self, signal: QualitySignal) -> bool:
        """Count a quality signal in its request's arm (once), while an experiment runs."""
        if signal.attempt != 0 or not await self._active():
            return False
        args = [int(signal.valid), self._ttl_s]
        return bool(await self._quality(keys=[keys.request_arm(signal.request_id)], args=args))

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


def experiment_router(redis: aioredis.Redis, settings: Settings) -> NatsRouter:
    """The two durable consumers (ledger events, quality signals) that feed the arm sums."""
    router = NatsRouter()
    stats = ArmStats(redis)

    async def on_ledger_event(incoming: Incoming) -> None:
        """Add an event with an arm to its arm's sums."""
        msg = message(incoming)
        try:
            event = decode(msg.body, LedgerEvent)
            await stats.add_event(event)
        except WireError as exc:  # the ledger consumer dead-letters it; nothing to count
            log.debug("experiment consumer skipped a ledger message: %s", exc)
        except RedisError as exc:
            raise NackMessage(delay=RETRY_DELAY_S) from exc

    async def on_quality(incoming: Incoming) -> None:
        """Add a quality signal to its request's arm."""
        msg = message(incoming)
        try:
            await stats.add_quality(decode(msg.body, QualitySignal))
        except WireError as exc:
            log.warning("experiment consumer skipped a quality signal: %s", exc)
        except RedisError as exc:
            raise NackMessage(delay=RETRY_DELAY_S) from exc

    durable_consumer(
        router,
        on_ledger_event,
        subject=subjects.LEDGER_ALL,
        stream=subjects.STREAM_LEDGER,
        durable=subjects.DURABLE_EXPERIMENT_LEDGER,
        settings=settings,
        workers=16,
        title="experiment-ledger",
    )
    durable_consumer(
        router,
        on_quality,
        subject=subjects.QUALITY_ALL,
        stream=subjects.STREAM_WORKFLOW,
        durable=subjects.DURABLE_EXPERIMENT_QUALITY,
        settings=settings,
        workers=16,
        title="experiment-quality",
    )
    return router
