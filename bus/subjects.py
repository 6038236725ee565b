"""Every NATS subject, stream and bucket name, and the builders that fill them in.

No other module writes a subject as an inline string. Tenants and agents become subject
tokens, so ``token`` refuses anything NATS would read as a separator or a wildcard.
"""

from __future__ import annotations

import re

# JetStream streams: name -> the subjects it stores.
STREAM_REQUESTS = "LLM_REQUESTS"
STREAM_RESULTS = "LLM_RESULTS"
STREAM_LEDGER = "LEDGER"
STREAM_WORKFLOW = "WORKFLOW"
STREAM_DLQ = "DLQ"

REQUESTS_ALL = "llm.request.>"
RESULTS_ALL = "llm.result.>"
LEDGER_ALL = "ledger.>"
LEDGER_ARMS = "ledger.*.arm"
"""Ledger events of requests in an experiment arm: the only ones the experiment consumer reads."""
DLQ_ALL = "dlq.>"
UPLOADS_ALL = "product.uploaded.>"
AGENT_RUN_ALL = "agent.run.>"
AGENT_DONE_ALL = "agent.done.>"
WORKFLOW_ALL = "workflow.>"
BUDGET_ALERTS_ALL = "budget.alert.>"
QUALITY_ALL = "quality.>"
"""Quality signals of LLM answers (QualitySignal), kept in WORKFLOW for routing to learn from."""
GRADE_ALERTS_ALL = "grade.alert.>"
"""An agent's running quality average under its target (GradeAlert), kept in WORKFLOW beside
the signals it comes from. Not under quality.>, whose consumer reads only QualitySignal."""
CHAT_ASK_ALL = "chat.ask.*"
"""Seller-chat questions (ChatAsk), core NATS request/reply, answered by a queue group."""
BUDGET_CONTROL = "budget.control"
"""Run-time budget changes (BudgetChange): every replica applies them; kept in LEDGER."""
FLAGS_CONTROL = "flags.control"
"""Core NATS (no stream): a feature flag changed in Redis (FlagChange); every router reloads."""
LLM_FLIGHT_ALL = "llm.flight.>"
"""Every coalesced call's core-NATS channel (see llm_flight); for NATS permissions."""
LLM_STREAM_ALL = "llm.stream.>"
"""Every streamed request's core-NATS text pieces (see llm_stream); for NATS permissions."""

STREAM_SUBJECTS: dict[str, list[str]] = {
    STREAM_REQUESTS: [REQUESTS_ALL],
    STREAM_RESULTS: [RESULTS_ALL],
    STREAM_LEDGER: [LEDGER_ALL, BUDGET_ALERTS_ALL, BUDGET_CONTROL],
    STREAM_WORKFLOW: [
        UPLOADS_ALL,
        AGENT_RUN_ALL,
        AGENT_DONE_ALL,
        WORKFLOW_ALL,
        QUALITY_ALL,
        GRADE_ALERTS_ALL,
    ],
    STREAM_DLQ: [DLQ_ALL],
}

# Durable consumer names.
DURABLE_ROUTER = "router"
DURABLE_LEDGER = "ledger"
DURABLE_WORKFLOW = "workflow"
DURABLE_QUALITY = "routing-quality"
"""The router's consumer of quality signals and feedback, which routing learns from."""
DURABLE_EXPERIMENT_LEDGER = "experiment-ledger"
"""The experiments' consumer of ledger events (per-arm cost and latency sums)."""
DURABLE_EXPERIMENT_QUALITY = "experiment-quality"
"""The experiments' consumer of quality signals (per-arm valid answers)."""
DURABLE_NOTIFIER = "notifier"
"""The notifier's consumer of budget alerts (delivered to webhooks and email)."""
DURABLE_NOTIFIER_GRADES = "notifier-grades"
"""The notifier's consumer of grade alerts (the WORKFLOW stream's; delivered as budget alerts)."""

# Key-value buckets and object stores.
BUCKET_CHECKPOINTS = "checkpoints"
BUCKET_PHOTO_ANALYSES = "photo_analyses"
"""Per tenant, agent and perceptual hash: a photo's analysis, so it is never paid twice."""
OBJECT_STORE_PHOTOS = "photos"

_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")


def token(value: str) -> str:
    """Return value if it is safe as one subject token, else raise ValueError."""
    # fullmatch: with match and "$", a value ending in a newline would pass.
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        raise ValueError(f"{shown(value)} is not a valid subject token (letters, digits, _ and -)")
    return value


SHOWN_CHARS = 40
"""How much of a refused name an error repeats: enough to recognise, never a whole upload."""


def shown(value: object) -> str:
    """A refused value as an error may quote it: its repr, cut to SHOWN_CHARS characters."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else f"{text[:SHOWN_CHARS]}... ({len(text)} chars)"


def valid_token(value: object) -> bool:
    """Whether value is safe as one subject token (bounded: 1 to 64 characters)."""
    return isinstance(value, str) and _TOKEN.fullmatch(value) is not None


def llm_request(tenant: str, agent: str) -> str:
    """Subject an agent publishes its LLM requests on."""
    return f"llm.request.{token(tenant)}.{token(agent)}"


def tenant_llm_requests(tenant: str) -> str:
    """Filter for every LLM request of one tenant (each agent's subject)."""
    return f"llm.request.{token(tenant)}.*"


def request_sender(subject: str) -> tuple[str, str] | None:
    """(tenant, agent) of a request subject, which NATS permissions vouch for; else None."""
    parts = subject.split(".")
    if len(parts) != 4 or parts[:2] != ["llm", "request"]:
        return None
    try:
        return token(parts[2]), token(parts[3])
    except ValueError:
        return None


def llm_result(tenant: str, agent: str, request_id: str) -> str:
    """Subject the one terminal result of a request is published on."""
    return f"llm.result.{token(tenant)}.{token(agent)}.{token(request_id)}"


def llm_stream(tenant: str, agent: str, request_id: str) -> str:
    """Core NATS subject (no stream) a streamed request's text pieces are relayed on."""
    return f"llm.stream.{token(tenant)}.{token(agent)}.{token(request_id)}"


def llm_flight(tenant: str, fingerprint: str) -> str:
    """Core NATS subject (no stream) where a coalesced call's leader tells its waiters."""
    return f"llm.flight.{token(tenant)}.{token(fingerprint)}"


def ledger(tenant: str) -> str:
    """Subject of a tenant's ledger events."""
    return f"ledger.{token(tenant)}"


def ledger_arm(tenant: str) -> str:
    """Subject of a tenant's ledger events that carry an experiment arm (under LEDGER_ALL too)."""
    return f"ledger.{token(tenant)}.arm"


def ledger_for(tenant: str, arm: str | None) -> str:
    """Where a ledger event goes: its tenant's arm subject if it has an arm, else ledger()."""
    return ledger_arm(tenant) if arm else ledger(tenant)


def is_ledger_of(subject: str, tenant: str) -> bool:
    """Whether subject is one of tenant's own ledger subjects; raises ValueError for a bad
    tenant. Events published before arms had a subject of their own came on ledger()."""
    return subject in (ledger(tenant), ledger_arm(tenant))


def budget_alert(tenant: str) -> str:
    """Subject of a tenant's budget alerts."""
    return f"budget.alert.{token(tenant)}"


def grade_alert(tenant: str) -> str:
    """Subject of a tenant's grade alerts (an agent's quality average under its target)."""
    return f"grade.alert.{token(tenant)}"


def dead_letter(source: str) -> str:
    """Dead-letter subject for messages that failed on a source ('router', 'ledger'...)."""
    return f"dlq.{token(source)}"


def product_uploaded(tenant: str) -> str:
    """Subject a product upload is announced on."""
    return f"product.uploaded.{token(tenant)}"


def agent_run(agent: str, tenant: str) -> str:
    """Subject that tells an agent to run for one workflow."""
    return f"agent.run.{token(agent)}.{token(tenant)}"


def agent_run_all(agent: str) -> str:
    """Filter for every run command of one agent."""
    return f"agent.run.{token(agent)}.*"


def agent_done(tenant: str, workflow_id: str, agent: str) -> str:
    """Subject an agent announces its finished (or failed) work on."""
    return f"agent.done.{token(tenant)}.{token(workflow_id)}.{token(agent)}"


def workflow_progress(tenant: str, workflow_id: str) -> str:
    """Subject of a workflow's progress events."""
    return f"workflow.progress.{token(tenant)}.{token(workflow_id)}"


def workflow_done(tenant: str, workflow_id: str) -> str:
    """Subject of a workflow's final event."""
    return f"workflow.done.{token(tenant)}.{token(workflow_id)}"


WORKFLOW_DONE_ALL = "workflow.done.>"
WORKFLOW_PROGRESS_ALL = "workflow.progress.>"


def checkpoint_key(tenant: str, workflow_id: str, agent: str) -> str:
    """Key of one agent's output for one workflow in the checkpoint bucket (tenant first)."""
    return f"{token(tenant)}.{token(workflow_id)}.{token(agent)}"


def workflow_checkpoints(tenant: str, workflow_id: str) -> str:
    """Key filter of every checkpoint of one workflow."""
    return f"{token(tenant)}.{token(workflow_id)}.*"


def tenant_checkpoints(tenant: str, name: str) -> str:
    """Key filter of one checkpoint name (e.g. "package") across a tenant's workflows."""
    return f"{token(tenant)}.*.{token(name)}"


def checkpoints_named(name: str) -> str:
    """Key filter of one checkpoint name (e.g. "package") across every tenant's workflows."""
    return f"*.*.{token(name)}"


def photo_analysis_key(tenant: str, agent: str, phash: str) -> str:
    """Key of one agent's analysis of one photo (by perceptual hash) for one tenant."""
    return f"{token(tenant)}.{token(agent)}.{token(phash)}"


def quality(tenant: str) -> str:
    """Subject of a tenant's quality signals."""
    return f"quality.{token(tenant)}"


def quality_feedback(tenant: str) -> str:
    """Subject of explicit feedback on a tenant's answers (a QualitySignal, in WORKFLOW too)."""
    return f"quality.feedback.{token(tenant)}"


def chat_ask(tenant: str) -> str:
    """Subject a seller's chat question is asked on (request/reply)."""
    return f"chat.ask.{token(tenant)}"
