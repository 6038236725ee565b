"""Seller chat: a seller's questions about their own products, answered from their listings.

A question is a ChatAsk request on chat.ask.<tenant> (core NATS request/reply, a queue group
shares the load). The context is built only from that tenant's listing packages in the
checkpoint bucket (keys <tenant>.<workflow>.package), so no other seller's data can reach
the prompt. The request goes through the router like any other, as task type seller_chat at
interactive priority with the conversation's history, where the pattern responder, history
pruning and the semantic cache apply.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from typing import Any

from faststream.message import StreamMessage
from faststream.nats import NatsBroker, NatsRouter

from agents.asking import SESSION_TAG, Ask, Asker
from agents.prompting import SYSTEM
from agents.spec import Output
from agents.specs.chat import SELLER_CHAT
from agents.stores import StoreOpener
from bus import subjects
from bus.codec import decode, encode
from bus.consumers import Incoming, message
from bus.errors import WireError
from bus.messages import ChatAsk, ChatMessage, ChatReply, Lever
from bus.settings import Settings

log = logging.getLogger(__name__)
CONTEXT_PRODUCTS = 8
"""Most products whose facts go into one question's context."""
CHAT_SYSTEM = SYSTEM.replace(" Answer only with JSON that matches the given schema.", "")
_WORD = re.compile(r"[a-z0-9]{3,}")


class ChatService:
    """Answers seller-chat questions for every tenant."""

    def __init__(self, settings: Settings, broker: NatsBroker, *, timeout_s: float = 60.0):
        self._broker = broker
        self._stores = StoreOpener(settings)
        self._asker = Asker(broker, settings, timeout_s=timeout_s)

    def router(self) -> NatsRouter:
        """The chat.ask.* responder, in a queue group shared by every agents replica."""
        router = NatsRouter()
        router.subscriber(subjects.CHAT_ASK_ALL, queue="chat", decoder=_whole)(self.on_ask)
        return router

    async def on_ask(self, incoming: Incoming) -> None:
        """Answer one question on its reply subject; bad input gets an error reply."""
        raw = message(incoming).raw_message
        try:
            ask = decode(raw.data, ChatAsk)
            if raw.subject != subjects.chat_ask(ask.tenant):
                raise ValueError(f"a question of {ask.tenant!r} came on {raw.subject}")
        except (WireError, ValueError) as exc:
            reply = ChatReply(tenant="", ok=False, reason=str(exc))
        else:
            reply = await self.answer(ask)
        if raw.reply:
            await raw.respond(encode(reply))

    async def answer(self, ask: ChatAsk) -> ChatReply:
        """The answer to a seller's question, from that seller's listings only."""
        stores = await self._stores(self._broker.connection.jetstream())
        # One package per product (the latest): a product uploaded again would otherwise
        # crowd the others out of the context.
        latest = {str(p.output.get("product_id")): p.output
                  async for p in stores.checkpoints.packages(ask.tenant)}  # fmt: skip
        facts = list(latest.values())
        if not facts:  # nothing to answer from: say so, and pay for no call
            reason = f"no listings for {ask.tenant} yet: upload products first (flipsync upload)"
            return ChatReply(tenant=ask.tenant, conversation_id=ask.conversation_id,
                             ok=False, reason=reason)  # fmt: skip
        chosen = relevant(facts, " ".join([ask.question, *(t.text for t in ask.history[-2:])]))
        context = "\n".join(json.dumps(_compact(f), sort_keys=True) for f in chosen)
        history = [ChatMessage(role=t.role, content=t.text) for t in ask.history]
        messages = [
            ChatMessage(role="system", content=f"{CHAT_SYSTEM}\n\n{SELLER_CHAT.instructions}"),
            ChatMessage(role="system", content=f"The seller's listings:\n{context}"),
            *history,
            ChatMessage(role="user", content=ask.question),
        ]

        def build(problems: list[str], previous: str) -> list[ChatMessage]:
            if not problems:
                return messages
            fix = f"Your last answer was invalid: {'; '.join(problems)}. Fix it."
            return [*messages, ChatMessage(role="assistant", content=previous),
                    ChatMessage(role="user", content=fix)]  # fmt: skip

        def check(output: Output) -> list[str]:
            return [p for validate in SELLER_CHAT.validators for p in validate(output, {})]

        asked = await self._asker.ask(
            Ask(
                spec=SELLER_CHAT,
                tenant=ask.tenant,
                workflow_id="",
                request_id=f"chat-{uuid.uuid4().hex}",
                priority=SELLER_CHAT.priority,
                messages=build,
                schema=None,
                check=check,
                tags=_tags(ask),
            )
        )
        result = asked.result
        return ChatReply(
            tenant=ask.tenant,
            conversation_id=ask.conversation_id,
            ok=asked.ok,
            answer=str(asked.output.get("text", "")) if asked.ok else "",
            reason=asked.reason,
            product_ids=[str(f.get("product_id")) for f in chosen],
            model=result.model if result else "",
            lever=result.lever if result else Lever.NONE,
            cost_micro_usd=asked.cost_micro_usd,
            baseline_micro_usd=asked.baseline_micro_usd,
            simulated=bool(result and result.simulated),
        )


async def ask_chat(broker: NatsBroker, ask: ChatAsk, timeout_s: float = 60.0) -> ChatReply:
    """Ask a running deployment's seller chat a question and wait for the reply."""
    reply = await broker.connection.request(
        subjects.chat_ask(ask.tenant), encode(ask), timeout=timeout_s
    )
    return decode(reply.data, ChatReply)


def relevant(facts: list[dict[str, Any]], text: str, limit: int = CONTEXT_PRODUCTS) -> list[Any]:
    """The products a question is most likely about: most shared words first, then the rest
    in a stable order, at most limit of them."""
    words = set(_WORD.findall(text.lower()))

    def score(fact: dict[str, Any]) -> tuple[int, str]:
        blob = json.dumps(fact, sort_keys=True).lower()
        return -len(words & set(_WORD.findall(blob))), str(fact.get("product_id"))

    return sorted(facts, key=score)[:limit]


def _compact(fact: dict[str, Any]) -> dict[str, Any]:
    """A product's facts without empty values: fewer tokens in every question."""
    return {k: v for k, v in fact.items() if v not in (None, "", [], {})}


async def _whole(msg: StreamMessage[Any]) -> Any:
    return msg


def _tags(ask: ChatAsk) -> dict[str, str]:
    """A chat request's tags: its user (quota) and its conversation (pinned to one model)."""
    tags = {"user": ask.user} if ask.user else {}
    if ask.conversation_id:
        tags[SESSION_TAG] = f"chat/{ask.conversation_id}"
    return tags
