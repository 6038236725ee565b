"""`flipsync chat`: ask seller chat about your own products, one question or a conversation
on standard input."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from agents.cli_session import Start, connected

if TYPE_CHECKING:
    from faststream.nats import NatsBroker

    from bus.settings import Settings

TENANTS_LISTED = 20
"""How many tenants with listings a chat to an unknown tenant names at most."""


async def chat(settings: Settings, start: Start, tenant: str, question: str) -> int:
    """Answer one question, or hold a conversation on standard input."""
    from agents.chat import ask_chat
    from bus.messages import ChatAsk, ChatTurn
    from bus.terminal import terminal_safe

    unanswered = 0
    async with connected(settings, start) as session:
        history: list[ChatTurn] = []
        async for text in _questions(question):
            reply = await ask_chat(
                session.broker, ChatAsk(tenant=tenant, question=text, history=history)
            )
            if not reply.ok and (unknown := await unknown_tenant(session.broker, tenant)):
                print(f"flipsync chat: {unknown}", file=sys.stderr)  # likely mistyped
                return 2
            unanswered += not reply.ok
            # The reply says whether the simulated provider wrote it (a template's answer to
            # "hi" made no call, embedded or not).
            mark = "[simulated provider: placeholder text] " if reply.simulated else ""
            said = f"{mark}{reply.answer}" if reply.ok else f"(no answer: {reply.reason})"
            print(terminal_safe(said), flush=True)  # the listings' text is anyone's
            if not reply.ok and tenant == "default" and reply.reason.startswith("no listings"):
                print("(after `make demo`, its listings are under --tenant demo)", flush=True)
            history += [ChatTurn(role="user", text=text)]
            history += [ChatTurn(role="assistant", text=reply.answer)]
    return 1 if unanswered else 0


async def unknown_tenant(broker: NatsBroker, tenant: str) -> str:
    """Why a question to tenant got no answer when the tenant is likely mistyped: it has no
    listings but others have (named); "" when it has some, or when nobody has any yet (then
    the chat's own reason, "upload products first", says what to do)."""
    from agents.checkpoints import CheckpointStore
    from agents.spec import PACKAGE
    from bus import subjects

    js = broker.connection.jetstream()
    store = CheckpointStore(await js.key_value(subjects.BUCKET_CHECKPOINTS))
    having = await store.tenants_with(PACKAGE)
    if not having or tenant in having:
        return ""
    listed = ", ".join(having[:TENANTS_LISTED])
    if len(having) > TENANTS_LISTED:
        listed += f" and {len(having) - TENANTS_LISTED} more"
    return f"unknown tenant {tenant!r}: no listings for it; tenants with listings: {listed}"


async def _questions(first: str) -> AsyncIterator[str]:
    """The one question given, or each line typed until an empty one or end of input."""
    if first:
        yield first
        return
    print("ask about your products; an empty line or Ctrl-D ends", flush=True)
    while line := (await asyncio.to_thread(sys.stdin.readline)).strip():
        yield line
