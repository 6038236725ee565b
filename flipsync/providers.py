"""Which providers a process talks to, and the health machinery dispatch uses with them.

With no `providers` setting: the configured real OpenAI-compatible provider, else the
simulated one (as always). With it: each listed provider (openai, anthropic, google,
any OpenAI-compatible base URL, or a named simulated provider started on its own port).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import redis.asyncio as aioredis
from pydantic import SecretStr, ValidationError

from api.generated_key import is_generated_key
from api.key_digest import digest
from bus.settings import Settings
from bus.settings_sections import ProviderSettings
from cost_ledger.catalog import PriceCatalog
from flipsync.this_machine import url_is_this_machine
from router.health.config import breaker_policy, retry_policy
from router.health.limiter import RateLimiter
from router.health.store import HealthStore
from router.providers.client import ProviderClient
from router.providers.config import ProviderConfig, RateLimits
from router.providers.registry import ProviderRegistry
from router.stages.dispatch import Health
from simulator.config import SimConfig
from simulator.server import SimulatedProvider

SIMULATED = "simulated"

KIND_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com/v1/",
    "google": "https://generativelanguage.googleapis.com/v1beta/openai/",
}
"""Each vendor's OpenAI-compatible endpoint."""
KIND_KEY_VARIABLES = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "google": "GEMINI_API_KEY",
}
"""The environment variable each vendor's key is read from unless api_key_env says."""
KIND_MAX_TOKENS_PARAM = {"openai": "max_completion_tokens", "simulated": "max_completion_tokens"}
"""The output-cap field per kind; the others take the older, more widely known max_tokens."""


class ProviderConfigError(ValueError):
    """A `providers` entry cannot be used; the message says which and why."""


def _refuse_own_key(settings: Settings, key: SecretStr) -> None:
    """Raise when OPENAI_API_KEY holds this deployment's own API key (_calls_itself): the
    exports `flipsync http` prints for an OpenAI client, pasted into flipsync's shell, would
    make flipsync its own provider."""
    if not _calls_itself(settings, key, settings.openai_base_url):
        return
    raise ProviderConfigError(
        f"OPENAI_API_KEY holds a FlipSync API key, not a provider's (OPENAI_BASE_URL="
        f"{settings.openai_base_url or 'unset'}): flipsync would call itself. These are "
        "the lines `flipsync http` prints for an OpenAI client's shell; in this one, run "
        "`unset OPENAI_API_KEY OPENAI_BASE_URL` (the simulated provider) or set them to a "
        "real provider's"
    )


def _calls_itself(settings: Settings, key: SecretStr, base_url: str | None) -> bool:
    """Whether key is this deployment's own API key (one of FLIPSYNC_API_KEYS, in clear or
    as its digest), or a generated "fs-" key while base_url is this machine (any loopback
    address, a name resolving to one, an address of its own interfaces: where `flipsync
    http` serves). Another FlipSync's /v1 elsewhere, with its key, is a provider like any."""
    value = key.get_secret_value()
    if value in settings.api_keys or digest(value) in settings.api_keys:
        return True
    # Resolved only for a generated key: a provider's own key never waits on a resolver.
    return is_generated_key(value) and url_is_this_machine(base_url)


def provider_configs(
    settings: Settings,
    catalog: PriceCatalog,
    simulated_url: str | None,
    simulated_urls: Mapping[str, str] | None = None,
) -> list[ProviderConfig]:
    """The configured providers; simulated_urls gives each named simulated provider's URL."""
    if settings.providers:
        urls = simulated_urls or {}
        return [
            _configured(settings, spec, catalog, urls.get(spec.name)) for spec in settings.providers
        ]
    if settings.real_provider:
        key = settings.openai_api_key or SecretStr("not-needed")
        _refuse_own_key(settings, key)
        models = tuple(m.name for m in catalog.models() if m.provider == "openai" and m.routable)
        return [
            ProviderConfig(
                name="openai",
                base_url=settings.openai_base_url or "https://api.openai.com/v1",
                api_key=key,
                models=models,
                kind="openai",
            )
        ]
    if simulated_url is None:
        raise ProviderConfigError(
            "no provider: set OPENAI_API_KEY or OPENAI_BASE_URL for a real one, or "
            "FLIPSYNC_SIM_BASE_URL to a running simulated one, or run it in this process "
            "(`flipsync run provider router`)"
        )
    return [
        ProviderConfig(
            name=SIMULATED,
            base_url=simulated_url,
            api_key=SecretStr(SIMULATED),
            models=tuple(m.name for m in catalog.models() if m.routable),
            simulated=True,
            kind=SIMULATED,
        )
    ]


def provider_registry(
    settings: Settings,
    catalog: PriceCatalog,
    simulated_url: str | None,
    simulated_urls: Mapping[str, str] | None = None,
) -> ProviderRegistry:
    """Clients of every provider this process may call (named simulated ones already running)."""
    return ProviderRegistry(
        ProviderClient(
            config, timeout_s=settings.provider_timeout_s, wire_ids=wire_ids(catalog, config)
        )
        for config in provider_configs(settings, catalog, simulated_url, simulated_urls)
    )


def wire_ids(catalog: PriceCatalog, config: ProviderConfig) -> dict[str, str]:
    """The API ids a real provider takes for FlipSync's model names (none for the simulated
    one, which serves FlipSync's names)."""
    if config.simulated:
        return {}
    return {m.name: m.wire_id for m in catalog.models() if m.wire_id != m.name}


async def start_providers(
    settings: Settings, catalog: PriceCatalog, simulated_url: str | None
) -> ProviderRegistry:
    """Start each named simulated provider on its own port, then the registry, which stops
    them when it is closed."""
    started: list[SimulatedProvider] = []
    try:
        for spec in settings.providers:
            if spec.kind == SIMULATED:
                server = SimulatedProvider(simulated_config(spec, catalog))
                await server.start()
                started.append(server)
        urls = {server.config.name: server.base_url for server in started}
        configs = provider_configs(settings, catalog, simulated_url, urls)
    except BaseException:
        for server in started:
            await server.stop()
        raise
    clients = [
        ProviderClient(c, timeout_s=settings.provider_timeout_s, wire_ids=wire_ids(catalog, c))
        for c in configs
    ]
    return ProviderRegistry(clients, started)


def simulated_config(spec: ProviderSettings, catalog: PriceCatalog) -> SimConfig:
    """The SimConfig of a named simulated provider: its `simulated` fields, its name."""
    models = spec.models or tuple(m.name for m in catalog.models() if m.routable)
    try:
        return SimConfig.model_validate({**spec.simulated, "name": spec.name, "models": models})
    except ValidationError as exc:
        raise ProviderConfigError(f"provider {spec.name!r}: bad simulated settings: {exc}") from exc


def dispatch_health(settings: Settings, redis: aioredis.Redis) -> Health:
    """Circuit breakers, rate limits and retries for the dispatcher, shared through redis."""
    policy = breaker_policy(settings.health)
    return Health(
        store=HealthStore(redis, policy, probe_lease_s=settings.provider_timeout_s),
        limiter=RateLimiter(redis),
        retry=retry_policy(
            settings.health,
            retries=settings.provider_max_retries,
            timeout_s=settings.provider_timeout_s,
        ),
    )


def _configured(
    settings: Settings, spec: ProviderSettings, catalog: PriceCatalog, sim_url: str | None
) -> ProviderConfig:
    where = f"provider {spec.name!r}"
    models = spec.models
    if not models and spec.kind in KIND_BASE_URLS:
        models = tuple(m.name for m in catalog.models() if m.provider == spec.kind and m.routable)
    if not models and spec.kind == SIMULATED:
        models = tuple(m.name for m in catalog.models() if m.routable)
    if not models:
        raise ProviderConfigError(f"{where}: list the catalog models it serves (models)")
    unknown = [m for m in models if m not in catalog]
    if unknown:
        raise ProviderConfigError(f"{where}: models not in the price catalog: {unknown}")
    limits = RateLimits(requests_per_min=spec.requests_per_min, tokens_per_min=spec.tokens_per_min)
    param = spec.max_tokens_param or KIND_MAX_TOKENS_PARAM.get(spec.kind, "max_tokens")
    if spec.kind == SIMULATED:
        if sim_url is None:
            raise ProviderConfigError(f"{where}: simulated, but not started (start_providers)")
        return ProviderConfig(
            name=spec.name,
            base_url=sim_url,
            api_key=SecretStr(SIMULATED),
            models=models,
            simulated=True,
            max_tokens_param=param,
            limits=limits,
            kind=SIMULATED,
        )
    base_url = spec.base_url or KIND_BASE_URLS.get(spec.kind)
    if base_url is None:
        raise ProviderConfigError(f"{where}: an openai_compatible provider needs a base_url")
    variable = spec.api_key_env or KIND_KEY_VARIABLES.get(spec.kind)
    key = os.environ.get(variable) if variable else None
    if not key:
        if spec.kind in KIND_KEY_VARIABLES:
            raise ProviderConfigError(f"{where}: set its key in the environment ({variable})")
        key = "not-needed"  # vLLM, Ollama and llama.cpp servers often take any key
    elif _calls_itself(settings, SecretStr(key), base_url):
        raise ProviderConfigError(
            f"{where}: {variable} holds a FlipSync API key, not a provider's (base_url="
            f"{base_url}): flipsync would call itself; set {variable} to the provider's key"
        )
    return ProviderConfig(
        name=spec.name,
        base_url=base_url,
        api_key=SecretStr(key),
        models=models,
        max_tokens_param=param,
        limits=limits,
        kind=spec.kind,
    )
