"""Graded quality: scores from the agents' checks, running averages per agent in Redis, and
one alert per crossing under the target average."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from bus.embedded import EmbeddedRedis
from bus.messages import GradeAlert, QualitySignal
from bus.settings import Settings
from bus.settings_sections import GradeTarget
from cost_ledger.api_models import Filter
from flipsync.cost_report import print_report
from router.routing.grade_report import standings
from router.routing.grades import FLOOR, MIN_ANSWERS, TARGET, GradeStore, score_of


class Sink:
    """Collects grade alerts; fails the first ``fail`` publishes."""

    def __init__(self, fail: int = 0) -> None:
        self.alerts: list[tuple[GradeAlert, str]] = []
        self._fail = fail

    async def __call__(self, alert: GradeAlert, msg_id: str) -> None:
        """Keep the alert, or fail as told."""
        if self._fail:
            self._fail -= 1
            raise ConnectionError("NATS away")
        self.alerts.append((alert, msg_id))


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


async def shaky_run(grades: GradeStore, agent: str = "shaky") -> None:
    """MIN_ANSWERS answers, one in four invalid: the average ends at 0.85, under 0.88."""
    for i in range(MIN_ANSWERS):
        await grades.record(verdict(i % 4 != 0, agent=agent, problems=1))


async def test_a_crossing_under_target_publishes_one_alert_until_the_average_recovers(
    redis_client: aioredis.Redis,
) -> None:
    sink = Sink()
    grades = GradeStore(redis_client, alerts=sink)
    await shaky_run(grades)
    ((alert, msg_id),) = sink.alerts  # the twentieth answer crossed
    assert (alert.tenant, alert.agent, alert.task_type, alert.model) == (
        "t", "shaky", "text_generation", "m",
    )  # fmt: skip
    assert abs(alert.average - 0.85) < 1e-9 and alert.answers == MIN_ANSWERS
    assert (alert.target, alert.floor, alert.crossing) == (TARGET, FLOOR, 1)
    assert abs(alert.pair_average - 0.85) < 1e-9 and msg_id == "grade:t:shaky:1"
    for _ in range(3):  # still under: no more alerts
        assert (await grades.record(verdict(False, agent="shaky"))).alert
    assert len(sink.alerts) == 1
    while (await grades.record(verdict(True, agent="shaky"))).alert:
        pass  # back at or over target: recovered
    assert len(sink.alerts) == 1
    for _ in range(12):  # good answers, then under again: a second crossing
        await grades.record(verdict(True, agent="shaky"))
    while not sink.alerts[1:]:
        await grades.record(verdict(False, agent="shaky"))
    assert [a.crossing for a, _ in sink.alerts] == [1, 2]
    assert sink.alerts[1][0].average < TARGET and sink.alerts[1][1] == "grade:t:shaky:2"


async def test_a_failed_publish_is_retried_by_the_next_grade_under_target(
    redis_client: aioredis.Redis,
) -> None:
    sink = Sink(fail=1)
    grades = GradeStore(redis_client, alerts=sink)
    await shaky_run(grades)
    assert sink.alerts == []  # the crossing's publish failed
    await grades.record(verdict(False, agent="shaky"))
    ((alert, msg_id),) = sink.alerts
    assert alert.crossing == 2 and alert.answers == MIN_ANSWERS + 1 and msg_id.endswith(":2")


async def test_replicas_folding_at_once_send_one_alert_per_crossing(
    redis_client: aioredis.Redis,
) -> None:
    sinks = [Sink() for _ in range(4)]
    replicas = [GradeStore(redis_client, alerts=sink) for sink in sinks]
    verdicts = [verdict(i % 4 != 0, agent="racer", problems=1) for i in range(MIN_ANSWERS * 2)]
    await asyncio.gather(*(replicas[i % 4].record(v) for i, v in enumerate(verdicts)))
    alerts = [alert for sink in sinks for alert, _ in sink.alerts]
    assert len(alerts) == 1 and alerts[0].crossing == 1  # not one per fold under target


async def test_the_cost_report_names_the_agents_under_target(
    redis_client: aioredis.Redis, redis_server: EmbeddedRedis, capsys: pytest.CaptureFixture[str]
) -> None:
    grades = GradeStore(redis_client, alerts=Sink())
    await shaky_run(grades)
    await grades.record(verdict(True, agent="good"))
    rows = await standings(redis_client)
    assert [(s.agent, s.under_target, s.crossings) for s in rows] == [
        ("shaky", True, 1), ("good", False, 0),
    ]  # fmt: skip
    assert await standings(redis_client, "other") == []
    assert [s.agent for s in await standings(redis_client, "t", "good")] == ["good"]
    assert await print_report(Settings(redis_url=redis_server.url), None) == 0
    out = capsys.readouterr().out
    assert "Quality now (each agent's running average of its graded answers, against a " in out
    assert "UNDER TARGET  t/shaky  85.0% over 20 answers, target 88% (alert 1 sent)" in out
    assert "1 of 2 graded agents at or over target" in out
    where = Filter(tenant="t", agent="good")  # --agent narrows this section too
    assert await print_report(Settings(redis_url=redis_server.url), "t", where=where) == 0
    out = capsys.readouterr().out
    assert "UNDER TARGET" not in out and "1 of 1 graded agents at or over target" in out


async def test_an_agents_own_target_and_floor_hold_its_grades_and_reach_the_report(
    redis_client: aioredis.Redis, redis_server: EmbeddedRedis, capsys: pytest.CaptureFixture[str]
) -> None:
    strict = GradeTarget(target=0.95, floor=0.9)
    sink = Sink()
    grades = GradeStore(redis_client, alerts=sink, by_agent={"pricing": strict})
    # Both average 0.85: under the default 88% and under pricing's own 95%.
    await shaky_run(grades, agent="pricing")
    await shaky_run(grades, agent="lenient")
    retry = await grades.record(verdict(True, agent="pricing", attempt=1))
    assert retry.under_floor and (retry.target, retry.floor) == (0.95, 0.9)  # 0.85 < 0.9
    assert not (await grades.record(verdict(True, agent="lenient", attempt=1))).under_floor
    alerts = {a.agent: a for a, _ in sink.alerts}
    assert (alerts["pricing"].target, alerts["pricing"].floor) == (0.95, 0.9)
    assert (alerts["lenient"].target, alerts["lenient"].floor) == (TARGET, FLOOR)
    assert {s.agent: s.target for s in await standings(redis_client)} == {
        "pricing": 0.95, "lenient": TARGET,
    }  # fmt: skip
    assert await print_report(Settings(redis_url=redis_server.url), None) == 0
    out = capsys.readouterr().out
    assert "against each agent's own target" in out
    assert "t/pricing" in out and "target 95%" in out
