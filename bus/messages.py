"""Every message FlipSync sends over NATS, as versioned msgspec Structs.

Money is integer micro-dollars (``*_micro_usd``) on the wire, never float. Each Struct carries
``v``, its schema version; a reader rejects a version it does not know with a clear error
(see ``bus.codec``). New optional fields may be added without a version bump.
"""

from __future__ import annotations

import enum
import time

import msgspec

WIRE_VERSION = 1


class Priority(enum.StrEnum):
    """How soon the requester needs the answer; bulk may wait for a batch window."""

    INTERACTIVE = "interactive"
    STANDARD = "standard"
    BULK = "bulk"


class CachePolicy(enum.StrEnum):
    """Whether the caches may serve or store this request."""

    DEFAULT = "default"
    BYPASS = "bypass"  # neither read nor write
    REFRESH = "refresh"  # skip reading, store the fresh answer


class Lever(enum.StrEnum):
    """What served a result, and so which lever the saving is attributed to."""

    ROUTED = "routed"  # a paid provider call on the routed model
    ESCALATED = "escalated"  # a paid call after a cheaper model failed validation
    EXACT_CACHE = "exact_cache"
    SEMANTIC_CACHE = "semantic_cache"
    PATTERN = "pattern"
    DEDUP = "dedup"
    PACKED = "packed"
    BATCH_API = "batch_api"
    TRIMMED = "trimmed"
    ZERO_CALL = "zero_call"
    NONE = "none"  # an error result: nothing was served


class ErrorCode(enum.StrEnum):
    """Stable error codes of an error result; the human reason says the rest."""

    MALFORMED = "malformed"
    OVERSIZED = "oversized"
    UNSUPPORTED_VERSION = "unsupported_version"
    UNKNOWN_AGENT = "unknown_agent"
    OVER_BUDGET = "over_budget"
    PROVIDER_ERROR = "provider_error"
    PROVIDER_RATE_LIMITED = "provider_rate_limited"
    SCHEMA_INVALID = "schema_invalid"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    INTERNAL = "internal"


class Status(enum.StrEnum):
    """Terminal status of an LLM request."""

    OK = "ok"
    ERROR = "error"


class TextPart(msgspec.Struct, tag="text", kw_only=True):
    """A text piece of a message."""

    text: str


class ImagePart(msgspec.Struct, tag="image_url", kw_only=True):
    """An image piece of a message: a data: or https: URL, with its pixel size when known."""

    url: str
    detail: str = "low"
    width: int | None = None
    height: int | None = None


Part = TextPart | ImagePart


class ChatMessage(msgspec.Struct, kw_only=True):
    """One chat message; content is plain text or a list of parts."""

    role: str
    content: str | list[Part]


class OutputSchema(msgspec.Struct, kw_only=True):
    """A JSON schema the answer must validate against (OpenAI response_format json_schema)."""

    name: str
    schema: dict[str, object]
    strict: bool = True


class LlmRequest(msgspec.Struct, kw_only=True):
    """One LLM call an agent needs, published on llm.request.<tenant>.<agent>."""

    id: str
    """Unique and stable across retries: the idempotency key of the whole pipeline."""
    tenant: str
    agent: str
    workflow_id: str = ""
    task_type: str = "general"
    messages: list[ChatMessage]
    output_schema: OutputSchema | None = None
    max_output_tokens: int = 512
    temperature: float = 0.0
    priority: Priority = Priority.STANDARD
    quality_floor: float = 0.0
    """Lowest acceptable quality estimate (0..1) of the model that serves it."""
    deadline_ms: int = 0
    """Unix epoch milliseconds after which the requester no longer waits; 0 means none."""
    cache_policy: CachePolicy = CachePolicy.DEFAULT
    model_hint: str = ""
    """A model the requester prefers; routing may still override it."""
    tags: dict[str, str] = {}
    created_ms: int = msgspec.field(default_factory=lambda: now_ms())
    v: int = WIRE_VERSION


class Usage(msgspec.Struct, kw_only=True):
    """Token usage as the provider reported it."""

    input_tokens: int = 0
    """All prompt tokens, cached ones included."""
    cached_input_tokens: int = 0
    """The part of input_tokens served from the provider's prompt cache."""
    output_tokens: int = 0


class LlmResult(msgspec.Struct, kw_only=True):
    """The one terminal result of an LlmRequest, published on llm.result.<tenant>.<agent>.<id>."""

    request_id: str
    tenant: str
    agent: str
    status: Status
    error_code: ErrorCode | None = None
    reason: str = ""
    """Human reason for an error, or for the routing decision of a success."""
    content: str = ""
    parsed: object | None = None
    """The answer decoded from JSON when the request gave an output schema."""
    model: str = ""
    provider: str = ""
    usage: Usage = msgspec.field(default_factory=Usage)
    cost_micro_usd: int = 0
    baseline_micro_usd: int = 0
    """What the naive path (premium model, no cache, dedup or batching) would have cost."""
    lever: Lever = Lever.NONE
    latency_ms: float = 0.0
    simulated: bool = False
    """True when the simulated provider produced it."""
    finished_ms: int = msgspec.field(default_factory=lambda: now_ms())
    v: int = WIRE_VERSION

    @property
    def ok(self) -> bool:
        """Whether the request succeeded."""
        return self.status is Status.OK


def error_result(
    request_id: str, tenant: str, agent: str, code: ErrorCode, reason: str
) -> LlmResult:
    """The error result of a request: a stable code and a human reason."""
    return LlmResult(
        request_id=request_id,
        tenant=tenant,
        agent=agent,
        status=Status.ERROR,
        error_code=code,
        reason=reason,
    )


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
    v: int = WIRE_VERSION


class BudgetAlert(msgspec.Struct, kw_only=True):
    """A budget crossed a threshold (0.5, 0.8, 1.0) in its period; sent once per threshold."""

    scope: str
    period: str
    threshold: float
    limit_micro_usd: int
    spent_micro_usd: int
    at_ms: int = msgspec.field(default_factory=lambda: now_ms())
    v: int = WIRE_VERSION


class Photo(msgspec.Struct, kw_only=True):
    """A product photo kept in the JetStream object store, by name."""

    object_name: str
    content_type: str = "image/png"
    width: int = 0
    height: int = 0


class ProductUploaded(msgspec.Struct, kw_only=True):
    """A seller uploaded a product: the start of one workflow (and one trace)."""

    workflow_id: str
    tenant: str
    product_id: str
    title_hint: str = ""
    notes: str = ""
    cost_price: str = ""
    """What the seller paid, as a decimal string, for margin work; empty if unknown."""
    photos: list[Photo] = []
    priority: Priority = Priority.STANDARD
    uploaded_ms: int = msgspec.field(default_factory=lambda: now_ms())
    v: int = WIRE_VERSION


class RunAgent(msgspec.Struct, kw_only=True):
    """The workflow tells an agent that its inputs exist and it may run."""

    workflow_id: str
    tenant: str
    agent: str
    attempt: int = 1
    v: int = WIRE_VERSION


class AgentCheckpoint(msgspec.Struct, kw_only=True):
    """One agent's finished work for one workflow, kept in the checkpoint bucket."""

    workflow_id: str
    agent: str
    ok: bool
    output: dict[str, object] = {}
    reason: str = ""
    request_ids: list[str] = []
    cost_micro_usd: int = 0
    baseline_micro_usd: int = 0
    llm_calls: int = 0
    """Paid provider calls this agent made (0 for zero-call agents and cache hits)."""
    v: int = WIRE_VERSION


class UploadCheckpoint(msgspec.Struct, kw_only=True):
    """The upload a workflow started from, kept so agents and a resumed workflow can read it."""

    upload: ProductUploaded
    v: int = WIRE_VERSION


class AgentDone(msgspec.Struct, kw_only=True):
    """An agent finished (or failed) for one workflow; its output is in the checkpoint store."""

    workflow_id: str
    tenant: str
    agent: str
    ok: bool
    reason: str = ""
    cost_micro_usd: int = 0
    baseline_micro_usd: int = 0
    v: int = WIRE_VERSION


class WorkflowProgress(msgspec.Struct, kw_only=True):
    """How far one upload has come, for a progress bar or a page."""

    workflow_id: str
    tenant: str
    product_id: str
    done: int
    total: int
    last_agent: str
    v: int = WIRE_VERSION


class WorkflowDone(msgspec.Struct, kw_only=True):
    """A workflow ended: ok with the assembled listing, or failed with a reason."""

    workflow_id: str
    tenant: str
    product_id: str
    ok: bool
    reason: str = ""
    listing: dict[str, object] = {}
    missing: list[str] = []
    """Optional agents that failed and whose part of the listing is missing."""
    cost_micro_usd: int = 0
    baseline_micro_usd: int = 0
    v: int = WIRE_VERSION


class DeadLetter(msgspec.Struct, kw_only=True):
    """A message that could not be processed, kept with the reason, on dlq.<source>."""

    source_subject: str
    error_code: ErrorCode
    reason: str
    payload: bytes
    headers: dict[str, str] = {}
    at_ms: int = msgspec.field(default_factory=lambda: now_ms())
    v: int = WIRE_VERSION


def now_ms() -> int:
    """Current Unix time in milliseconds."""
    return time.time_ns() // 1_000_000
