"""4xx, never 500, for the client's mistakes on every HTTP endpoint, with no internal text."""

from __future__ import annotations

import io
import json
import struct
import uuid
import zlib
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bus.llm_client import LlmClient
from bus.messages import ChatMessage, ErrorCode
from bus.settings import Settings
from flipsync.stack import Service, Stack, start_stack
from tests.helpers import make_request

TENANT = f"http{uuid.uuid4().hex[:8]}"
KEY = "sk-test-" + uuid.uuid4().hex
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Stack]:
    """Provider, router, ledger and the API on embedded servers."""
    settings = Settings(
        sim_latency_ms=0,
        api_port=0,
        api_keys={KEY: TENANT},
        extra_agents=frozenset({"listing"}),
    )
    services = {Service.PROVIDER, Service.ROUTER, Service.LEDGER, Service.API}
    running = await start_stack(settings, services)
    yield running
    await running.stop()


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[aiohttp.ClientSession]:
    """A session carrying the tenant's key, rooted at the API."""
    assert stack.api is not None
    headers = {"Authorization": f"Bearer {KEY}"}
    async with aiohttp.ClientSession(stack.api.url, headers=headers) as session:
        yield session


def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims width x height pixels but holds almost none (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _assert_clean(text: str) -> None:
    for internal in ("Traceback", 'File "', "Error:", "/work/", "site-packages"):
        assert internal not in text, text


async def test_a_12_mb_body_is_413(http: aiohttp.ClientSession) -> None:
    big = b'{"question": "' + b"x" * (12 * 1024 * 1024) + b'"}'
    for path in ("/v1/chat/completions", f"/api/chat/{TENANT}"):
        async with http.post(path, data=io.BytesIO(big), headers=JSON) as resp:
            assert resp.status == 413, path
            _assert_clean(await resp.text())


async def test_a_lone_surrogate_is_400(http: aiohttp.ClientSession) -> None:
    chat = b'{"question": "which mug \\ud800?"}'
    async with http.post(f"/api/chat/{TENANT}", data=chat, headers=JSON) as resp:
        assert resp.status in (400, 422), await resp.text()  # pydantic: not a unicode string
        _assert_clean(await resp.text())
    completion = b'{"model": "flipsync-auto", "messages": [{"role": "user", "content": "\\udc00"}]}'
    async with http.post("/v1/chat/completions", data=completion, headers=JSON) as resp:
        assert resp.status == 400, await resp.text()


@pytest.mark.parametrize(
    "history",
    [5, "x", [1], [{"role": "user"}], [{"text": "hi"}], [{"role": 3, "text": []}], [None]],
)
async def test_malformed_history_is_422(http: aiohttp.ClientSession, history: object) -> None:
    async with http.post(f"/api/chat/{TENANT}", json={"question": "q", "history": history}) as resp:
        assert resp.status == 422, await resp.text()
        _assert_clean(await resp.text())


async def _upload(
    http: aiohttp.ClientSession, photo: bytes, attributes: str = "{}"
) -> tuple[int, str]:
    form = aiohttp.FormData()
    form.add_field("product_id", "p1")
    form.add_field("attributes", attributes)
    form.add_field("photos", photo, filename="p.png", content_type="image/png")
    async with http.post(f"/api/products?tenant={TENANT}", data=form) as resp:
        return resp.status, await resp.text()


async def test_deep_attributes_are_400(http: aiohttp.ClientSession) -> None:
    status, text = await _upload(http, _png_header(8, 8), "[" * 5000 + "]" * 5000)
    assert status == 400, text
    status, text = await _upload(http, _png_header(8, 8), '{"a": ' + "[" * 5000 + "]" * 5000 + "}")
    assert status == 400, text
    _assert_clean(text)


@pytest.mark.parametrize(("value", "found"), [("null", "null"), ("[1]", "an array")])
async def test_an_attribute_that_is_not_text_or_a_number_is_400_naming_it(
    http: aiohttp.ClientSession, value: str, found: str
) -> None:
    """A JSON null attribute was uploaded as the text "None" (a brand "None" in the listings);
    refused as product.json refuses it, naming the attribute."""
    status, text = await _upload(http, _png_header(8, 8), f'{{"colour": "teal", "brand": {value}}}')
    assert status == 400, text
    message = json.loads(text)["error"]["message"]
    assert message == f"attributes: attribute 'brand': expected text or a number, found {found}"


async def test_a_decompression_bomb_is_413(http: aiohttp.ClientSession) -> None:
    status, text = await _upload(http, _png_header(20000, 20000))
    assert status == 413, text
    _assert_clean(text)


async def test_bad_caps_and_empty_messages_never_reach_the_provider(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    assert stack.sim is not None
    calls = (await stack.sim.stats()).calls
    for body in (
        {"model": "flipsync-auto", "messages": [{"role": "user", "content": "hi"}],
         "max_tokens": -100},
        {"model": "flipsync-auto", "messages": []},
    ):  # fmt: skip
        async with http.post("/v1/chat/completions", json=body) as resp:
            assert resp.status == 400, await resp.text()
    client = LlmClient(stack.broker)
    negative = make_request(agent="listing")
    negative.max_output_tokens = -100
    empty = make_request(agent="listing")
    empty.messages = []
    nan = make_request(agent="listing")
    nan.messages = [ChatMessage(role="user", content="x")]
    nan.temperature = float("inf")
    for request in (negative, empty, nan):
        result = await client.request(request, timeout_s=10)
        assert result.error_code is ErrorCode.MALFORMED, result.reason
    assert (await stack.sim.stats()).calls == calls


async def test_an_unknown_huge_model_is_404_without_echoing_it(
    http: aiohttp.ClientSession,
) -> None:
    model = "x" * 100_000
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    async with http.post("/v1/chat/completions", json=body) as resp:
        assert resp.status == 404
        assert len(await resp.text()) < 500
    async with http.get(f"/v1/models/{'y' * 5000}") as resp:
        assert resp.status == 404
        assert len(await resp.text()) < 500
