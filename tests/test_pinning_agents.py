"""Agents name a session for their repeated tasks, so the router pins them to one model: a
per-photo agent's batches of one product workflow, and a chat conversation."""

from __future__ import annotations

from typing import cast

from faststream.nats import NatsBroker
from nats.js.object_store import ObjectStore

from agents.asking import Asker, session_tags
from agents.chat import _tags
from agents.per_photo import PhotoAnalyst, PhotoJob
from agents.photo_memory import PhotoMemory
from agents.specs.image import PHOTO_SUBJECT
from bus.messages import ChatAsk, Priority
from bus.settings import Settings
from router.routing.pinning import session_of


async def test_per_photo_batches_of_a_workflow_share_a_session() -> None:
    asker = Asker(NatsBroker(), Settings())
    analyst = PhotoAnalyst(asker)
    job = PhotoJob(
        tenant="t", workflow_id="wf-1", request_id="r", priority=Priority.BULK,
        memory=cast(PhotoMemory, None), objects=cast(ObjectStore, None),  # no photo is read
    )  # fmt: skip
    sessions = set()
    for batch in range(2):
        ask = await analyst._ask(PHOTO_SUBJECT, [], job, f"r-p{batch}")
        request = asker._request(ask, [], "", escalate=False)
        sessions.add(session_of(request))
    assert sessions == {f"wf-1/{PHOTO_SUBJECT.name}"}
    assert session_tags("", "agent") == {}  # no workflow, no session


def test_a_chat_conversation_is_a_session_and_keeps_its_user() -> None:
    tags = _tags(ChatAsk(tenant="t", question="q", conversation_id="c7", user="u1"))
    assert tags == {"user": "u1", "session": "chat/c7"}
    assert _tags(ChatAsk(tenant="t", question="q")) == {}
