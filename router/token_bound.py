"""Token counts that bound the bill: what a budget reserves for a request on one model.

Input is counted twice and the larger count kept: with a real BPE tokenizer (o200k_base,
offline, router.tokenizer) scaled by the provider's tokenizer factor, and with the router's
own estimate (router.tokens). Images are counted by the model's own rule (the catalog's
image_rule: OpenAI tiles or patches, Anthropic's w*h/750, Gemini's 258-token tiles). Output
is the request's cap plus the model's reasoning budget (cost_ledger.pricing.max_cost_micro_usd).

OpenAI's o200k_base is exact for gpt-4o, gpt-4.1, o-series and gpt-5 text. Anthropic and
Google publish no offline tokenizer, so their text is bounded by o200k times a factor; an
answer that still costs more than its reservation is booked in full, counted and alerted
(router.stages.budget), never absorbed.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal

from bus.messages import ChatMessage, ImagePart, LlmRequest
from cost_ledger.catalog import ModelPrice
from cost_ledger.pricing import max_cost_micro_usd
from router.tokenizer import count_bpe_tokens
from router.tokens import (
    MESSAGE_OVERHEAD_TOKENS,
    NAME_TOKENS,
    REPLY_PRIMING_TOKENS,
    image_part_size,
    image_tokens_by_rule,
)

TOKENIZER_FACTOR: dict[str, Decimal] = {
    "openai": Decimal("1.00"),
    "anthropic": Decimal("1.30"),
    "google": Decimal("1.15"),
}
"""Provider tokens per o200k token, at most, on FlipSync's prompts (English and JSON):
Claude's tokenizer splits finer than o200k; Gemini's is close to it."""
UNKNOWN_PROVIDER_FACTOR = Decimal("1.30")


def bound_input_tokens(
    request: LlmRequest, price: ModelPrice, margin: Decimal = Decimal(1), *, estimate: int = 0
) -> int:
    """Input tokens the provider can bill for request on price's model, times margin.

    estimate is the router's own count of the same request (router.stages.budget); the bound
    is never below it.
    """
    factor = TOKENIZER_FACTOR.get(price.provider, UNKNOWN_PROVIDER_FACTOR)
    text = REPLY_PRIMING_TOKENS + sum(_message_text_tokens(m) for m in request.messages)
    if request.output_schema is not None:
        text += count_bpe_tokens(json.dumps(request.output_schema.schema))
    if request.tools:
        text += MESSAGE_OVERHEAD_TOKENS + count_bpe_tokens(json.dumps(request.tools))
    images = sum(_image_tokens(part, price.image_rule) for part in _images(request.messages))
    bound = max(math.ceil(text * factor) + images, estimate)
    return math.ceil(bound * margin)


def max_request_cost(
    request: LlmRequest, price: ModelPrice, margin: Decimal = Decimal(1), *, estimate: int = 0
) -> int:
    """The most request can cost on price's model, in micro-dollars, rounded up."""
    tokens = bound_input_tokens(request, price, margin, estimate=estimate)
    return max_cost_micro_usd(price, tokens, request.max_output_tokens)


def _message_text_tokens(message: ChatMessage) -> int:
    total = MESSAGE_OVERHEAD_TOKENS + count_bpe_tokens(message.role)
    total += sum(count_bpe_tokens(text) for text in message.texts())
    if message.tool_calls:
        total += count_bpe_tokens(json.dumps(message.tool_calls, sort_keys=True))
    if message.tool_call_id:
        total += NAME_TOKENS + count_bpe_tokens(message.tool_call_id)
    return total


def _images(messages: list[ChatMessage]) -> list[ImagePart]:
    return [part for message in messages for part in message.images()]


def _image_tokens(part: ImagePart, rule: str) -> int:
    width, height = image_part_size({"url": part.url, "width": part.width, "height": part.height})
    return image_tokens_by_rule(rule, width, height, part.detail)
