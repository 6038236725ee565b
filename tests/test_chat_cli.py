"""A `flipsync chat` question that got no answer ends with status 1 (found by a newcomer: a
budget's refusal printed "(no answer: over_budget ...)" and exited 0)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agents.chat import ChatService
from agents.checkpoints import CheckpointStore
from agents.cli_chat import chat
from agents.cli_session import Running
from agents.spec import PACKAGE
from bus import subjects
from bus.broker import make_broker
from bus.embedded import EmbeddedNats
from bus.messages import AgentCheckpoint
from bus.settings import Settings
from bus.streams import ensure_streams
from tests.test_cli_first_hour import flipsync


def test_an_unanswered_question_exits_1(tmp_path: Path) -> None:
    asked = flipsync("chat", "--tenant", "nobody", "which item sold best?", env={}, cwd=tmp_path)
    assert asked.returncode == 1, asked.stderr
    assert asked.stdout.startswith("(no answer: no listings for nobody"), asked.stdout


async def never_started(settings: Settings) -> Running:
    """No stack: the chat runs against the deployment at NATS_URL."""
    raise AssertionError("a chat with NATS_URL set started a stack")


async def test_a_tenant_without_listings_while_others_have_some_is_unknown(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`flipsync chat --tenant dmeo` said "no listings for dmeo yet: upload products first"
    (status 1) while demo had listings (a newcomer): a likely typo, named as one (status 2)
    with the tenants that have listings; with no listings anywhere, the old reason stays."""
    server = EmbeddedNats()  # its own: the session's server holds other tests' listings
    await server.start()
    settings = Settings(nats_url=server.url, redis_url=None)
    service = make_broker(server.url, client_name="chat-service")
    try:
        await service.connect()
        js = service.connection.jetstream()
        await ensure_streams(js, settings)
        service.include_router(ChatService(settings, service).router())
        await service.start()
        assert await chat(settings, never_started, "dmeo", "which sold best?") == 1
        out, err = capsys.readouterr()
        assert out.startswith("(no answer: no listings for dmeo yet: upload") and err == ""
        store = CheckpointStore(await js.key_value(subjects.BUCKET_CHECKPOINTS))
        for tenant in ("demo", "shop"):
            output: dict[str, Any] = {"product_id": "mug-1", "title": "Teal mug"}
            package = AgentCheckpoint(
                workflow_id="wf1", tenant=tenant, agent=PACKAGE, ok=True, output=output
            )
            await store.put_package(tenant, "wf1", package)
        assert await chat(settings, never_started, "dmeo", "which sold best?") == 2
        assert capsys.readouterr() == (
            "",
            "flipsync chat: unknown tenant 'dmeo': no listings for it; "
            "tenants with listings: demo, shop\n",
        )
        assert await store.tenants_with(PACKAGE) == ["demo", "shop"]
    finally:
        await service.stop()
        await server.stop()
