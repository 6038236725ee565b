"""Graded quality: scores from the agents' checks, running averages per agent in Redis."""

from __future__ import annotations

import redis.asyncio as aioredis

from bus.messages import QualitySignal
from router.routing.grades import FLOOR, MIN_ANSWERS, GradeStore, score_of


def verdict(
    valid: bool, *, agent: str = "copy", attempt: int = 0, problems: int = 0
) -> QualitySignal:
    """An agent's verdict on one answer."""
    return QualitySignal(
        request_id="r", tenant="t", agent=agent, task_type="text_generation", model="m",
        valid=valid, attempt=attempt, problems=[f"p{i}" for i in range(problems)],
    )  # fmt: skip


def test_scores_grade_first_time_valid_retries_and_problems() -> None:
    assert score_of(verdict(True)) == 1.0
    assert FLOOR < score_of(verdict(True, attempt=1)) < 1.0
    assert score_of(verdict(False, problems=1)) > score_of(verdict(False, problems=3)) >= 0.0


async def test_an_agent_under_its_target_average_raises_an_alert(
    redis_client: aioredis.Redis,
) -> None:
    grades = GradeStore(redis_client)
    for _ in range(MIN_ANSWERS):
        good = await grades.record(verdict(True, agent="good"))
    assert good.agent_average == 1.0 and not good.alert and good.answers == MIN_ANSWERS
    last = None
    for i in range(MIN_ANSWERS):  # one answer in four fails: average about 0.85 < 0.88
        last = await grades.record(verdict(i % 4 != 0, agent="shaky", problems=1))
    assert last is not None and last.alert and 0.8 < last.agent_average < 0.88
    bad = await grades.record(verdict(False, agent="shaky", problems=1))
    assert bad.under_floor and bad.score == 0.4
    # The good agent's average is its own.
    assert not (await grades.record(verdict(True, agent="good"))).alert
