"""Fine-tuned models registered at run time: kept in Redis, priced in the catalog, offered
by the provider that serves their base model, in every process that loads them."""

from __future__ import annotations

import dataclasses
import logging
import tomllib
from decimal import Decimal
from importlib import resources

import msgspec
import redis.asyncio as aioredis

from bus.codec import decode, encode
from bus.errors import WireError
from cost_ledger.catalog import ModelPrice, PriceCatalog
from optimizer import keys
from optimizer.errors import BadInput
from router.providers.registry import ProviderRegistry

PRICES_FILE = "fine_tune_prices.toml"
RUNTIME_SUFFIX = "+ft"
"""Marks a catalog version that holds models registered at run time: "<version>+ft<n>"."""
log = logging.getLogger(__name__)


class ModelRegistration(msgspec.Struct, kw_only=True):
    """A fine-tuned model: its name, its base model, and its prices (USD per 1M tokens)."""

    name: str
    base: str
    job_id: str = ""
    input: str
    cached_input: str
    output: str
    quality: float = 0.0
    """The quality estimate to route on; 0 means the base model's."""


def fine_tuned_prices(base: str) -> tuple[Decimal, Decimal, Decimal]:
    """(input, cached input, output) USD per 1M tokens of a model fine-tuned from base."""
    text = resources.files("optimizer").joinpath(PRICES_FILE).read_text()
    table = tomllib.loads(text).get("models", {})
    row = table.get(base)
    if not isinstance(row, dict):
        known = ", ".join(sorted(table))
        raise BadInput(f"no fine-tuned prices for base model {base!r} (known: {known})")
    return Decimal(row["input"]), Decimal(row["cached_input"]), Decimal(row["output"])


def registration_for(name: str, base: str, job_id: str = "") -> ModelRegistration:
    """The registration of a model fine-tuned from base, at base's fine-tuned prices."""
    price_in, cached, price_out = fine_tuned_prices(base)
    return ModelRegistration(
        name=name,
        base=base,
        job_id=job_id,
        input=str(price_in),
        cached_input=str(cached),
        output=str(price_out),
    )


def register(
    catalog: PriceCatalog, registration: ModelRegistration, registry: ProviderRegistry | None
) -> ModelPrice:
    """Price the model in catalog, and have the base model's provider offer it."""
    base = catalog.get(registration.base)
    price = dataclasses.replace(
        base,
        name=registration.name,
        input=Decimal(registration.input),
        cached_input=Decimal(registration.cached_input),
        output=Decimal(registration.output),
        quality=registration.quality or base.quality,
    )
    new = registration.name not in catalog.entries
    catalog.register(price)
    if new:  # events priced with it must not claim the plain catalog version
        object.__setattr__(catalog, "version", with_runtime_model(catalog.version))
    if registry is not None:
        client = registry.offering(registration.base)
        if client is not None and registration.name not in client.config.models:
            models = (*client.config.models, registration.name)
            client.config = dataclasses.replace(client.config, models=models)
    return price


def with_runtime_model(version: str) -> str:
    """The catalog version after one more model is registered at run time: "<base>+ft<n>",
    n counting them (the same in every process that registered the same models)."""
    base, _, count = version.partition(RUNTIME_SUFFIX)
    return f"{base}{RUNTIME_SUFFIX}{int(count or 0) + 1}"


async def load_registered(
    redis: aioredis.Redis, catalog: PriceCatalog, registry: ProviderRegistry | None = None
) -> list[ModelPrice]:
    """Price every kept fine-tuned model in catalog (for the API, the cost CLI, a router);
    a bad registration is logged and skipped. Raises RedisError when Redis is unreachable."""
    prices: list[ModelPrice] = []
    for registration in await load_all(redis):
        try:
            prices.append(register(catalog, registration, registry))
        except Exception as exc:  # a bad registration must not stop the others
            log.warning("model %s not registered: %s", registration.name, exc)
    return prices


async def save(redis: aioredis.Redis, registration: ModelRegistration) -> None:
    """Keep a registration so that every process (and a restarted one) loads it."""
    await redis.hset(keys.MODELS, registration.name, encode(registration))


async def load_all(redis: aioredis.Redis) -> list[ModelRegistration]:
    """Every kept registration; unreadable ones are logged and skipped."""
    raw = await redis.hgetall(keys.MODELS)
    found: list[ModelRegistration] = []
    for name, value in raw.items():
        try:
            found.append(decode(keys.raw(value), ModelRegistration))
        except WireError as exc:
            log.warning("skipping unreadable model registration %r: %s", name, exc)
    return found
