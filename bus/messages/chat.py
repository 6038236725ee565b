"""Seller chat: a question about the seller's own products and its reply."""

from __future__ import annotations

import msgspec

from bus.messages.base import WIRE_VERSION
from bus.messages.llm import Lever


class ChatTurn(msgspec.Struct, kw_only=True):
    """One earlier turn of a seller-chat conversation."""

    role: str
    """user or assistant."""
    text: str


class ChatAsk(msgspec.Struct, kw_only=True):
    """A seller's question about their own products, a request on chat.ask.<tenant>."""

    tenant: str
    question: str
    history: list[ChatTurn] = []
    conversation_id: str = ""
    user: str = ""
    v: int = WIRE_VERSION


class ChatReply(msgspec.Struct, kw_only=True):
    """The answer to a ChatAsk."""

    tenant: str
    conversation_id: str = ""
    ok: bool
    answer: str = ""
    reason: str = ""
    product_ids: list[str] = []
    """The seller's products the answer was given context about."""
    model: str = ""
    lever: Lever = Lever.NONE
    cost_micro_usd: int = 0
    baseline_micro_usd: int = 0
    simulated: bool = False
    """The simulated provider wrote the answer: placeholder text, said so to the reader."""
    v: int = WIRE_VERSION
