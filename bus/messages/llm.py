"""LLM requests and their results: what agents ask for, and the one answer each gets."""

from __future__ import annotations

import enum

import msgspec

from bus.messages.base import WIRE_VERSION, now_ms

DEFAULT_WORKSPACE = "default"
"""The workspace of a request that names none."""
DEFAULT_PROJECT = "default"
"""The project of a request that names none."""


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


class TaskType(enum.StrEnum):
    """The kinds of work agents ask for: what the router keys cache TTLs and routes on."""

    IMAGE_ANALYSIS = "image_analysis"  # what one photo shows (vision)
    PRODUCT_ANALYSIS = "product_analysis"  # facts about the product, from notes and photo facts
    CATEGORY_CLASSIFICATION = "category_classification"  # pick from a known set
    TEXT_GENERATION = "text_generation"  # listing copy
    TRANSLATION = "translation"
    MARKET_DATA = "market_data"  # comparables, demand, trend, seasonality: goes stale fast
    PRICING = "pricing"
    COMPLIANCE = "compliance"
    CUSTOMER_SUPPORT = "customer_support"  # prepared replies to buyers and reviews
    SELLER_CHAT = "seller_chat"  # the seller's interactive questions


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
    PHOTO_DEDUP = "photo_dedup"  # a photo's earlier analysis reused (same perceptual hash)
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
    tool_calls: list[dict[str, object]] = []
    """An assistant turn's tool calls, in OpenAI's shape."""
    tool_call_id: str = ""
    """A tool turn's answer to this tool call id."""

    def texts(self) -> list[str]:
        """The message's text, one string per text part (the whole content when plain)."""
        if isinstance(self.content, str):
            return [self.content]
        return [part.text for part in self.content if isinstance(part, TextPart)]

    def text(self, sep: str = "\n") -> str:
        """The message's text parts joined by sep (images left out)."""
        return self.content if isinstance(self.content, str) else sep.join(self.texts())

    def images(self) -> list[ImagePart]:
        """The message's image parts, in order (none for plain text)."""
        if isinstance(self.content, str):
            return []
        return [part for part in self.content if isinstance(part, ImagePart)]


class OutputSchema(msgspec.Struct, kw_only=True):
    """A JSON schema the answer must validate against (OpenAI response_format json_schema)."""

    name: str
    schema: dict[str, object]
    strict: bool = True


class LlmRequest(msgspec.Struct, kw_only=True, weakref=True):
    """One LLM call an agent needs, published on llm.request.<tenant>.<agent>.

    Weakly referenceable: a memo of what was worked out for a request (the semantic cache's
    view) knows it is the same object without keeping it, up to 4 MiB, alive."""

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
    tools: list[dict[str, object]] = []
    """Tool definitions the agent can offer, in OpenAI's shape; sent only when needed."""
    tool_choice: str = "auto"
    """"auto", "none", "required", or the name of the one function the model must call."""
    needs_tools: bool = False
    """The agent expects this turn may call a tool; otherwise its tools are not sent."""
    tags: dict[str, str] = {}
    created_ms: int = msgspec.field(default_factory=lambda: now_ms())
    v: int = WIRE_VERSION
    stream: bool = False
    """Relay the answer's text as it is generated, on llm.stream.<tenant>.<agent>.<id>."""
    workspace: str = DEFAULT_WORKSPACE
    """The tenant's workspace the request is made in (budgets and reports by workspace);
    letters, digits, _ and -, at most 64; an API key bound to a workspace fixes it."""
    project: str = DEFAULT_PROJECT
    """The workspace's project the request is made for (budgets and reports by project)."""


class LlmStreamChunk(msgspec.Struct, kw_only=True):
    """A piece of a streamed answer's text, on core NATS llm.stream.<tenant>.<agent>.<id>.

    Best effort: the terminal result stays the record; a requester that misses a chunk (a gap
    in seq) stops relaying and sends the rest of the result's content instead."""

    request_id: str
    call: int
    """Which provider call of the request: a random id, new for each retry or fallback."""
    seq: int
    """Position of the chunk in its call, from 0."""
    content: str
    model: str = ""
    """The model the provider says is answering."""
    v: int = WIRE_VERSION


class Usage(msgspec.Struct, kw_only=True):
    """Token usage as the provider reported it."""

    input_tokens: int = 0
    """All prompt tokens, cached ones included."""
    cached_input_tokens: int = 0
    """The part of input_tokens served from the provider's prompt cache."""
    output_tokens: int = 0
    """All billed output tokens, reasoning tokens included."""
    cache_write_input_tokens: int = 0
    """The part of input_tokens written to the provider's prompt cache (Anthropic bills it
    above the input price)."""
    reasoning_tokens: int = 0
    """The part of output_tokens the model spent reasoning (hidden, billed as output)."""
    image_tokens: int = 0
    """The part of input_tokens that were images, when the provider says so."""


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
    tool_calls: list[dict[str, object]] = []
    """Tool calls the model asked for, in OpenAI's shape."""
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
    arm: str | None = None
    """The experiment arm ("experiment/arm") the request was assigned to, if any."""
    pack_size: int = 0
    """Requests that shared this result's packed provider call (lever packed), else 0."""
    savings_by_lever: dict[str, int] = {}
    """The levers' parts of baseline minus cost, as far as the stage that made the result
    knew them (cost_ledger.savings); the ledger event completes the split."""
    finish_reason: str = ""
    """The provider's finish_reason as it came ("stop", "length", "tool_calls",
    "content_filter"...); empty when no provider call made this answer."""
    overhead_micro_usd: int = 0
    """Of cost_micro_usd, what routing's own calls for this request cost (a cascade's
    failed attempts), booked as ledger events of their own (overhead_of="routing"); the
    answer's ledger event carries the rest."""
    overhead_usage: Usage = msgspec.field(default_factory=Usage)
    """Of usage, the tokens of those calls."""
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


class FlightOutcome(msgspec.Struct, kw_only=True):
    """What the leader of a coalesced call tells its waiters, on llm.flight.<tenant>.<key>."""

    fingerprint: str
    result: LlmResult | None = None
    """The leader's result to share; None when it gave up and a waiter should take over."""
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

    @classmethod
    def of(
        cls,
        source_subject: str,
        error_code: ErrorCode,
        reason: str,
        payload: bytes,
        headers: dict[str, str] | None = None,
    ) -> DeadLetter:
        """The letter of a message, its payload cut to MAX_DEAD_PAYLOAD bytes (the whole
        length then in the PAYLOAD_BYTES_HEADER header) so that it always fits in a NATS
        message: the payload travels as base64, a third larger, and a 7 MB request's letter
        was over the 8 MB max_payload, so it was never kept and the request was lost."""
        kept = dict(headers or {})
        if len(payload) > MAX_DEAD_PAYLOAD:
            kept[PAYLOAD_BYTES_HEADER] = str(len(payload))
            payload = payload[:MAX_DEAD_PAYLOAD]
        return cls(
            source_subject=source_subject,
            error_code=error_code,
            reason=reason,
            payload=payload,
            headers=kept,
        )


MAX_DEAD_PAYLOAD = 4 * 1024 * 1024
"""Most bytes of a message a dead letter keeps (5.6 MB as base64, under NATS' 8 MB)."""
PAYLOAD_BYTES_HEADER = "x-flipsync-payload-bytes"
"""A dead letter's header giving the whole length of a payload it keeps only the start of."""
