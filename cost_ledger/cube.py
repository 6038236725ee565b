"""The ledger cube: per-day and per-hour breakdowns, of every event or of one agent's.

One Redis hash per (scope, bucket, slice) holds every breakdown of that bucket as fields
``<dimension>|<member>|<metric>``. A bucket is a UTC day (``d2026-11-02``) or hour
(``h2026-11-02T10``); a slice is ``*`` (every event), ``agent=<name>``, and for days also
``workspace=<name>`` or ``project=<workspace>/<name>`` (a project is named within its
workspace, so its member is ``<workspace>/<project>``). A report for a
tenant, an agent or a model (the model breakdown of ``*``) over a day range so reads one
hash per day. Each breakdown keeps only the metrics its readers need (METRIC_SETS).

The increments are applied inside the aggregates' idempotent script (aggregates.py): an
event replayed twice counts once here too, and a rebuild restores the cube exactly.
"""

from __future__ import annotations

import enum
from datetime import date

from bus.messages import LedgerEvent
from cost_ledger import keys

SEP = "|"
ALL = "*"


class CubeDim(enum.StrEnum):
    """What a cube hash breaks its bucket down by."""

    TOTAL = "total"
    """The one member "" : the bucket's (slice's) totals."""
    AGENT = "agent"
    MODEL = "model"
    LEVER = "lever"
    TASK_TYPE = "task_type"
    WORKFLOW = "workflow"
    """One member per workflow id: a product."""
    WORKSPACE = "workspace"
    """One member per workspace of the tenant (LedgerEvent.workspace)."""
    PROJECT = "project"
    """One member per project, as <workspace>/<project>."""


class MetricSet(enum.StrEnum):
    """Which of the aggregates' metrics (aggregates.Totals fields) a breakdown keeps."""

    ALL = "all"
    LEVER = "lever"
    TASK = "task"
    FLOW = "flow"
    HOUR = "hour"
    HOUR_TOTAL = "hour_total"


METRIC_SETS: dict[MetricSet, tuple[str, ...] | None] = {
    MetricSet.ALL: None,  # every field
    MetricSet.LEVER: ("spend_micro_usd", "baseline_micro_usd", "calls", "paid_calls"),
    MetricSet.TASK: (
        "spend_micro_usd", "baseline_micro_usd", "calls", "paid_calls", "exact_hits",
        "semantic_hits", "dedup_hits",
    ),
    MetricSet.FLOW: ("spend_micro_usd", "baseline_micro_usd", "calls"),
    MetricSet.HOUR: ("spend_micro_usd", "calls"),
    MetricSet.HOUR_TOTAL: ("spend_micro_usd", "baseline_micro_usd", "calls"),
}  # fmt: skip
"""None means every metric."""

_DAY_ALL = (
    (CubeDim.TOTAL, MetricSet.ALL),
    (CubeDim.AGENT, MetricSet.ALL),
    (CubeDim.MODEL, MetricSet.ALL),
    (CubeDim.LEVER, MetricSet.LEVER),
    (CubeDim.TASK_TYPE, MetricSet.TASK),
    (CubeDim.WORKFLOW, MetricSet.FLOW),
)
_DAY_PLACES = (
    (CubeDim.WORKSPACE, MetricSet.ALL),
    (CubeDim.PROJECT, MetricSet.ALL),
)
_DAY_WORKSPACE = (
    (CubeDim.TOTAL, MetricSet.ALL),
    (CubeDim.AGENT, MetricSet.ALL),
    (CubeDim.MODEL, MetricSet.ALL),
    (CubeDim.LEVER, MetricSet.LEVER),
    (CubeDim.TASK_TYPE, MetricSet.TASK),
    (CubeDim.PROJECT, MetricSet.ALL),
)
_DAY_PROJECT = _DAY_WORKSPACE[:-1]
PLACES_VERSION = 3
"""The seen-marker version (aggregates.MARKER_VERSION) that added the workspace and project
rows: an event applied before gets them from a rebuild."""
BASE_VERSION = 2
"""The seen-marker version that wrote every other cube row."""
_DAY_AGENT = (
    (CubeDim.TOTAL, MetricSet.ALL),
    (CubeDim.MODEL, MetricSet.ALL),
    (CubeDim.LEVER, MetricSet.LEVER),
    (CubeDim.TASK_TYPE, MetricSet.TASK),
)
_HOUR_ALL = (
    (CubeDim.TOTAL, MetricSet.HOUR_TOTAL),
    (CubeDim.AGENT, MetricSet.HOUR),
    (CubeDim.MODEL, MetricSet.HOUR),
    (CubeDim.LEVER, MetricSet.HOUR),
)
_HOUR_AGENT = ((CubeDim.MODEL, MetricSet.HOUR), (CubeDim.LEVER, MetricSet.HOUR))


def day_bucket(day: date) -> str:
    """The bucket of a UTC day."""
    return f"d{day.isoformat()}"


def hour_bucket(hour: str) -> str:
    """The bucket of a UTC hour given as YYYY-MM-DDTHH."""
    return f"h{hour}"


def agent_slice(agent: str) -> str:
    """The slice of one agent's events."""
    return f"agent={agent}"


def workspace_slice(workspace: str) -> str:
    """The slice of one workspace's events (days only)."""
    return f"workspace={workspace}"


def project_member(workspace: str, project: str) -> str:
    """A project's member in the PROJECT dimension: its workspace and its name."""
    return f"{workspace}/{project}"


def project_slice(workspace: str, project: str) -> str:
    """The slice of one project's events (days only)."""
    return f"project={project_member(workspace, project)}"


def cube_key(scope: str, bucket: str, slice_: str) -> str:
    """The hash of one bucket of one slice in one scope (slice last: it may hold anything)."""
    return f"{keys.PREFIX}cube:{keys.tag(scope)}:{bucket}:{slice_}"


def field_prefix(dim: CubeDim, member: str) -> str:
    """The start of a breakdown row's fields; the metric name follows."""
    return f"{dim.value}{SEP}{member}{SEP}"


def event_entries(
    event: LedgerEvent,
    day: str,
    hour: str,
    scopes: tuple[str, ...] = (),
    *,
    workflow: bool | None = None,
) -> list[tuple[str, str, MetricSet, int]]:
    """(hash key, field prefix, metric set, marker version that added it) of every cube row
    an event adds to, in both of its scopes (or only in scopes, when given); ``day`` is
    YYYY-MM-DD and ``hour`` YYYY-MM-DDTHH. workflow True: only the row of the event's
    workflow; False: every row but that one (the only row the workflow id decides)."""
    members = {
        CubeDim.TOTAL: "",
        CubeDim.AGENT: event.agent,
        CubeDim.MODEL: event.model or "-",
        CubeDim.LEVER: event.lever.value,
        CubeDim.TASK_TYPE: event.task_type or "-",
        CubeDim.WORKFLOW: event.workflow_id,
        CubeDim.WORKSPACE: event.workspace,
        CubeDim.PROJECT: project_member(event.workspace, event.project),
    }
    day_key, hour_key = day_bucket(date.fromisoformat(day)), hour_bucket(hour)
    mine = agent_slice(event.agent)
    plan = (
        (day_key, ALL, _DAY_ALL, BASE_VERSION),
        (day_key, mine, _DAY_AGENT, BASE_VERSION),
        (hour_key, ALL, _HOUR_ALL, BASE_VERSION),
        (hour_key, mine, _HOUR_AGENT, BASE_VERSION),
        (day_key, ALL, _DAY_PLACES, PLACES_VERSION),
        (day_key, workspace_slice(event.workspace), _DAY_WORKSPACE, PLACES_VERSION),
        (day_key, project_slice(event.workspace, event.project), _DAY_PROJECT, PLACES_VERSION),
    )
    out: list[tuple[str, str, MetricSet, int]] = []
    for scope in scopes or (keys.GLOBAL_SCOPE, keys.scope(event.tenant)):
        for bucket, slice_, rows, version in plan:
            key = cube_key(scope, bucket, slice_)
            for dim, metrics in rows:
                flow = dim is CubeDim.WORKFLOW
                if flow and not members[dim]:
                    continue  # not part of a product's workflow
                if workflow is not None and flow is not workflow:
                    continue
                out.append((key, field_prefix(dim, members[dim]), metrics, version))
    return out
