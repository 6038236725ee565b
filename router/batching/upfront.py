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

import msgspec

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


@functools.lru_cache(maxsize=1024)
def _call_part(schema_key: bytes, max_items: int, framing: tuple[int, int]) -> tuple[int, int]:
    """Each item's part of what a packed call adds once (its framing given, in o200k and
    estimated tokens, then instructions, separators and the packed schema), at the worst n
    from 2 to max_items, its own heading added: (o200k, estimate) tokens."""
    schema = msgspec.json.decode(schema_key)
    call_bpe = call_est = 0
    for n in range(2, max_items + 1):
        how = how_text(n) + _SEPARATOR
        packed = json.dumps(packed_schema(schema, n))
        bpe = framing[0] + count_bpe_tokens(how) + count_bpe_tokens(packed) + JOIN_TOKENS
        estimate = framing[1] + count_text_tokens(how) + count_text_tokens(packed)
        call_bpe, call_est = max(call_bpe, -(-bpe // n)), max(call_est, -(-estimate // n))
    labels = [_SEPARATOR + item_label(i) for i in range(max_items)]
    call_bpe += max(count_bpe_tokens(label) for label in labels) + JOIN_TOKENS
    call_est += max(count_text_tokens(label) for label in labels)
    return call_bpe, call_est


def _framing(before: list[ChatMessage]) -> tuple[int, int]:
    """(o200k, estimated) tokens of a packed call's messages but for its prompt's text: the
    messages before the last, the last one's framing and the reply's priming."""
    user = ChatMessage(role="user", content="")
    bpe = REPLY_PRIMING_TOKENS + sum(message_text_tokens(m) for m in [*before, user])
    estimate = REPLY_PRIMING_TOKENS + sum(
        count_message_tokens(m) for m in openai_messages([*before, user])
    )
    return bpe, estimate


def pack_share(request: LlmRequest, price: ModelPrice, margin: Decimal, max_items: int) -> int:
    """The most request's part of a packed call of 2 to max_items requests compatible with it
    (router.batching.policy.pack_key) can cost on price's model, in micro-dollars: what the
    budget stage reserves for it when it may be packed, if more than it reserves alone."""
    if request.output_schema is None or max_items < 2:
        return 0
    before = request.messages[:-1]
    framing = _framing(before) if before else _framing_alone()
    schema_key = msgspec.json.encode(request.output_schema.schema)
    call_bpe, call_est = _call_part(schema_key, max_items, framing)
    text = item_text(request)
    bpe = call_bpe + count_bpe_tokens(text)
    estimate = call_est + count_text_tokens(text)
    factor = TOKENIZER_FACTOR.get(price.provider, UNKNOWN_PROVIDER_FACTOR)
    tokens = math.ceil(max(math.ceil(bpe * factor), estimate) * margin)
    output = request.max_output_tokens + ITEM_OVERHEAD_TOKENS + -(-CALL_OVERHEAD_TOKENS // 2)
    return max_cost_micro_usd(price, tokens, output)


@functools.cache
def _framing_alone() -> tuple[int, int]:
    """_framing of a request with one message (counted on first use: the BPE tokenizer's
    import reads its vocabulary)."""
    return _framing([])
