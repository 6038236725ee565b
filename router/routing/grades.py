"""Graded quality: a 0..1 score per answer, kept per agent, task type and model, with a floor
and a running average per agent, and an alert when the average falls below its target.

The score comes from what the agent's checks report (bus.messages.QualitySignal): 1.0 for
an answer valid at once, ``RETRY_SCORE`` for one valid only after the targeted retry, and
for an invalid one ``INVALID_SCORE`` less ``PER_PROBLEM`` for each further problem found
(0 at worst). Where configured, a judge model's 0..1 score of an answer is folded in as
well (router.stages.judge, ``record_score``), one more grade of that answer. The seeds ask
for an 80% floor per answer and an 88% running average per agent: ``GradeStore`` keeps
exponential running averages (over about ``WINDOW`` answers) in Redis and reports, per
grade, whether the answer fell under the floor and whether the agent's average is under
target (once it has at least ``MIN_ANSWERS``).

The alert: the fold that takes an agent's average under target (with ``MIN_ANSWERS``) marks
the agent alerted and numbers the crossing, in the same script, so of all the replicas
folding grades exactly one sees each crossing; that one publishes a GradeAlert
(router.routing.grade_alerts). Folds while the agent stays under send nothing; the first
fold back at or over target clears the mark, so the next fall is a new crossing. A publish
that fails clears the mark, so the next grade under target tries again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis.asyncio as aioredis

from bus.messages import GradeAlert, QualitySignal
from bus.settings_sections import GradeTarget
from bus.subjects import token
from router.keys import PREFIX
from router.routing.grade_alerts import GradeAlertSink, alert_id

FLOOR = GradeTarget().floor
TARGET = GradeTarget().target
WINDOW = 100
MIN_ANSWERS = 20
RETRY_SCORE = 0.85
INVALID_SCORE = 0.4
PER_PROBLEM = 0.1

log = logging.getLogger(__name__)

# KEYS: the agent's hash. ARGV: field of the (task|model) average, score, window, target,
# min answers, floor. Folds the score into the agent's and the pair's running averages,
# keeps the alert mark (module docstring) and the agent's target and floor (for reports);
# returns the agent's average and answer count, the pair's average, and the crossing's
# number if this fold crossed under target (else 0).
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
local target, min_answers = tonumber(ARGV[4]), tonumber(ARGV[5])
local pair = ewma('pair:' .. ARGV[1], 'n:' .. ARGV[1], score, window)
local agent = ewma('avg', 'n', score, window)
redis.call('HSET', KEYS[1], 'target', ARGV[4], 'floor', ARGV[6])
local alerted = redis.call('HGET', KEYS[1], 'alerted') == '1'
local crossing = 0
if agent[1] < target then
  if not alerted and agent[2] >= min_answers then
    crossing = redis.call('HINCRBY', KEYS[1], 'crossings', 1)
    redis.call('HSET', KEYS[1], 'alerted', '1')
  end
elseif alerted then
  redis.call('HSET', KEYS[1], 'alerted', '0')
end
return {tostring(agent[1]), agent[2], tostring(pair[1]), crossing}
"""

# KEYS: the agent's hash. ARGV: a crossing whose alert was not sent. Clears the mark if no
# later crossing set it, so the next grade under target is a crossing again.
_RELEASE = """
if redis.call('HGET', KEYS[1], 'crossings') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'alerted', '0')
end
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
    pair_average: float = 0.0
    """The running average of the agent's answers of this task type on this model."""
    crossing: int = 0
    """The crossing's number when this grade took the average under target, else 0."""
    target: float = TARGET
    floor: float = FLOOR
    """The agent's target and floor this grade was held to."""


class GradeStore:
    """Running averages of grades in Redis, per agent and per (task type, model); with a
    sink, the alert of each crossing under target goes there (module docstring)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        alerts: GradeAlertSink | None = None,
        *,
        default: GradeTarget | None = None,
        by_agent: dict[str, GradeTarget] | None = None,
    ) -> None:
        """default and by_agent: each agent's target and floor (routing.grade and
        routing.grade_by_agent; the seeds' 88% and 80% without them)."""
        self._redis = redis
        self._alerts = alerts
        self._default = default or GradeTarget()
        self._by_agent = by_agent or {}
        self._fold = redis.register_script(_FOLD)
        self._release = redis.register_script(_RELEASE)

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
        key = grade_key(tenant, agent)
        wanted = self._by_agent.get(agent, self._default)
        raw = await self._fold(
            keys=[key], args=[pair, score, WINDOW, wanted.target, MIN_ANSWERS, wanted.floor]
        )
        average, answers = float(raw[0]), int(raw[1])
        grade = Grade(
            score=score,
            under_floor=score < wanted.floor,
            agent_average=average,
            answers=answers,
            alert=answers >= MIN_ANSWERS and average < wanted.target,
            pair_average=float(raw[2]),
            crossing=int(raw[3]),
            target=wanted.target,
            floor=wanted.floor,
        )
        if grade.crossing and self._alerts is not None:
            await self._send(key, alert_of(grade, tenant, agent, task_type, model))
        return grade

    async def _send(self, key: str, alert: GradeAlert) -> None:
        """Publish one crossing's alert; if that fails, clear the mark for the next grade."""
        assert self._alerts is not None
        log.warning(
            "quality of agent %s (tenant %s) averages %.3f over %d answers, under its %.2f "
            "target: alert %d", alert.agent, alert.tenant, alert.average, alert.answers,
            alert.target, alert.crossing,
        )  # fmt: skip
        try:
            await self._alerts(alert, alert_id(alert))
        except Exception:
            log.warning("grade alert %s not published; the next grade under target retries",
                        alert_id(alert), exc_info=True)  # fmt: skip
            await self._release(keys=[key], args=[alert.crossing])


def alert_of(grade: Grade, tenant: str, agent: str, task_type: str, model: str) -> GradeAlert:
    """The alert of a grade that crossed under target."""
    return GradeAlert(
        tenant=tenant,
        agent=agent,
        task_type=task_type,
        model=model,
        average=grade.agent_average,
        target=grade.target,
        floor=grade.floor,
        answers=grade.answers,
        pair_average=grade.pair_average,
        crossing=grade.crossing,
    )
