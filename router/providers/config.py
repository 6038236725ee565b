"""What the router knows about one provider: where it is, its key, and the models it offers."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import SecretStr


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
