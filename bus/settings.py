"""FlipSync configuration: one typed object, read from the environment once at start-up."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything a FlipSync process needs to know; built once and passed in."""

    model_config = SettingsConfigDict(
        env_prefix="FLIPSYNC_", extra="ignore", frozen=True, populate_by_name=True
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
    data_dir: Path | None = None
    """Where embedded servers keep their data; unset means a fresh temporary folder."""

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
    ack_wait_s: float = 120.0
    """How long JetStream waits for an ack before redelivering to another replica."""
    max_deliver: int = 10
    result_ttl_s: int = 24 * 3600
    """How long terminal results are kept for late or restarted requesters."""

    sim_latency_ms: float = 40.0
    """Latency of the simulated provider when it runs embedded."""
    sim_base_url: str | None = None
    """A simulated provider running as its own service (compose), when none runs in-process."""
    extra_agents: frozenset[str] = frozenset()
    """Agent names accepted besides the built-in specs (e.g. callers of the OpenAI endpoint)."""

    @field_validator(
        "nats_url", "redis_url", "openai_api_key", "openai_base_url", "otlp_endpoint",
        "sim_base_url", mode="before",
    )  # fmt: skip
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """An empty variable (as compose passes an unset one) means unset."""
        return None if value == "" else value

    @property
    def real_provider(self) -> bool:
        """Whether a real provider is configured (so the simulated one stays off)."""
        return self.openai_api_key is not None or self.openai_base_url is not None
