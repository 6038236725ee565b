"""What a result leaves behind: its ledger event (the money) and its quality signal."""

from __future__ import annotations

import msgspec

from bus.messages.base import WIRE_VERSION, now_ms
from bus.messages.llm import DEFAULT_PROJECT, DEFAULT_WORKSPACE, Lever, Usage


class LedgerEvent(msgspec.Struct, kw_only=True):
    """One priced outcome of a request, published once on ledger.<tenant>; the money's truth."""

    event_id: str
    request_id: str
    tenant: str
    agent: str
    workflow_id: str
    task_type: str
    model: str
    provider: str
    usage: Usage
    cost_micro_usd: int
    """What was actually paid (0 for a cache hit, pattern answer or dedup waiter)."""
    baseline_micro_usd: int
    """The naive baseline of the same request; savings are baseline minus cost."""
    lever: Lever
    catalog_version: str
    paid_call: bool
    """Whether an upstream provider call was paid for this event."""
    simulated: bool = False
    started_ms: int = 0
    finished_ms: int = 0
    user: str = ""
    """The end user the request was made for (LlmRequest.tags["user"]), for message quotas."""
    arm: str | None = None
    """The experiment arm ("experiment/arm") the request was assigned to, if any."""
    pack_size: int = 0
    """Requests that shared this event's packed provider call (lever packed); 0 if unknown."""
    route_reason: str = ""
    """Why the request went to its model (the routing decision, escalations included)."""
    savings_by_lever: dict[str, int] = {}
    """Lever name to the micro-dollars that lever alone took off the naive baseline; filled
    by the money work (issue 16) so that the parts sum to baseline minus cost."""
    overhead_of: str = ""
    """The lever whose own cost this event is (a shadow check, a cascade's failed first
    attempt, an embedding call), charged against that lever's savings; empty for an answer."""
    router_settled: str = ""
    """"<cost>:<messages>" when the router's own settle of this request charged exactly that,
    first, in every budget group: the ledger then has nothing to settle (settle once);
    empty when it did not (the ledger settles, as the budgets' final word)."""
    workspace: str = DEFAULT_WORKSPACE
    """The request's workspace (LlmRequest.workspace); events from before workspaces are in
    the default one."""
    project: str = DEFAULT_PROJECT
    """The request's project within its workspace (LlmRequest.project)."""
    reserved_by: str = ""
    """A call booked at its bound under its own id (lost with its replica, or billed but
    unusable): the request whose budget reservation held its room. The first settle of this
    event takes its cost off that reservation, so the room is not counted as spent and as
    held at once, and a redelivery of that request must find room for its own call."""
    v: int = WIRE_VERSION


class QualitySignal(msgspec.Struct, kw_only=True):
    """Whether one LLM answer passed its agent's checks, on quality.<tenant>; routing learns
    from it which model is good enough for which task type."""

    request_id: str
    tenant: str
    agent: str
    workflow_id: str = ""
    task_type: str
    model: str
    provider: str = ""
    lever: Lever = Lever.NONE
    valid: bool
    problems: list[str] = []
    """What the checks (schema and validators) found wrong; empty when valid."""
    attempt: int = 0
    """0 for the first answer, 1 for the targeted retry."""
    escalated: bool = False
    """Whether the request asked for a stronger model after an invalid answer."""
    at_ms: int = msgspec.field(default_factory=lambda: now_ms())
    v: int = WIRE_VERSION


class GradeAlert(msgspec.Struct, kw_only=True):
    """An agent's running quality average fell under its target, on grade.alert.<tenant>;
    sent once per crossing, and again only after the average recovered to the target."""

    tenant: str
    agent: str
    task_type: str = ""
    """The task type of the answer whose grade took the average under (where known)."""
    model: str = ""
    """The model of that answer (where known)."""
    average: float
    """The agent's running average of 0..1 grades (router.routing.grades), after that answer."""
    target: float
    """The average the agent should keep (0.88 in the seeds)."""
    floor: float
    """The grade under which one answer counts as bad (0.80 in the seeds)."""
    answers: int
    """Answers graded for the agent so far (the average is over about the last 100)."""
    pair_average: float = 0.0
    """The running average of the agent's answers of this task type on this model."""
    crossing: int = 1
    """Which crossing of this agent this is (1 for its first): with tenant and agent, the
    alert's id, the same in every copy of the message."""
    at_ms: int = msgspec.field(default_factory=lambda: now_ms())
    v: int = WIRE_VERSION
