"""The dated price catalog: what each model costs per 1M tokens, read from prices.toml."""

from __future__ import annotations

import enum
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

from cost_ledger.errors import CatalogError, UnknownModelError

PACKAGED_CATALOG = "prices.toml"
IMAGE_RULE = re.compile(r"tile:\d+:\d+|patch:\d+(\.\d+)?|anthropic|gemini|none")
"""The image-token rules router/tokens.py knows."""
STRUCTURED_OUTPUT = ("json_schema", "instructions")
_SNAPSHOT = re.compile(r"-\d{4}-\d{2}-\d{2}$|-\d{8}$")


class Tier(enum.StrEnum):
    """How capable (and how dear) a model is, for routing."""

    PREMIUM = "premium"
    STANDARD = "standard"
    ECONOMY = "economy"


@dataclass(frozen=True, kw_only=True)
class ModelPrice:
    """One model's list prices and traits."""

    name: str
    """The model name the provider's API takes."""
    provider: str
    tier: Tier
    input: Decimal
    """USD per 1M uncached input tokens."""
    cached_input: Decimal
    """USD per 1M input tokens read from the provider's prompt cache."""
    output: Decimal
    """USD per 1M output tokens."""
    batch_discount: Decimal
    """Fraction taken off every price when the call goes through the provider's Batch API."""
    context_window: int
    """Input plus output tokens the model accepts."""
    vision: bool
    """Whether the model takes image input."""
    quality: float
    """Estimated answer quality, 0..1; a placeholder until routing records real quality."""
    api_id: str = ""
    """The id the provider's API takes (empty: the same as name)."""
    cache_write: Decimal | None = None
    """USD per 1M input tokens written to the provider's prompt cache (None: the input price)."""
    image_rule: str = "tile:85:170"
    """How the provider counts an image's tokens (see prices.toml and router/tokens.py)."""
    reasoning: bool = False
    """Whether the model spends hidden reasoning tokens, billed as output."""
    reasoning_budget: int = 0
    """Output tokens to reserve beyond max_output_tokens for reasoning the output cap does
    not bound (0 where the provider's cap covers reasoning, as all three do today)."""
    structured_output: str = "json_schema"
    """"json_schema" (response_format honoured) or "instructions" (schema in the prompt)."""
    aliases: tuple[str, ...] = ()
    """Other names that resolve to this model (old FlipSync names, provider short ids)."""
    routable: bool = True
    """Whether the simulated provider offers it to routing by default."""

    @property
    def wire_id(self) -> str:
        """The model id sent to the provider."""
        return self.api_id or self.name

    @property
    def cache_write_price(self) -> Decimal:
        """USD per 1M cache-written input tokens."""
        return self.input if self.cache_write is None else self.cache_write

    def fits(self, input_tokens: int, max_output_tokens: int) -> bool:
        """Whether a prompt plus its longest answer fit the model's context window."""
        return input_tokens + max_output_tokens <= self.context_window


@dataclass(frozen=True, kw_only=True)
class PriceCatalog:
    """Every priced model of one catalog version."""

    version: str
    """The date the prices were checked; recorded in every ledger event."""
    source: str
    """Where the prices come from, and what they leave out."""
    batch_discount: Decimal
    """Default fraction off list prices for Batch API calls."""
    entries: Mapping[str, ModelPrice]
    """Model name to its price, in catalog order."""
    aliases: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """API ids and aliases to the model name they resolve to."""

    @classmethod
    def load(cls, path: Path | str | None = None) -> PriceCatalog:
        """Read a catalog file; by default the prices.toml shipped with this package."""
        try:
            if path is None:
                text = resources.files("cost_ledger").joinpath(PACKAGED_CATALOG).read_text()
            else:
                text = Path(path).read_text(encoding="utf-8")
            data = tomllib.loads(text)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise CatalogError(
                f"cannot read price catalog {path or PACKAGED_CATALOG}: {exc}"
            ) from exc
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PriceCatalog:
        """Build a catalog from parsed TOML, checking every price; raises CatalogError."""
        version = _text(data, "version", "catalog")
        batch_discount = _fraction(data, "batch_discount", "catalog")
        models = data.get("models")
        if not isinstance(models, dict) or not models:
            raise CatalogError(f"catalog {version} has no [models.<name>] tables")
        entries = {name: _model(name, raw, batch_discount) for name, raw in models.items()}
        return cls(
            version=version,
            source=str(data.get("source", "")),
            batch_discount=batch_discount,
            entries=MappingProxyType(entries),
            aliases=MappingProxyType(_aliases(entries)),
        )

    def get(self, model: str) -> ModelPrice:
        """The price of a model by name, API id, alias or dated snapshot id; raises
        UnknownModelError."""
        price = self.entries.get(model)
        if price is not None:
            return price
        name = self.resolve(model)
        if name is None:
            raise UnknownModelError(model, self.version)
        return self.entries[name]

    def resolve(self, model: str) -> str | None:
        """FlipSync's name of a model given by name, API id, alias or dated snapshot id
        ("gpt-4o-2024-08-06"), or None when the catalog does not price it."""
        if model in self.entries:
            return model
        if model in self.aliases:
            return self.aliases[model]
        stem = _SNAPSHOT.sub("", model)
        if stem != model:
            return self.resolve(stem)
        return None

    def models(self) -> tuple[ModelPrice, ...]:
        """Every model, in catalog order."""
        return tuple(self.entries.values())

    def __contains__(self, model: object) -> bool:
        """Whether the catalog prices a model (by name, API id, alias or snapshot id)."""
        return isinstance(model, str) and self.resolve(model) is not None

    def register(self, price: ModelPrice) -> None:
        """Add or replace a model at run time (a fine-tuned one); everyone holding this catalog
        sees it. The version stays: registered models are priced as their registration says."""
        object.__setattr__(self, "entries", MappingProxyType({**self.entries, price.name: price}))


def _model(name: str, raw: object, default_discount: Decimal) -> ModelPrice:
    where = f"model {name!r}"
    if not isinstance(raw, dict):
        raise CatalogError(f"{where} is not a table")
    try:
        tier = Tier(str(raw.get("tier")))
    except ValueError:
        raise CatalogError(f"{where}: tier must be one of {[t.value for t in Tier]}") from None
    price = ModelPrice(
        name=name,
        provider=_text(raw, "provider", where),
        tier=tier,
        input=_usd(raw, "input", where),
        cached_input=_usd(raw, "cached_input", where),
        output=_usd(raw, "output", where),
        batch_discount=(
            _fraction(raw, "batch_discount", where) if "batch_discount" in raw else default_discount
        ),
        context_window=_int(raw, "context_window", where),
        vision=bool(raw.get("vision", False)),
        quality=_quality(raw, where),
        api_id=str(raw.get("api_id", "")),
        cache_write=_usd(raw, "cache_write", where) if "cache_write" in raw else None,
        image_rule=str(raw.get("image_rule", "tile:85:170")),
        reasoning=bool(raw.get("reasoning", False)),
        reasoning_budget=_count(raw, "reasoning_budget", where),
        structured_output=str(raw.get("structured_output", "json_schema")),
        aliases=_names(raw, where),
        routable=bool(raw.get("routable", True)),
    )
    if price.cached_input > price.input:
        raise CatalogError(f"{where}: cached_input costs more than input")
    if not IMAGE_RULE.fullmatch(price.image_rule):
        raise CatalogError(f"{where}: image_rule {price.image_rule!r} is not a known rule")
    if price.structured_output not in STRUCTURED_OUTPUT:
        raise CatalogError(f"{where}: structured_output must be one of {STRUCTURED_OUTPUT}")
    return price


def _aliases(entries: Mapping[str, ModelPrice]) -> dict[str, str]:
    """Every API id and alias to its model's name; raises CatalogError on a clash."""
    found: dict[str, str] = {}
    for price in entries.values():
        for other in (price.api_id, *price.aliases):
            if not other or other == price.name:
                continue
            owner = found.get(other) or (other if other in entries else None)
            if owner is not None and owner != price.name:
                raise CatalogError(f"model {price.name!r}: name {other!r} is taken by {owner!r}")
            found[other] = price.name
    return found


def _names(raw: Mapping[str, Any], where: str) -> tuple[str, ...]:
    value = raw.get("aliases", [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise CatalogError(f"{where}: aliases must be a list of names")
    return tuple(value)


def _count(raw: Mapping[str, Any], key: str, where: str) -> int:
    value = raw.get(key, 0)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise CatalogError(f"{where}: {key} must be a non-negative integer")
    return value


def _text(raw: Mapping[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise CatalogError(f"{where}: {key} must be a non-empty string")
    return value


def _usd(raw: Mapping[str, Any], key: str, where: str) -> Decimal:
    value = raw.get(key)
    # A TOML float has already lost exactness by the time we see it: demand a string.
    if not isinstance(value, str):
        raise CatalogError(f'{where}: {key} must be a decimal string such as "2.50"')
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise CatalogError(f"{where}: {key} {value!r} is not a decimal number") from None
    if not amount.is_finite() or amount < 0:
        raise CatalogError(f"{where}: {key} {value!r} must be a finite, non-negative amount")
    return amount


def _fraction(raw: Mapping[str, Any], key: str, where: str) -> Decimal:
    amount = _usd(raw, key, where)
    if amount > 1:
        raise CatalogError(f"{where}: {key} must be between 0 and 1")
    return amount


def _int(raw: Mapping[str, Any], key: str, where: str) -> int:
    value = raw.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise CatalogError(f"{where}: {key} must be a positive integer")
    return value


def _quality(raw: Mapping[str, Any], where: str) -> float:
    value = raw.get("quality", 0.5)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise CatalogError(f"{where}: quality must be a number between 0 and 1")
    return float(value)
