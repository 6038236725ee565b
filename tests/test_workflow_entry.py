"""The entry points on an embedded stack: `flipsync upload` of a CSV (bulk), the HTTP upload,
seller chat (its own seller's listings only), and the escalated retry of an invalid answer."""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from agents.asking import ESCALATE_TAG, Ask, Asker
from agents.catalog_file import load_catalog
from agents.chat import ask_chat
from agents.cli_chat import chat as cli_chat
from agents.cli_upload import upload as cli_upload
from agents.product_input import ProductInput
from agents.prompting import build_messages
from agents.specs.operations import REVIEW_REPLIES
from agents.upload import Uploader
from agents.watch import WorkflowWatcher
from api.app import create_app
from api.auth import ApiKeys
from api.server import ApiServer
from bus import subjects
from bus.codec import decode, encode
from bus.messages import ChatAsk, ChatReply, LlmRequest, Priority, QualitySignal
from bus.settings import Settings
from flipsync.stack import Stack, start_stack
from tests.helpers import eventually

SAMPLES = Path(__file__).parent.parent / "agents" / "samples"
FAST = Settings(
    sim_latency_ms=0, pack_window_ms=50, batch_window_ms=100, batch_poll_s=0.1,
    sim_batch_delay_s=0.1,
)  # fmt: skip
"""Short batching windows: these tests are about where requests go, not how long they wait."""


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Stack]:
    """A fully embedded stack."""
    running = await start_stack(FAST)
    yield running
    await running.stop()


class Borrowed:
    """The module's stack handed to a command, which must not stop it."""

    def __init__(self, stack: Stack, *, simulated: bool | None = None) -> None:
        self.broker = stack.broker
        self.simulated = stack.simulated if simulated is None else simulated
        self.redis = stack.redis
        self.stopping = stack.stopping

    async def stop(self) -> None:
        """Leave the stack running for the other tests."""


def tenant() -> str:
    """A fresh tenant."""
    return f"e{uuid.uuid4().hex[:10]}"


async def last_request(stack: Stack, owner: str, agent: str) -> LlmRequest:
    """The last LLM request an agent of owner published."""
    js = stack.broker.connection.jetstream()
    raw = await js.get_last_msg(subjects.STREAM_REQUESTS, subjects.llm_request(owner, agent))
    return decode(raw.data or b"", LlmRequest)


def csv_upload(folder: Path, header: str, row: str) -> tuple[str, argparse.Namespace]:
    """A one-product CSV (a board photo beside it) and `flipsync upload`'s arguments for it,
    under a fresh tenant."""
    shutil.copy(SAMPLES / "photos" / "board-005-a.png", folder / "board.png")
    (folder / "products.csv").write_text(f"{header}\n{row}\n")
    owner = tenant()
    args = argparse.Namespace(
        path=folder / "products.csv", tenant=owner, out=folder / "out",
        priority=None, timeout=120.0, duplicates="refuse",
    )  # fmt: skip
    return owner, args


def lending(stack: Stack) -> Callable[[Settings], Awaitable[Borrowed]]:
    """What cli_upload borrows a running stack with: this test's stack."""

    async def borrow(_settings: Settings) -> Borrowed:
        return Borrowed(stack)

    return borrow


async def test_cli_uploads_a_csv_at_bulk_priority_and_writes_packages(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    owner, args = csv_upload(
        tmp_path,
        "product_id,title,notes,cost_price,photos,weight_g",
        'board-9,Walnut board,"New walnut board, 40 x 30 cm",18.50,board.png,1200',
    )

    assert await cli_upload(stack.settings, lending(stack), args) == 0
    folder = tmp_path / "out" / owner / "board-9"
    assert {p.name for p in folder.iterdir()} == {
        "ebay.json", "amazon.json", "etsy.json", "shopify.json", "package.json", "summary.txt",
    }  # fmt: skip
    printed = capsys.readouterr().out
    assert "at bulk priority" in printed and "board-9" in printed and "saved" in printed
    request = await last_request(stack, owner, "ebay_listing")
    assert request.priority is Priority.BULK  # a CSV import goes the Batch API way
    shipping = (await last_request(stack, owner, "buyer_faq")).messages[1].content
    assert '"weight_g": "1200"' in str(shipping)  # the CSV's extra column reached the agents


async def test_a_deployments_simulated_answers_are_said_to_be_simulated(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A client of a deployment (NATS_URL) cannot tell its provider from its own settings:
    found by a newcomer, uploads to `flipsync http`'s servers printed and wrote the simulated
    provider's placeholder listings with no SIMULATED mark and "simulated": false. The
    workflow's result now says whether its answers were simulated."""
    owner, args = csv_upload(
        tmp_path,
        "product_id,title,notes,cost_price,photos",
        'board-8,Oak board,"Oak board, 30 x 20 cm",12.00,board.png',
    )

    async def deployment(_settings: Settings) -> Borrowed:
        return Borrowed(stack, simulated=False)  # what agents.cli_session.connected knows of one

    assert await cli_upload(stack.settings, deployment, args) == 0
    printed = capsys.readouterr().out
    assert "SIMULATED" in printed and "(simulated" in printed, printed
    package = json.loads((tmp_path / "out" / owner / "board-8" / "package.json").read_text())
    assert package["simulated"] is True
    ebay = json.loads((tmp_path / "out" / owner / "board-8" / "ebay.json").read_text())
    assert ebay["simulated"] is True


async def test_terminal_escapes_from_a_csv_reach_the_terminal_escaped(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A CSV's cells are anyone's (a supplier's export): a title holding a terminal escape
    (a window title, a clear screen) came back in the listings' titles, and the upload's
    summary and seller chat printed them raw to the seller's terminal."""
    owner, args = csv_upload(
        tmp_path,
        "product_id,title,notes,cost_price,photos,brand",
        'board-6,\x1b]0;pwned\x07Oak \x1b[2Jboard,"Oak board, 30 x 20 cm",12.00,board.png,Acme',
    )

    assert await cli_upload(stack.settings, lending(stack), args) == 0
    printed = capsys.readouterr().out
    assert "\x1b" not in printed and "\a" not in printed
    assert "\\x1b]0;pwned\\x07Oak \\x1b[2Jboard" in printed  # escaped as repr writes it
    question = "What is the oak board's title?"
    assert await cli_chat(stack.settings, lending(stack), owner, question) == 0
    answered = capsys.readouterr().out
    assert "board" in answered and "\x1b" not in answered and "\a" not in answered


async def test_http_upload_takes_multipart_photos(stack: Stack) -> None:
    owner = tenant()
    key = f"sk-{uuid.uuid4().hex}"
    app = create_app(stack.broker, stack.redis, stack.settings, keys=ApiKeys({key: owner}))
    server = ApiServer(app, "127.0.0.1", 0)
    await server.start()
    try:
        auth = {"Authorization": f"Bearer {key}"}
        async with aiohttp.ClientSession(server.url, headers=auth) as session:
            form = aiohttp.FormData()
            fields = {"product_id": "lamp-h", "notes": "Brass lamp, works"}
            for field, value in fields.items():
                form.add_field(field, value)
            photo = (SAMPLES / "photos" / "lamp-003-a.png").read_bytes()
            form.add_field("photos", photo, filename="lamp.png", content_type="image/png")
            # No tenant named: the key's own (filled in before the body is read).
            async with session.post("/api/products", data=form) as response:
                assert response.status == 202, await response.text()
                started = await response.json()
            assert started["status_url"].startswith(f"/api/products/{owner}/")
            # Asked at once, it is running, never "no such upload" (found by review: 404 until
            # the workflow service had kept the upload)
            async with session.get(started["status_url"]) as poll:
                assert poll.status in (200, 202), await poll.text()
            body: dict[str, Any] = {}

            async def finished() -> bool:
                nonlocal body
                async with session.get(started["status_url"]) as poll:
                    body = await poll.json()
                    return poll.status == 200

            await eventually(finished, timeout_s=60)
            assert body["status"] == "done", body
            assert len(body["listing"]["marketplaces"]["ebay"]["title"]) <= 80
            bad = aiohttp.FormData()
            bad.add_field("tenant", owner)
            bad.add_field("product_id", "x")
            bad.add_field("photos", b"not an image", filename="x.png")
            async with session.post(f"/api/products?tenant={owner}", data=bad) as response:
                assert response.status == 422
            async with session.get(f"/api/products/{owner}/nope") as response:
                assert response.status == 404
    finally:
        await server.stop()


async def test_seller_chat_sees_only_its_own_sellers_listings(stack: Stack) -> None:
    mine, theirs = tenant(), tenant()
    catalog = load_catalog()
    secret = ProductInput(product_id="secret-prototype", title_hint="Unreleased gadget")
    uploader = Uploader(stack.broker, stack.settings)

    async def listed(owner: str, products: list[ProductInput]) -> None:
        async with WorkflowWatcher(stack.broker, owner) as watcher:
            uploads = [await uploader.upload(p, tenant=owner) for p in products]
            await watcher.wait([u.workflow_id for u in uploads], timeout_s=60)

    await asyncio.gather(listed(mine, catalog[:2]), listed(theirs, [secret]))
    reply = await ask_chat(stack.broker, ChatAsk(tenant=mine, question="Which mug do I sell?"))
    assert reply.ok and reply.answer, reply.reason
    assert sorted(reply.product_ids) == ["mug-001", "sneaker-002"]
    request = await last_request(stack, mine, "seller_chat")
    assert request.task_type == "seller_chat" and request.priority is Priority.INTERACTIVE
    assert request.output_schema is None  # plain text: the pattern responder may answer it
    prompt = str([m.content for m in request.messages])
    assert "mug-001" in prompt and "secret-prototype" not in prompt
    # A question asked on another seller's subject is refused, not answered.
    forged = ChatAsk(tenant=theirs, question="What do I sell?")
    raw = await stack.broker.connection.request(subjects.chat_ask(mine), encode(forged), timeout=10)
    refused = decode(raw.data, ChatReply)
    assert not refused.ok and "came on" in refused.reason
    # A seller with no listings is told so, and nothing is asked of a model.
    empty = await ask_chat(stack.broker, ChatAsk(tenant=tenant(), question="What do I sell?"))
    assert not empty.ok and "no listings" in empty.reason and empty.cost_micro_usd == 0


async def test_an_invalid_answer_gets_one_escalated_retry_and_quality_signals(
    stack: Stack,
) -> None:
    owner = tenant()
    seen: list[str] = []

    def reject_first(output: dict[str, Any]) -> list[str]:
        seen.append(str(output.get("negative", "")))
        return ["negative is not apologetic enough"] if len(seen) == 1 else []

    inputs = {"identify": {"name": "Teal mug"}, "condition": {"grade": "good"}}
    ask = Ask(
        spec=REVIEW_REPLIES,
        tenant=owner,
        workflow_id="wf-retry",
        request_id=f"{owner}-review",
        priority=Priority.STANDARD,
        messages=lambda problems, previous: build_messages(
            REVIEW_REPLIES, inputs, fix=problems or None, previous=previous
        ),
        schema=REVIEW_REPLIES.output_schema,
        check=reject_first,
    )
    asked = await Asker(stack.broker, stack.settings).ask(ask)
    assert asked.ok and len(seen) == 2
    assert asked.request_ids == [f"{owner}-review", f"{owner}-review-r"]
    retry = await last_request(stack, owner, "review_replies")
    assert retry.tags[ESCALATE_TAG] == "1" and retry.model_hint == stack.settings.escalation_model
    assert "not apologetic enough" in str(retry.messages[-1].content)
    assert asked.result is not None and asked.result.model == stack.settings.escalation_model

    js = stack.broker.connection.jetstream()
    signals = []
    info = await js.stream_info(subjects.STREAM_WORKFLOW, subjects_filter=subjects.quality(owner))
    assert info.state.subjects == {subjects.quality(owner): 2}
    sub = await js.subscribe(subjects.quality(owner), ordered_consumer=True)
    for _ in range(2):
        msg = await sub.next_msg(timeout=5)
        signals.append(decode(msg.data, QualitySignal))
    await sub.unsubscribe()
    assert [(s.valid, s.attempt, s.escalated) for s in signals] == [
        (False, 0, False),
        (True, 1, True),
    ]
    assert signals[0].problems == ["negative is not apologetic enough"]
    assert signals[0].task_type == "customer_support" and signals[1].model
