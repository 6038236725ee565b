"""What the router knows about one provider: where it is, its key, its models and limits."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import SecretStr


@dataclass(frozen=True, kw_only=True)
class RateLimits:
    """A provider's rate limits, shared by every replica; None means unlimited."""

    requests_per_min: int | None = None
    tokens_per_min: int | None = None
    """Input plus max output tokens per minute, as OpenAI counts them at request time."""

    @property
    def limited(self) -> bool:
        """Whether any limit is set."""
        return self.requests_per_min is not None or self.tokens_per_min is not None


@dataclass(frozen=True, kw_only=True)
class ProviderConfig:
    """One OpenAI-compatible endpoint. The key is a SecretStr so it never prints."""

    name: str
    base_url: str
    api_key: SecretStr
    models: tuple[str, ...]
    simulated: bool = False
    max_tokens_param: str = "max_completion_tokens"
    """'max_tokens' for servers that do not know the newer name (some vLLM, Ollama)."""
    limits: RateLimits = RateLimits()
    kind: str = "openai_compatible"
    """openai, anthropic, google, openai_compatible or simulated."""
