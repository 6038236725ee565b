"""Pure workflow bookkeeping: what one agent's settling changes, and what to do about it."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from agents.dag import WorkflowDag
from bus.messages import WorkflowState


class Finish(enum.StrEnum):
    """How a workflow ends, if this step ends it."""

    NONE = ""
    OK = "ok"
    FAILED = "failed"


@dataclass(frozen=True, kw_only=True)
class Step:
    """The outcome of recording one agent-done event in a workflow's state."""

    state: WorkflowState
    """The state to store (the same as before for a replayed event)."""
    run: tuple[str, ...]
    """Agents to start now."""
    finish: Finish
    lost: tuple[str, ...] = ()
    """Required agents that failed or were blocked, when the workflow failed."""
    replay: bool = False
    """The event had been recorded before (a redelivery): nothing changed."""


def record(dag: WorkflowDag, state: WorkflowState, agent: str, ok: bool) -> Step:
    """Record that agent settled; say which agents became ready and whether the run ended.

    A new event yields exactly the agents it made ready, and the end once: the one event
    that settles the last agent (or loses a required one) finishes the workflow. A replayed
    event yields everything ready and any end again; starting and finishing are idempotent
    (message ids and checkpoints), so a handler that died half-way is simply completed.
    A cancelled workflow changes no more: nothing runs and it never finishes.
    """
    if state.cancelled:
        return Step(state=state, run=(), finish=Finish.NONE, replay=True)
    replay = agent in state.ok or agent in state.failed
    after = state
    if not replay:
        after = WorkflowState(
            workflow_id=state.workflow_id,
            tenant=state.tenant,
            product_id=state.product_id,
            ok=[*state.ok, agent] if ok else list(state.ok),
            failed=list(state.failed) if ok else [*state.failed, agent],
        )
    lost_before = dag.lost(state.failed)
    lost_after = dag.lost(after.failed)
    if lost_after:
        first = replay or not lost_before
        return Step(
            state=after,
            run=(),
            finish=Finish.FAILED if first else Finish.NONE,
            lost=tuple(lost_after),
            replay=replay,
        )
    ready_after = dag.ready(after.ok, after.failed)
    if replay:
        run = tuple(ready_after)
    else:
        before = set(dag.ready(state.ok, state.failed))
        run = tuple(name for name in ready_after if name not in before)
    done_after = dag.settled(after.ok, after.failed)
    done_before = dag.settled(state.ok, state.failed)
    finish = Finish.OK if done_after and (replay or not done_before) else Finish.NONE
    return Step(state=after, run=run, finish=finish, replay=replay)


def roots(dag: WorkflowDag) -> tuple[str, ...]:
    """The agents an upload starts: those that need nothing but it."""
    return tuple(dag.ready(()))
