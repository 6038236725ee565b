"""Which providers a process talks to: the configured real one, or the simulated one."""

from __future__ import annotations

from pydantic import SecretStr

from bus.settings import Settings
from cost_ledger.catalog import PriceCatalog
from router.providers.client import ProviderClient
from router.providers.config import ProviderConfig
from router.providers.registry import ProviderRegistry

SIMULATED = "simulated"


def provider_configs(
    settings: Settings, catalog: PriceCatalog, simulated_url: str | None
) -> list[ProviderConfig]:
    """A real OpenAI-compatible provider when one is configured, else the simulated one."""
    if settings.real_provider:
        key = settings.openai_api_key or SecretStr("not-needed")
        models = tuple(m.name for m in catalog.models() if m.provider == "openai")
        return [
            ProviderConfig(
                name="openai",
                base_url=settings.openai_base_url or "https://api.openai.com/v1",
                api_key=key,
                models=models,
            )
        ]
    if simulated_url is None:
        raise ValueError("no real provider is configured and the simulated one is not running")
    return [
        ProviderConfig(
            name=SIMULATED,
            base_url=simulated_url,
            api_key=SecretStr(SIMULATED),
            models=tuple(m.name for m in catalog.models()),
            simulated=True,
        )
    ]


def provider_registry(
    settings: Settings, catalog: PriceCatalog, simulated_url: str | None
) -> ProviderRegistry:
    """Clients of every provider this process may call."""
    return ProviderRegistry(
        ProviderClient(
            config,
            timeout_s=settings.provider_timeout_s,
            max_retries=settings.provider_max_retries,
        )
        for config in provider_configs(settings, catalog, simulated_url)
    )
