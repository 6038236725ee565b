"""FlipSync configuration: one typed object, read from the environment once at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bus.settings_sections import (
    HealthSettings,
    NotifySettings,
    ProviderSettings,
    RoutingSettings,
    SemanticSettings,
)

LOCAL_HINT = (
    "(for the local data of `make demo` or `flipsync upload`, run `flipsync http` and "
    "export the NATS_URL and REDIS_URL it prints)"
)
"""What a command that needs a deployment's servers tells a user with only local data."""


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
    stop_grace_s: float = Field(default=2.0, ge=0.0)
    """How long a stopping process lets its handlers finish before cancelling them (agents
    give way at once: bus.stopping); what is cut off is redelivered, as after a crash. Also
    how long the ledger of a stack on an embedded nats-server applies the events the stream
    still holds before it stops (cost_ledger.consumer.LedgerConsumer drain_s)."""
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
    api_header_timeout_s: float = Field(default=10.0, gt=0)
    """A client's request headers must all arrive within this (else 408)."""
    api_max_header_bytes: int = Field(default=64 * 1024, ge=1024)
    """Request headers larger than this get 431."""
    api_body_min_bytes_per_s: int = Field(default=500, ge=1)
    """A request body must arrive at least this fast, over 10 s windows (else 408)."""
    api_write_timeout_s: float = Field(default=30.0, gt=0)
    """A client that takes none of a response for this long is cut off."""
    api_max_connections: int = Field(default=0, ge=0)
    """Open connections at most (0: half the process's file-descriptor limit); past it a
    new one evicts the one waiting longest for its headers, else gets 503."""
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
    lease_renewal: Literal["thread", "loop"] = "thread"
    """Who renews a router's leases (budget reservations, paid-call leases, dedup claims):
    a thread of its own ("thread", bus.liveness: a busy event loop does not let them lapse)
    or beats on the event loop ("loop", as before; bench.liveness compares the two)."""
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
    nats_lost_after_s: float = Field(default=5.0, gt=0.0)
    """How long an upload waiting for its listings lets a dropped NATS connection come back
    before it fails (exit 3) instead of waiting for its --timeout."""
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

    @field_validator("nats_url")
    @classmethod
    def _nats_urls(cls, value: str | None) -> str | None:
        """Every server of NATS_URL is a NATS URL (checked here: nats-py says only "invalid
        connect url option" after its connect timeout)."""
        if value is not None:
            for server in value.split(","):
                _check_url(server.strip(), NATS_SCHEMES, "nats://host:4222")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        """REDIS_URL is a Redis URL (redis-py's own error is a traceback)."""
        if value is not None:
            _check_url(value, REDIS_SCHEMES, "redis://host:6379")
        return value

    @property
    def real_provider(self) -> bool:
        """Whether a real provider is configured (so the simulated one stays off)."""
        return self.openai_api_key is not None or self.openai_base_url is not None


NATS_SCHEMES = ("nats", "tls", "ws", "wss")
REDIS_SCHEMES = ("redis", "rediss", "unix")


def _check_url(url: str, schemes: tuple[str, ...], example: str) -> None:
    """Raise ValueError naming url unless it has one of schemes, a host and a numeric port
    (a NATS server may be written host:port: nats-py adds nats://)."""
    parsed = urlsplit(url if "://" in url or schemes[0] != "nats" else f"nats://{url}")
    schemes_said = ", ".join(f"{s}://" for s in schemes)
    if parsed.scheme not in schemes:
        raise ValueError(f"{url!r} is not one of {schemes_said} (for example {example})")
    if parsed.scheme == "unix":
        return
    try:
        parsed.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as exc:
        raise ValueError(f"{url!r}: {exc} (for example {example})") from None
    if not parsed.hostname:
        raise ValueError(f"{url!r} names no host (for example {example})")
