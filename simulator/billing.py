"""How the simulated provider bills prompt tokens: as FlipSync estimates them, or as a provider.

"estimate" (the default) bills with router.tokens, the router's own estimator, as the
simulator always did. "provider" bills the way a real provider's invoice differs from that
estimate, so that budgets are tested against usage they did not compute themselves:

- text by another tokenizer: cl100k_base (bpe-openai, offline) times the provider's skew
  (Claude and Gemini tokenizers split English finer than OpenAI's);
- 4 framing tokens per message instead of 3, and the response_format schema billed as input;
- images by the model's own rule from the price catalog (gpt-4o-mini's 2,833 + 5,667 per
  tile, patches, Anthropic's w*h/750, Gemini's 258-token tiles), not gpt-4o's tile rule.
"""

from __future__ import annotations

import enum
import functools
import importlib
import json
import math
import warnings
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from cost_ledger.catalog import PriceCatalog
from router.tokens import image_part_size, image_tokens_by_rule

PROVIDER_SKEW: dict[str, Decimal] = {
    "openai": Decimal("1.00"),
    "anthropic": Decimal("1.20"),
    "google": Decimal("1.10"),
}
"""Billed text tokens per cl100k token, per provider, in "provider" billing."""
FRAMING_TOKENS = 4
PRIMING_TOKENS = 3


class Billing(enum.StrEnum):
    """Which rule bills prompt tokens."""

    ESTIMATE = "estimate"
    PROVIDER = "provider"


def provider_prompt_tokens(
    model: str,
    messages: list[dict[str, Any]],
    response_format: Mapping[str, Any] | None,
    tools: tuple[dict[str, Any], ...],
) -> int:
    """Prompt tokens a provider bills for a chat request to model ("provider" billing)."""
    catalog = _catalog()
    price = catalog.get(model) if model in catalog else None
    provider = price.provider if price is not None else "openai"
    rule = price.image_rule if price is not None else "tile:85:170"
    text = PRIMING_TOKENS
    images = 0
    for message in messages:
        text += FRAMING_TOKENS + _tokens(str(message.get("role", "")))
        content = message.get("content")
        if isinstance(content, str):
            text += _tokens(content)
        elif isinstance(content, list):
            for part in content:
                if not isinstance(part, Mapping):
                    continue
                if part.get("type") == "text":
                    text += _tokens(str(part.get("text", "")))
                elif part.get("type") == "image_url" and isinstance(part.get("image_url"), Mapping):
                    image = part["image_url"]
                    width, height = image_part_size(image)
                    detail = str(image.get("detail") or "auto")
                    images += image_tokens_by_rule(rule, width, height, detail)
    if response_format:
        text += _tokens(json.dumps(response_format))
    if tools:
        text += FRAMING_TOKENS + _tokens(json.dumps(list(tools)))
    return math.ceil(text * PROVIDER_SKEW.get(provider, Decimal(1))) + images


def _tokens(text: str) -> int:
    return len(_cl100k().encode_ordinary(text)) if text else 0


@functools.cache
def _catalog() -> PriceCatalog:
    return PriceCatalog.load()


@functools.cache
def _cl100k() -> Any:
    with warnings.catch_warnings():  # bpe-openai 0.1.4 uses a deprecated importlib call
        warnings.simplefilter("ignore", DeprecationWarning)
        return importlib.import_module("bpe_openai").get_encoding("cl100k_base")
