"""Graded quality: a 0..1 score per answer, kept per agent, task type and model, with a floor
and a running average per agent, and an alert when the average falls below its target.

The score comes from what the agent's checks report (bus.messages.QualitySignal): 1.0 for
an answer valid at once, ``RETRY_SCORE`` for one valid only after the targeted retry, and
for an invalid one ``INVALID_SCORE`` less ``PER_PROBLEM`` for each further problem found
(0 at worst). Where configured, a judge model's 0..1 score of an answer is folded in as
well (router.stages.judge, ``record_score``), one more grade of that answer. The seeds ask
for an 80% floor per answer and an 88% running average per agent: ``GradeStore`` keeps
exponential running averages
(over about ``WINDOW`` answers) in Redis and reports, per signal, whether the answer fell
under the floor and whether the agent's average is under target (an alert once it has at
least ``MIN_ANSWERS``).
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from bus.messages import QualitySignal
from bus.subjects import token
from router.keys import PREFIX

FLOOR = 0.80
TARGET = 0.88
WINDOW = 100
MIN_ANSWERS = 20
RETRY_SCORE = 0.85
INVALID_SCORE = 0.4
PER_PROBLEM = 0.1

# KEYS: the agent's hash. ARGV: field of the (task|model) average, score, window.
# Folds the score into the agent's and the pair's running averages; returns the agent's
# average and answer count.
_FOLD = """
local function ewma(field, n_field, score, window)
  local n = tonumber(redis.call('HGET', KEYS[1], n_field) or '0')
  local avg = tonumber(redis.call('HGET', KEYS[1], field) or tostring(score))
  local step = 1 / math.min(n + 1, window)
  avg = avg + (score - avg) * step
  redis.call('HSET', KEYS[1], field, tostring(avg), n_field, tostring(n + 1))
  return {avg, n + 1}
end
local score, window = tonumber(ARGV[2]), tonumber(ARGV[3])
ewma('pair:' .. ARGV[1], 'n:' .. ARGV[1], score, window)
local agent = ewma('avg', 'n', score, window)
return {tostring(agent[1]), agent[2]}
"""


def score_of(signal: QualitySignal) -> float:
    """The 0..1 grade of one answer (module docstring)."""
    if signal.valid:
        return 1.0 if signal.attempt == 0 else RETRY_SCORE
    extra = max(len(signal.problems) - 1, 0)
    return max(INVALID_SCORE - PER_PROBLEM * extra, 0.0)


def grade_key(tenant: str, agent: str) -> str:
    """The Redis hash of one agent's running averages."""
    return f"{PREFIX}grade:{token(tenant)}:{token(agent)}"


@dataclass(frozen=True, kw_only=True)
class Grade:
    """One answer's grade and where its agent stands."""

    score: float
    under_floor: bool
    agent_average: float
    answers: int
    alert: bool
    """The agent's running average is under target (after MIN_ANSWERS answers)."""


class GradeStore:
    """Running averages of grades in Redis, per agent and per (task type, model)."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._fold = redis.register_script(_FOLD)

    async def record(self, signal: QualitySignal) -> Grade:
        """Fold one answer's grade; where its agent stands now."""
        return await self.record_score(
            signal.tenant, signal.agent, signal.task_type, signal.model, score_of(signal)
        )

    async def record_score(
        self, tenant: str, agent: str, task_type: str, model: str, score: float
    ) -> Grade:
        """Fold one 0..1 score of an answer (a verdict's, a judge's); where its agent stands."""
        score = min(max(score, 0.0), 1.0)
        pair = f"{task_type}|{model}"
        raw = await self._fold(keys=[grade_key(tenant, agent)], args=[pair, score, WINDOW])
        average, answers = float(raw[0]), int(raw[1])
        return Grade(
            score=score,
            under_floor=score < FLOOR,
            agent_average=average,
            answers=answers,
            alert=answers >= MIN_ANSWERS and average < TARGET,
        )
