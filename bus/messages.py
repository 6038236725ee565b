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
    tools: list[dict[str, object]] = []
    """Tool definitions the agent can offer, in OpenAI's shape; sent only when needed."""
    tool_choice: str = "auto"
    """"auto", "none", "required", or the name of the one function the model must call."""
    needs_tools: bool = False
    """The agent expects this turn may call a tool; otherwise its tools are not sent."""
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
    user: str = ""
    """The end user the request was made for (LlmRequest.tags["user"]), for message quotas."""
    arm: str | None = None
    """The experiment arm ("experiment/arm") the request was assigned to, if any."""
    pack_size: int = 0
    """Requests that shared this event's packed provider call (lever packed); 0 if unknown."""
    route_reason: str = ""
    """Why the request went to its model (the routing decision, escalations included)."""
    v: int = WIRE_VERSION


class FlightOutcome(msgspec.Struct, kw_only=True):
    """What the leader of a coalesced call tells its waiters, on llm.flight.<tenant>.<key>."""

    fingerprint: str
    result: LlmResult | None = None
    """The leader's result to share; None when it gave up and a waiter should take over."""
    v: int = WIRE_VERSION


class BudgetAlert(msgspec.Struct, kw_only=True):
    """A budget crossed a threshold (0.5, 0.8, 1.0) in its period; sent once per threshold."""

    scope: str
    """The budget's scope instance: global, tenant:<t>, agent:<t>:<a>, workflow:<t>:<w>."""
    period: str
    """day or month."""
    threshold: float
    limit_micro_usd: int
    spent_micro_usd: int
    at_ms: int = msgspec.field(default_factory=lambda: now_ms())
    budget: str = ""
    """The name of the budget rule that crossed."""
    tenant: str = ""
    """The tenant it concerns; empty for a global budget."""
    period_key: str = ""
    """Which period: d2026-11-02 or m2026-11 (UTC)."""
    v: int = WIRE_VERSION


class BudgetScope(enum.StrEnum):
    """What a budget counts: every request, or a tenant's, an agent's or a workflow's."""

    GLOBAL = "global"
    TENANT = "tenant"
    AGENT = "agent"
    """An agent within a tenant (tenants never share a budget)."""
    WORKFLOW = "workflow"
    """A workflow within a tenant."""


class BudgetPeriod(enum.StrEnum):
    """The UTC calendar period a budget or quota counts over."""

    DAY = "day"
    MONTH = "month"


class BudgetPolicy(enum.StrEnum):
    """What happens to a request the budget cannot take."""

    REFUSE = "refuse"
    """An error result, code over_budget."""
    DOWNGRADE = "downgrade"
    """The cheapest model of a lower tier, if it fits; else refuse."""


class BudgetSpec(msgspec.Struct, kw_only=True):
    """One budget rule: a limit on the spend of a scope per period."""

    name: str
    scope: BudgetScope
    period: BudgetPeriod
    limit_micro_usd: int
    policy: BudgetPolicy = BudgetPolicy.REFUSE
    tenant: str = ""
    """Only this tenant; empty means each tenant (for tenant, agent, workflow scopes)."""
    agent: str = ""
    """Only this agent (agent scope); empty means each agent."""
    workflow: str = ""
    """Only this workflow (workflow scope); empty means each workflow."""


class TierQuota(msgspec.Struct, kw_only=True):
    """How many paid LLM messages each user of a tier may send per period."""

    tier: str
    messages: int
    period: BudgetPeriod = BudgetPeriod.DAY


class RequestCap(msgspec.Struct, kw_only=True):
    """The most one request may cost (its estimated maximum), and what happens above it."""

    limit_micro_usd: int
    policy: BudgetPolicy = BudgetPolicy.DOWNGRADE


class BudgetChange(msgspec.Struct, kw_only=True):
    """A run-time change of the budgets, on budget.control; every replica applies it."""

    change_id: str
    """Unique; a change is applied to the live config once, whoever sees it first."""
    set_budgets: list[BudgetSpec] = []
    remove_budgets: list[str] = []
    set_tiers: list[TierQuota] = []
    remove_tiers: list[str] = []
    request_cap: RequestCap | None = None
    remove_request_cap: bool = False
    replace_all: bool = False
    """Drop every budget, tier and cap before applying the rest (loading a whole file)."""
    by: str = ""
    at_ms: int = msgspec.field(default_factory=lambda: now_ms())
    v: int = WIRE_VERSION


class PhotoRendition(msgspec.Struct, kw_only=True):
    """A resized copy of a photo in the object store, the one sent to models at one detail."""

    object_name: str
    content_type: str = "image/jpeg"
    width: int
    height: int


class Photo(msgspec.Struct, kw_only=True):
    """A product photo kept in the JetStream object store, by name."""

    object_name: str
    content_type: str = "image/png"
    width: int = 0
    height: int = 0
    phash: str = ""
    """Perceptual hash plus a coarse colour hash: equal for the same picture re-encoded or
    resized, so its analyses are reused (per tenant) instead of paid for again."""
    renditions: dict[str, PhotoRendition] = {}
    """Resized copies by image detail ("low", "high"); what agents send instead of the original."""


class ProductUploaded(msgspec.Struct, kw_only=True):
    """A seller uploaded a product: the start of one workflow (and one trace).

    Published on product.uploaded.<tenant> (stream WORKFLOW) after its photos are in the
    photos object store; any client may publish it there to start a workflow.
    """

    workflow_id: str
    tenant: str
    product_id: str
    title_hint: str = ""
    notes: str = ""
    cost_price: str = ""
    """What the seller paid, as a decimal string, for margin work; empty if unknown."""
    photos: list[Photo] = []
    priority: Priority = Priority.STANDARD
    attributes: dict[str, str] = {}
    """Further facts the seller gave (weight_g, size, sku, quantity...), as text."""
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
    tenant: str = ""
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


class WorkflowState(msgspec.Struct, kw_only=True):
    """Which agents of one workflow have settled, kept in the checkpoint bucket.

    Updated by compare-and-set on each agent-done event, so the workflow service reads one
    small value per event instead of every checkpoint of the workflow.
    """

    workflow_id: str
    tenant: str
    product_id: str = ""
    ok: list[str] = []
    failed: list[str] = []
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


class PhotoAnalysis(msgspec.Struct, kw_only=True):
    """One agent's analysis of one photo, kept per tenant by perceptual hash for reuse.

    A pending entry is a claim: another workflow analysing the same photo right now.
    """

    pending: bool = False
    claimed_ms: int = 0
    output: dict[str, object] = {}
    workflow_id: str = ""
    request_id: str = ""
    baseline_micro_usd: int = 0
    """The naive cost of analysing this photo again, credited when it is reused."""
    v: int = WIRE_VERSION


class ChatTurn(msgspec.Struct, kw_only=True):
    """One earlier turn of a seller-chat conversation."""

    role: str
    """user or assistant."""
    text: str


class ChatAsk(msgspec.Struct, kw_only=True):
    """A seller's question about their own products, a request on chat.ask.<tenant>."""

    tenant: str
    question: str
    history: list[ChatTurn] = []
    conversation_id: str = ""
    user: str = ""
    v: int = WIRE_VERSION


class ChatReply(msgspec.Struct, kw_only=True):
    """The answer to a ChatAsk."""

    tenant: str
    conversation_id: str = ""
    ok: bool
    answer: str = ""
    reason: str = ""
    product_ids: list[str] = []
    """The seller's products the answer was given context about."""
    model: str = ""
    lever: Lever = Lever.NONE
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


class PromptPatch(msgspec.Struct, kw_only=True):
    """A prompt variant applied to a request: a system prompt, a text swap, an output schema."""

    system: str = ""
    """Replaces the content of the system message when not empty."""
    find: str = ""
    """Text of the first user message replaced by ``replace`` (the agent's instructions)."""
    replace: str = ""
    output_schema: dict[str, object] | None = None
    """Replaces the request's output schema (fields nobody reads removed)."""


class FlagRule(msgspec.Struct, kw_only=True):
    """A feature flag: what changes for the requests it matches, and for what share of them.

    Empty tenant, agent or task_type match every request. A request is in the rule when its
    rollout bucket (a hash of salt and the request's content, 0 <= b < 100) falls in
    [bucket_from, bucket_from + percent): the same request always lands in the same arm.
    """

    name: str
    tenant: str = ""
    agent: str = ""
    task_type: str = ""
    percent: float = 100.0
    bucket_from: float = 0.0
    salt: str = ""
    """Arms of one experiment share a salt (the experiment's name); default: the rule's name."""
    disable_levers: list[Lever] = []
    enable_levers: list[Lever] = []
    """Levers a more specific rule switches back on after a broader one disabled them."""
    routing_policy: str = ""
    model: str = ""
    """Sets the request's model_hint."""
    prompt: PromptPatch | None = None
    arm: str = ""
    """The experiment arm ("experiment/arm") recorded for the requests in the rule."""
    v: int = WIRE_VERSION


class FlagChange(msgspec.Struct, kw_only=True):
    """The live flags changed in Redis, on flags.control: every router replica reloads them."""

    change_id: str
    set_rules: list[FlagRule] = []
    removed: list[str] = []
    by: str = ""
    at_ms: int = msgspec.field(default_factory=lambda: now_ms())
    v: int = WIRE_VERSION
