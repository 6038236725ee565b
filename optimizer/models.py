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
from optimizer.errors import FineTuneError
from router.providers.registry import ProviderRegistry

PRICES_FILE = "fine_tune_prices.toml"
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
        raise FineTuneError(f"no fine-tuned prices for base model {base!r} (known: {known})")
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
    catalog.register(price)
    if registry is not None:
        client = registry.offering(registration.base)
        if client is not None and registration.name not in client.config.models:
            models = (*client.config.models, registration.name)
            client.config = dataclasses.replace(client.config, models=models)
    return price


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
