"""A stop does not wait on the agents: guarded work gives way at once, and is handed back
quietly; a cancelled workflow's state starts nothing more."""

from __future__ import annotations

import asyncio
import logging
import sys

import pytest
from faststream.exceptions import NackMessage

from agents.dag import WorkflowDag
from agents.progress import Finish, record, roots
from agents.specs import WORKFLOW_SPECS
from bus.consumers import _patient
from bus.logs import CancelledIsNoError
from bus.messages import WorkflowState
from bus.stopping import Stopped, Stopping


async def test_guarded_work_gives_way_as_soon_as_the_stop_begins() -> None:
    stopping = Stopping()
    cleaned: list[str] = []

    async def long_wait() -> str:
        try:
            await asyncio.sleep(3600)  # an agent waiting on its LLM result
        finally:
            cleaned.append("unsubscribed")
        return "never"

    guarded = asyncio.create_task(stopping.guard(long_wait()))
    await asyncio.sleep(0)
    stopping.set()
    async with asyncio.timeout(5):  # a hang guard: the stop does not wait for the hour
        with pytest.raises(Stopped):
            await guarded
    assert cleaned == ["unsubscribed"]
    with pytest.raises(Stopped):  # work arriving after the stop does not start
        await stopping.guard(asyncio.sleep(0, "late"))


async def test_guarded_work_that_finishes_returns_its_result() -> None:
    assert await Stopping().guard(asyncio.sleep(0, "done")) == "done"


async def test_a_stopped_handler_is_handed_back_without_a_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def handler(_incoming: object) -> None:
        raise Stopped("the process is stopping")

    with caplog.at_level(logging.DEBUG), pytest.raises(NackMessage):
        await _patient("agent-x", handler)(object())
    assert caplog.records == []


def test_a_cancelled_handler_is_not_logged_as_an_error() -> None:
    quiet = CancelledIsNoError()
    try:
        raise asyncio.CancelledError
    except asyncio.CancelledError:
        cancelled = logging.LogRecord(
            "flipsync.broker", logging.ERROR, __file__, 1, "CancelledError", (), sys.exc_info()
        )
    failed = logging.LogRecord(
        "flipsync.broker", logging.ERROR, __file__, 1, "ValueError: bad", (), None
    )
    assert not quiet.filter(cancelled)
    assert quiet.filter(failed)


def test_a_cancelled_workflow_runs_nothing_more_and_never_finishes() -> None:
    dag = WorkflowDag(WORKFLOW_SPECS)
    first = roots(dag)[0]
    state = WorkflowState(workflow_id="wf", tenant="t", cancelled=True)
    step = record(dag, state, first, True)
    assert step.run == () and step.finish is Finish.NONE and step.state == state
    # The same event on a live workflow starts what it unblocked.
    live = record(dag, WorkflowState(workflow_id="wf", tenant="t"), first, True)
    assert live.state.ok == [first] and not live.state.cancelled
