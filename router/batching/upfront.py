"""A packable request's share of the packed call it may join, reserved before the packing.

A packed call's bound (``Packer._bound``, ``PaidAnswers.most``: max_request_cost of the
packed request) passes what its items reserve alone: the call carries its own instructions,
the packed schema (inline: one copy of the answer schema per item, plus an index), each item's
heading and output wrapper. The budget stage reserves, for a request that may be packed, the
most its part of any packed call can cost, so that ``router.context.cover`` finds nothing
lacking and sends no Redis command; what the answer did not cost is released at settle.

The packed call's bound is max_cost(price, ceil(max(ceil(T * factor), E) * margin), out) with
T its o200k count, E the router's estimate and out its output cap. Each of T, E and out splits
into a part every item's own text and answer add (its text counted whole, though the shared
opening is sent once) and a part the call adds once (the reply priming, the messages before
the last, the last message's framing, the instructions, the packed schema, the answer's
wrapper), of which a pack of n items gives each item a 1/n-th, at most the largest over
n = 2 .. max_items. ceil, max and the price's rounding are subadditive, so these parts, priced
one item at a time with the same formula, sum over a pack to at least its bound.

The o200k count of the joined prompt can differ from its parts' by a token where two parts
meet (the estimate's pieces never join across the kinds that meet there): JOIN_TOKENS per item
and per call cover it; where they would not, cover() still grows the reservations before the
call goes, so no bound is ever missed, only paid for in Redis commands
(tests/test_packing_upfront.py checks the sum over random packs).
"""

from __future__ import annotations

import functools
import json
import math
from decimal import Decimal

from bus.messages import ChatMessage, LlmRequest
from cost_ledger.catalog import ModelPrice
from cost_ledger.pricing import max_cost_micro_usd
from router.batching.prompt import (
    CALL_OVERHEAD_TOKENS,
    ITEM_OVERHEAD_TOKENS,
    how_text,
    item_label,
    item_text,
    packed_schema,
)
from router.providers.messages import openai_messages
from router.token_bound import TOKENIZER_FACTOR, UNKNOWN_PROVIDER_FACTOR, message_text_tokens
from router.tokenizer import count_bpe_tokens
from router.tokens import REPLY_PRIMING_TOKENS, count_message_tokens, count_text_tokens

JOIN_TOKENS = 2
"""o200k tokens allowed for where two parts of the packed prompt meet: each item's separator
and heading against its text, and the instructions against the first item."""
_SEPARATOR = "\n\n"


@functools.lru_cache(maxsize=256)
def _call_parts(schema_json: str, max_items: int) -> tuple[tuple[tuple[int, int], ...], int, int]:
    """What a packed call of n = 2 .. max_items items adds once, in (o200k, estimate) tokens
    beyond the messages before the last (instructions, separator, packed schema), by n; and the
    largest heading with its separator, in o200k and estimate tokens."""
    schema = json.loads(schema_json)
    once: list[tuple[int, int]] = []
    for n in range(2, max_items + 1):
        how = how_text(n) + _SEPARATOR
        packed = json.dumps(packed_schema(schema, n))
        once.append(
            (
                count_bpe_tokens(how) + count_bpe_tokens(packed) + JOIN_TOKENS,
                count_text_tokens(how) + count_text_tokens(packed),
            )
        )
    labels = [_SEPARATOR + item_label(i) for i in range(max_items)]
    bpe = max(count_bpe_tokens(label) for label in labels) + JOIN_TOKENS
    estimate = max(count_text_tokens(label) for label in labels)
    return tuple(once), bpe, estimate


def pack_share(request: LlmRequest, price: ModelPrice, margin: Decimal, max_items: int) -> int:
    """The most request's part of a packed call of 2 to max_items requests compatible with it
    (router.batching.policy.pack_key) can cost on price's model, in micro-dollars: what the
    budget stage reserves for it when it may be packed, if more than it reserves alone."""
    if request.output_schema is None or max_items < 2:
        return 0
    before = request.messages[:-1]
    user = ChatMessage(role="user", content="")
    framing_bpe = REPLY_PRIMING_TOKENS + message_text_tokens(user)
    framing_bpe += sum(message_text_tokens(m) for m in before)
    framing_est = REPLY_PRIMING_TOKENS + sum(
        count_message_tokens(m) for m in openai_messages([*before, user])
    )
    once, label_bpe, label_est = _call_parts(json.dumps(request.output_schema.schema), max_items)
    call_bpe = max(-(-(framing_bpe + b) // n) for n, (b, _) in enumerate(once, start=2))
    call_est = max(-(-(framing_est + e) // n) for n, (_, e) in enumerate(once, start=2))
    text = item_text(request)
    bpe = call_bpe + count_bpe_tokens(text) + label_bpe
    estimate = call_est + count_text_tokens(text) + label_est
    factor = TOKENIZER_FACTOR.get(price.provider, UNKNOWN_PROVIDER_FACTOR)
    tokens = math.ceil(max(math.ceil(bpe * factor), estimate) * margin)
    output = request.max_output_tokens + ITEM_OVERHEAD_TOKENS + -(-CALL_OVERHEAD_TOKENS // 2)
    return max_cost_micro_usd(price, tokens, output)
