"""Configuration of the simulated provider: models, latency, seed and fault rates."""

from __future__ import annotations

import enum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from simulator.quality import ModelQuality

DEFAULT_MODELS: tuple[str, ...] = (
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "o4-mini",
    "claude-sonnet-4",
    "claude-haiku-3.5",
    "gemini-2.5-pro",
    "gemini-2.5-flash",
    "gemini-2.0-flash-lite",
)
"""The models the simulator offers unless told otherwise."""


class FaultKind(enum.StrEnum):
    """A failure the simulator can inject into one chat completion."""

    RATE_LIMIT = "rate_limit"  # 429 with a retry-after header
    SERVER_ERROR = "server_error"  # 500
    TIMEOUT = "timeout"  # answers only after Faults.timeout_s
    MALFORMED_JSON = "malformed_json"  # 200 whose body is not JSON
    SCHEMA_INVALID = "schema_invalid"  # 200, content breaks the json_schema (if one was asked)


Rate = Annotated[float, Field(ge=0.0, le=1.0)]
"""A share of the calls, 0..1."""


class Faults(BaseModel):
    """How often each fault happens (0..1 of the calls), drawn from the seeded RNG."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rate_limit: Rate = 0.0
    server_error: Rate = 0.0
    timeout: Rate = 0.0
    malformed_json: Rate = 0.0
    schema_invalid: Rate = 0.0
    retry_after_s: int = Field(default=1, ge=0)
    """Seconds sent in the retry-after header of a 429."""
    retry_after_ms: int | None = Field(default=None, ge=0)
    """When set, a 429 also sends retry-after-ms (as OpenAI does), for sub-second waits."""
    timeout_s: float = Field(default=30.0, ge=0.0)
    """How long a timeout fault holds the request before answering."""

    @model_validator(mode="after")
    def _rates_fit(self) -> Faults:
        if sum(self.rate(kind) for kind in FaultKind) > 1.0:
            raise ValueError("fault rates add up to more than 1")
        return self

    def rate(self, kind: FaultKind) -> float:
        """The configured rate of one fault kind."""
        rate: float = getattr(self, kind.value)
        return rate


class SimConfig(BaseModel):
    """Everything the simulated provider needs, built once and passed in."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = "simulated"
    """Provider name, reported as owned_by of every model."""
    models: tuple[str, ...] = DEFAULT_MODELS
    """Models it answers for; others get a 404 model_not_found."""
    latency_ms: float = Field(default=0.0, ge=0.0)
    """Mean time before the answer; 0 with no jitter means no sleep at all."""
    latency_jitter_ms: float = Field(default=0.0, ge=0.0)
    """Uniform spread around latency_ms, drawn from the seeded RNG."""
    per_output_token_ms: float = Field(default=0.0, ge=0.0)
    """Extra time per completion token, as a real model's decoding speed."""
    stream_token_ms: float = Field(default=0.0, ge=0.0)
    """Pause per token between the chunks of a streamed answer when per_output_token_ms is 0:
    a stream arrives over time as a real one does, and whole answers keep their latency."""
    seed: int = 0
    """Seeds the fault and latency RNGs: one config and one request order, one outcome."""
    faults: Faults = Field(default_factory=Faults)
    cache_max_prefixes: int = Field(default=100_000, ge=0)
    """Bound of the prompt-cache memory, in 128-token prefix hashes (LRU)."""
    batch_completion_s: float = Field(default=2.0, ge=0.0)
    """Time from a batch's creation until its output is ready (the real Batch API: up to 24 h)."""
    quality: ModelQuality | None = None
    """Models that differ (simulator.quality): weaker models' structured answers fail
    validation more often. None: every model answers every prompt validly."""
    billing: str = Field(default="estimate", pattern="^(estimate|provider)$")
    """How prompt tokens are billed: "estimate" (router.tokens) or "provider" (another
    tokenizer and each model's own image rule: simulator/billing.py)."""
