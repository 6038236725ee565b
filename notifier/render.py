"""What a person reads: an alert (budget, grade) or an anomaly as a Slack-compatible JSON
body, and as an email. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bus.messages import BudgetAlert, GradeAlert
from cost_ledger.api_models import CostPerCallAnomaly, SpendAnomaly


@dataclass(frozen=True, kw_only=True)
class Notice:
    """One thing to tell people: an id (the same for every copy), a title and the details."""

    id: str
    """Stable across replicas and redeliveries: what "delivered once" is counted by."""
    title: str
    lines: tuple[str, ...]
    fields: dict[str, str | int | float]
    """The facts, machine-readable, for receivers that want more than text."""


def usd(micro: int) -> str:
    """Integer micro-dollars as dollars, exact."""
    return f"${Decimal(micro) / Decimal(1_000_000):,.2f}"


def budget_notice(alert: BudgetAlert, alert_id: str) -> Notice:
    """The notice of a budget alert."""
    percent = round(alert.threshold * 100)
    who = alert.tenant or "all tenants"
    title = f"Budget {alert.budget or alert.scope} at {percent}% ({who}, {alert.period_key})"
    lines = (
        f"Spent {usd(alert.spent_micro_usd)} of {usd(alert.limit_micro_usd)} "
        f"this {alert.period} ({alert.period_key}).",
        f"Scope: {alert.scope}.",
    )
    fields: dict[str, str | int | float] = {
        "kind": "budget_alert",
        "budget": alert.budget,
        "scope": alert.scope,
        "tenant": alert.tenant,
        "period": alert.period,
        "period_key": alert.period_key,
        "threshold": alert.threshold,
        "limit_micro_usd": alert.limit_micro_usd,
        "spent_micro_usd": alert.spent_micro_usd,
    }
    return Notice(id=alert_id, title=title, lines=lines, fields=fields)


def grade_notice(alert: GradeAlert) -> Notice:
    """The notice of a grade alert; its id is the one the router published it with
    (router.routing.grade_alerts.alert_id), the same in every copy."""
    title = (
        f"Quality of agent {alert.agent} ({alert.tenant}) at {alert.average:.1%}, "
        f"under its {alert.target:.0%} target"
    )
    where = " on ".join(x for x in (alert.task_type, alert.model) if x) or "unknown"
    lines = (
        f"Running average {alert.average:.1%} over {alert.answers} graded answers; target "
        f"{alert.target:.0%}, floor per answer {alert.floor:.0%}.",
        f"The answer that took it under: {where} (that pair averages {alert.pair_average:.1%}).",
        f"Crossing {alert.crossing} for this agent; sent again only after it recovers.",
    )
    fields: dict[str, str | int | float] = {
        "kind": "grade_alert",
        "tenant": alert.tenant,
        "agent": alert.agent,
        "task_type": alert.task_type,
        "model": alert.model,
        "average": alert.average,
        "target": alert.target,
        "floor": alert.floor,
        "answers": alert.answers,
        "pair_average": alert.pair_average,
        "crossing": alert.crossing,
    }
    notice_id = f"grade:{alert.tenant}:{alert.agent}:{alert.crossing}"
    return Notice(id=notice_id, title=title, lines=lines, fields=fields)


def slack_body(notice: Notice) -> dict[str, Any]:
    """Slack's incoming-webhook JSON: text for notifications, blocks for the message, and the
    facts under "flipsync" for other receivers (Slack ignores it)."""
    return {
        "text": notice.title,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": notice.title[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(notice.lines)}},
        ],
        "flipsync": {"id": notice.id, **notice.fields},
    }


MAX_SUBJECT_CHARS = 200
"""An email subject's length: the title's facts come first, the rest is in the body."""


def email_text(notice: Notice) -> tuple[str, str]:
    """Subject and plain-text body of the notice's email. The subject is one line: a control
    character (a line break) in the title becomes a space, so no text of an alert can add
    a header, and the email is still sent."""
    body = "\n".join((*notice.lines, "", f"Alert id: {notice.id}"))
    title = "".join(c if c.isprintable() else " " for c in notice.title)
    return f"[FlipSync] {title}"[:MAX_SUBJECT_CHARS], body + "\n"


def spend_anomaly_notice(anomaly: SpendAnomaly) -> Notice:
    """The notice of an hour of unusual spend."""
    title = f"Unusual spend in hour {anomaly.hour}: {usd(anomaly.spend_micro_usd)}"
    lines = (
        f"Spent {usd(anomaly.spend_micro_usd)} against a usual hour of "
        f"{usd(anomaly.baseline_micro_usd)} (robust z {anomaly.score:.1f}).",
        f"Likely cause: {anomaly.likely_cause}.",
    )
    fields: dict[str, str | int | float] = {
        "kind": "spend_anomaly",
        "hour": anomaly.hour,
        "spend_micro_usd": anomaly.spend_micro_usd,
        "baseline_micro_usd": anomaly.baseline_micro_usd,
        "score": anomaly.score,
    }
    return Notice(id=f"anomaly:spend:{anomaly.hour}", title=title, lines=lines, fields=fields)


def cost_per_call_notice(anomaly: CostPerCallAnomaly) -> Notice:
    """The notice of an hour in which an agent's cost per call jumped."""
    title = f"Agent {anomaly.agent}: unusual cost per call in hour {anomaly.hour}"
    lines = (
        f"{usd(anomaly.cost_per_call_micro_usd)} per call over {anomaly.calls} calls, against "
        f"a usual {usd(anomaly.baseline_cost_per_call_micro_usd)} (robust z {anomaly.score:.1f}).",
        f"Likely cause: {anomaly.likely_cause}.",
    )
    fields: dict[str, str | int | float] = {
        "kind": "cost_per_call_anomaly",
        "agent": anomaly.agent,
        "hour": anomaly.hour,
        "calls": anomaly.calls,
        "cost_per_call_micro_usd": anomaly.cost_per_call_micro_usd,
        "baseline_cost_per_call_micro_usd": anomaly.baseline_cost_per_call_micro_usd,
        "score": anomaly.score,
    }
    notice_id = f"anomaly:cost_per_call:{anomaly.agent}:{anomaly.hour}"
    return Notice(id=notice_id, title=title, lines=lines, fields=fields)
