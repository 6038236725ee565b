"""Workflow bookkeeping, pure: what becomes ready, when a run ends, replays, optional gaps."""

from __future__ import annotations

from agents.dag import WorkflowDag
from agents.progress import Finish, record, roots
from agents.spec import UPLOAD, AgentSpec, Family
from agents.specs import WORKFLOW_SPECS
from bus.messages import WorkflowState


def spec(
    name: str, consumes: tuple[str, ...], optional: tuple[str, ...] = (), required: bool = True
) -> AgentSpec:
    """A zero-call spec for DAG shapes."""
    return AgentSpec(name=name, family=Family.COPY, consumes=consumes, optional=optional,
                     required=required, compute=lambda _inputs: {})  # fmt: skip


# a -> b (optional) ; c needs a, uses b ; d needs b (optional agent) ; e needs c
DAG = WorkflowDag(
    (
        spec("a", (UPLOAD,)),
        spec("b", ("a",), required=False),
        spec("c", ("a",), optional=("b",)),
        spec("d", ("b",), required=False),
        spec("e", ("c",)),
    )
)


def empty() -> WorkflowState:
    return WorkflowState(workflow_id="w", tenant="t")


def test_each_event_starts_exactly_what_it_made_ready() -> None:
    assert roots(DAG) == ("a",)
    step = record(DAG, empty(), "a", ok=True)
    assert step.run == ("b",) and step.finish is Finish.NONE  # c waits for its optional b
    step = record(DAG, step.state, "b", ok=True)
    assert set(step.run) == {"c", "d"}
    step = record(DAG, step.state, "c", ok=True)
    assert step.run == ("e",)
    step = record(DAG, step.state, "d", ok=True)
    assert step.run == () and step.finish is Finish.NONE
    step = record(DAG, step.state, "e", ok=True)
    assert step.finish is Finish.OK and not step.replay


def test_an_optional_failure_leaves_a_gap_and_the_rest_goes_on() -> None:
    step = record(DAG, record(DAG, empty(), "a", ok=True).state, "b", ok=False)
    assert step.run == ("c",)  # c runs without b; d can never run
    assert step.finish is Finish.NONE
    step = record(DAG, step.state, "c", ok=True)
    step = record(DAG, step.state, "e", ok=True)
    assert step.finish is Finish.OK  # d is blocked, not awaited


def test_a_required_failure_fails_the_run_once() -> None:
    step = record(DAG, record(DAG, empty(), "a", ok=True).state, "b", ok=True)
    step = record(DAG, step.state, "c", ok=False)
    assert step.finish is Finish.FAILED and step.lost == ("c", "e") and step.run == ()
    later = record(DAG, step.state, "d", ok=True)  # an agent still in flight settles
    assert later.finish is Finish.NONE and later.run == ()


def test_a_replayed_event_changes_nothing_and_reannounces() -> None:
    state = record(DAG, empty(), "a", ok=True).state
    replay = record(DAG, state, "a", ok=True)
    assert replay.replay and replay.state == state and replay.run == ("b",)
    done = state
    for name in ("b", "c", "d", "e"):
        done = record(DAG, done, name, ok=True).state
    again = record(DAG, done, "e", ok=True)
    assert again.replay and again.finish is Finish.OK  # the end is announced again


def test_the_real_workflow_runs_every_agent_once_in_some_order() -> None:
    dag = WorkflowDag(WORKFLOW_SPECS)
    state, started = empty(), list(roots(dag))
    queue = list(started)
    finish = Finish.NONE
    while queue:
        step = record(dag, state, queue.pop(0), ok=True)
        state, finish = step.state, step.finish
        started += step.run
        queue += step.run
    assert sorted(started) == sorted(dag.specs) and finish is Finish.OK
