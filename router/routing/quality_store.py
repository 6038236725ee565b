"""Quality counts in Redis, shared by every router replica, and the book the route stage reads.

Each (model, task type) pair keeps two weighted counts, good and bad, in two Redis hashes
(field ``<model>|<task_type>``). A signal is added once per signal id (a marker key with a
week's expiry), so a redelivered quality message is not counted twice. The catalog's
quality placeholders are the priors; ``QualityBook`` (router.routing.quality) turns prior
plus counts into a Beta estimate.

Replicas read the counts through ``QualityView``, a snapshot refreshed at most once per
``refresh_s``, so routing costs one HGETALL pair per refresh, not per request.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import redis.asyncio as aioredis

from cost_ledger.catalog import PriceCatalog
from router.keys import PREFIX
from router.routing.quality import BetaEstimate, QualityBook, QualitySignal, SignalWeights

GOOD_KEY = f"{PREFIX}{{quality}}:good"  # one hash tag: the record script touches all three
BAD_KEY = f"{PREFIX}{{quality}}:bad"
SEEN_PREFIX = f"{PREFIX}{{quality}}:seen:"
SEEN_TTL_S = 7 * 24 * 3600
"""How long a signal id is remembered (JetStream redelivers well within it)."""
SEP = "|"

log = logging.getLogger(__name__)

# KEYS: counts hash of the signal's verdict, seen marker, the other counts hash. ARGV: field,
# weight, ttl, discount. Once per marker: both counts of the pair times the discount, then
# the weight added to the verdict's.
_RECORD = """
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', tonumber(ARGV[3])) then
  local discount = tonumber(ARGV[4])
  if discount < 1 then
    local mine = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') * discount
    local other = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0') * discount
    redis.call('HSET', KEYS[1], ARGV[1], tostring(mine + tonumber(ARGV[2])))
    redis.call('HSET', KEYS[3], ARGV[1], tostring(other))
  else
    redis.call('HINCRBYFLOAT', KEYS[1], ARGV[1], ARGV[2])
  end
  return 1
end
return 0
"""


def field_of(model: str, task_type: str) -> str:
    """The hash field of a (model, task type) pair."""
    return f"{model}{SEP}{task_type}"


def pair_of(field: str) -> tuple[str, str] | None:
    """The (model, task type) of a hash field, or None for a foreign one."""
    model, sep, task_type = field.rpartition(SEP)
    return (model, task_type) if sep and model and task_type else None


@dataclass(frozen=True, kw_only=True)
class Counts:
    """Weighted good and bad signals of one (model, task type) pair."""

    good: float
    bad: float


class QualityStore:
    """Records quality signals in Redis, once per signal id, and reads the counts back."""

    def __init__(
        self,
        redis: aioredis.Redis,
        weights: SignalWeights | None = None,
        *,
        discount: float = 1.0,
    ) -> None:
        """discount: factor on a pair's counts before each new signal (router.routing.quality)."""
        if not 0.0 < discount <= 1.0:
            raise ValueError("discount must lie in (0, 1]")
        self._redis = redis
        self._weights = weights or SignalWeights()
        self._discount = discount
        self._record = redis.register_script(_RECORD)

    async def record(self, signal: QualitySignal, signal_id: str) -> bool:
        """Add one signal unless signal_id was recorded before; True when it was added."""
        key, other = (GOOD_KEY, BAD_KEY) if signal.good else (BAD_KEY, GOOD_KEY)
        added = await self._record(
            keys=[key, SEEN_PREFIX + signal_id, other],
            args=[
                field_of(signal.model, signal.task_type),
                self._weights.of(signal.kind),
                SEEN_TTL_S,
                self._discount,
            ],
        )
        return bool(added)

    async def counts(self) -> dict[tuple[str, str], Counts]:
        """Every recorded pair's counts."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(GOOD_KEY)
            pipe.hgetall(BAD_KEY)
            good_raw, bad_raw = await pipe.execute()
        good = _floats(good_raw)
        bad = _floats(bad_raw)
        return {
            pair: Counts(good=good.get(pair, 0.0), bad=bad.get(pair, 0.0))
            for pair in set(good) | set(bad)
        }


def book_of(
    counts: Mapping[tuple[str, str], Counts],
    priors: Mapping[str, float],
    prior_strength: float,
    offset_sd: float = 0.0,
) -> QualityBook:
    """A QualityBook with the given priors and recorded counts (offset_sd: QualityBook's)."""
    book = QualityBook(priors=priors, prior_strength=prior_strength, offset_sd=offset_sd)
    snapshot: dict[str, dict[str, list[float]]] = {}
    for (model, task_type), c in counts.items():
        snapshot.setdefault(task_type, {})[model] = [c.good, c.bad]
    book.restore(snapshot)
    return book


async def quality_estimates(
    redis: aioredis.Redis,
    *,
    catalog: PriceCatalog | None = None,
    prior_strength: float = 10.0,
) -> dict[tuple[str, str], BetaEstimate]:
    """Estimates of every (model, task type) with recorded signals: mean and n (observations).

    The prior is the catalog's quality placeholder, worth prior_strength observations.
    """
    catalog = catalog or PriceCatalog.load()
    counts = await QualityStore(redis).counts()
    book = book_of(counts, {m.name: m.quality for m in catalog.models()}, prior_strength)
    return {pair: book.estimate(*pair) for pair in sorted(counts)}


class QualityView:
    """The quality estimates routing reads: a snapshot of Redis, refreshed every refresh_s."""

    def __init__(
        self,
        store: QualityStore,
        priors: Mapping[str, float],
        *,
        prior_strength: float = 10.0,
        refresh_s: float = 2.0,
        offset_sd: float = 0.0,
    ) -> None:
        """offset_sd above 0: priors move by each task type's shared offset
        (router.routing.offset)."""
        self._store = store
        self._priors = dict(priors)
        self._prior_strength = prior_strength
        self._refresh_s = refresh_s
        self._offset_sd = offset_sd
        self._book = QualityBook(
            priors=self._priors, prior_strength=prior_strength, offset_sd=offset_sd
        )
        self._means: dict[str, dict[str, float]] = {}
        self._loaded_at: float | None = None
        self._lock = asyncio.Lock()

    @property
    def store(self) -> QualityStore:
        """Where signals are recorded."""
        return self._store

    async def estimates(self, task_type: str, models: Iterable[str]) -> dict[str, float]:
        """Posterior mean quality of each model on a task type (refreshing a stale snapshot)."""
        await self._fresh()
        means = self._means.setdefault(task_type, {})
        for model in models:
            if model not in means:
                means[model] = self._book.estimate(model, task_type).mean
        return means

    async def sample(
        self, task_type: str, models: Iterable[str], rng: random.Random
    ) -> dict[str, float]:
        """One posterior draw per model (Thompson sampling), for a request that explores."""
        await self._fresh()
        return self._book.sample(task_type, models, rng)

    async def refresh(self) -> None:
        """Read the counts from Redis now."""
        counts = await self._store.counts()
        self._book = book_of(counts, self._priors, self._prior_strength, self._offset_sd)
        self._means = {}
        self._loaded_at = time.monotonic()

    async def _fresh(self) -> None:
        loaded = self._loaded_at
        if loaded is not None and time.monotonic() - loaded < self._refresh_s:
            return
        async with self._lock:
            if self._loaded_at is loaded:  # nobody refreshed while this one waited
                try:
                    await self.refresh()
                except Exception:  # routing goes on with what it knew (the priors at worst)
                    log.warning("quality counts unreadable; routing on the last snapshot")
                    self._loaded_at = time.monotonic()


def _floats(raw: Mapping[bytes | str, bytes | str]) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for key, value in raw.items():
        name = key.decode() if isinstance(key, bytes) else key
        pair = pair_of(name)
        if pair is not None:
            out[pair] = float(value)
    return out
