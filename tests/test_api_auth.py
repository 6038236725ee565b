"""Callers of the HTTP API authenticate with API keys, and a key reads only its own tenant."""

from __future__ import annotations

import importlib.util
import io
import json
import stat
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from openai import AsyncOpenAI

from api.app import create_app
from api.auth import ApiKeys
from api.generated_key import KEY_FILE, announce_key
from api.key_digest import digest
from bus.settings import Settings
from flipsync.stack import Service, Stack, start_stack
from tests.helpers import eventually

SAMPLES = Path(__file__).parent.parent / "agents" / "samples"
SHOP_A, SHOP_B = f"a{uuid.uuid4().hex[:8]}", f"b{uuid.uuid4().hex[:8]}"
KEY_A, KEY_B, KEY_OPS = (f"sk-{name}-{uuid.uuid4().hex}" for name in ("a", "b", "ops"))
SETTINGS = Settings(
    sim_latency_ms=0,
    api_port=0,
    # B's key is configured as its digest only: the server never needs it in clear.
    api_keys={KEY_A: SHOP_A, digest(KEY_B): SHOP_B, KEY_OPS: "*"},
)
HAS_COST_API = importlib.util.find_spec("cost_ledger.http") is not None


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Stack]:
    """Provider, router, ledger and the API service on an embedded NATS and Redis."""
    services = [Service.PROVIDER, Service.ROUTER, Service.LEDGER, Service.API]
    running = await start_stack(SETTINGS, services)
    yield running
    await running.stop()


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[aiohttp.ClientSession]:
    """A plain HTTP session on the API service."""
    assert stack.api is not None
    async with aiohttp.ClientSession(stack.api.url) as session:
        yield session


def bearer(key: str) -> dict[str, str]:
    """The Authorization header of a key."""
    return {"Authorization": f"Bearer {key}"}


async def get(http: aiohttp.ClientSession, path: str, key: str | None = None) -> tuple[int, Any]:
    """GET path with a key (or none): the status and the JSON body."""
    async with http.get(path, headers=bearer(key) if key else {}) as response:
        return response.status, await response.json(content_type=None)


@pytest.mark.parametrize(
    "path",
    ["/v1/models", f"/api/products/{SHOP_A}/wf1", "/api/cost/spend", "/api/anything"],
    ids=["models", "product", "spend", "unknown"],  # the same in every worker (pytest-xdist)
)
async def test_no_key_or_a_wrong_key_gets_401(http: aiohttp.ClientSession, path: str) -> None:
    status, body = await get(http, path)
    assert status == 401 and body["error"]["code"] == "missing_api_key"
    status, body = await get(http, path, "sk-wrong")
    assert status == 401 and body["error"]["message"] == "invalid API key"
    async with http.get(path, headers={"Authorization": f"Basic {KEY_A}"}) as response:
        assert response.status == 401 and response.headers["WWW-Authenticate"] == "Bearer"


async def test_a_chat_completion_without_a_valid_key_is_refused(stack: Stack) -> None:
    assert stack.api is not None
    async with AsyncOpenAI(base_url=f"{stack.api.url}/v1", api_key="sk-wrong") as client:
        with pytest.raises(openai.AuthenticationError):
            await client.chat.completions.create(
                model="flipsync-auto", messages=[{"role": "user", "content": "hi"}]
            )


async def test_pages_need_no_key(http: aiohttp.ClientSession) -> None:
    status, body = await get(http, "/healthz")
    assert status == 200 and body == {"status": "ok", "nats": True, "redis": True}
    async with http.get("/asyncapi.json") as response:
        assert response.status == 200
    async with http.get("/dashboard") as response:
        assert response.status == 200 and "html" in response.headers["Content-Type"]


async def test_a_key_cannot_read_another_tenants_products(http: aiohttp.ClientSession) -> None:
    status, body = await get(http, f"/api/products/{SHOP_B}/wf1", KEY_A)
    assert status == 403 and SHOP_B in body["error"]["message"]
    status, _ = await get(http, f"/api/products/{SHOP_A}/wf1", KEY_A)
    assert status == 404  # its own tenant: let through, and there is no such upload
    status, _ = await get(http, f"/api/products/{SHOP_B}/wf1", KEY_B)
    assert status == 404  # B's key, configured as a digest, works
    status, _ = await get(http, f"/api/products/{SHOP_B}/wf1", KEY_OPS)
    assert status == 404  # an operator key may read any tenant
    async with http.post(
        f"/api/chat/{SHOP_B}", headers=bearer(KEY_A), json={"question": "what do I sell?"}
    ) as response:
        assert response.status == 403


async def test_a_key_cannot_upload_for_another_tenant(http: aiohttp.ClientSession) -> None:
    form = aiohttp.FormData()
    form.add_field("tenant", SHOP_B)
    form.add_field("product_id", "lamp-x")
    photo = (SAMPLES / "photos" / "lamp-003-a.png").read_bytes()
    form.add_field("photos", photo, filename="lamp.png", content_type="image/png")
    async with http.post("/api/products", data=form, headers=bearer(KEY_A)) as response:
        assert response.status == 403, await response.text()


@pytest.mark.skipif(not HAS_COST_API, reason="cost_ledger/http.py is not there yet")
async def test_a_key_sees_only_its_own_costs(stack: Stack, http: aiohttp.ClientSession) -> None:
    assert stack.api is not None
    async with AsyncOpenAI(base_url=f"{stack.api.url}/v1", api_key=KEY_B) as client:
        await client.chat.completions.create(
            model="flipsync-auto",
            messages=[{"role": "user", "content": f"Name a mug colour ({uuid.uuid4().hex})"}],
        )

    async def b_has_spend() -> bool:
        status, body = await get(http, "/api/cost/spend", KEY_B)
        return status == 200 and body["totals"]["calls"] == 1

    await eventually(b_has_spend)  # the ledger applied B's call
    status, body = await get(http, "/api/cost/spend", KEY_B)
    assert body["filter"]["tenant"] == SHOP_B and body["totals"]["spend_micro_usd"] > 0
    status, body = await get(http, "/api/cost/spend", KEY_A)  # no tenant named: A's own
    assert status == 200 and body["filter"]["tenant"] == SHOP_A
    assert body["totals"]["calls"] == 0
    status, body = await get(http, f"/api/cost/spend?tenant={SHOP_B}", KEY_A)
    assert status == 403
    status, body = await get(http, f"/api/cost/spend?tenant={SHOP_B}", KEY_OPS)
    assert status == 200 and body["totals"]["calls"] == 1


def test_keys_are_kept_as_digests_and_compared_whole(tmp_path: Path) -> None:
    keys = ApiKeys({"sk-one": "t1", digest("sk-two"): "t2"})
    assert keys.tenant_of("sk-one") == "t1" and keys.tenant_of("sk-two") == "t2"
    assert keys.tenant_of("sk-on") is None and keys.tenant_of("") is None
    assert keys.tenant_of(digest("sk-one")) is None  # the digest itself is not a key
    assert "sk-one" not in repr(vars(keys))
    keys_file = tmp_path / "keys.json"
    keys_file.write_text(json.dumps({digest("sk-three"): "t3"}))
    loaded = ApiKeys.from_settings(Settings(api_keys={"sk-one": "t1"}, api_keys_file=keys_file))
    assert len(loaded) == 2 and loaded.tenant_of("sk-three") == "t3"
    with pytest.raises(ValueError, match="subject token"):
        ApiKeys({"sk-x": "bad.tenant"})


async def _post_upload(app: Any, query: str, key: str) -> tuple[int, int]:
    """POST /api/products?<query> straight to the ASGI app with a never-ending multipart
    body: the status, and how many body chunks the app read."""
    reads = 0

    async def receive() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        if reads > 3:  # enough to show the body was read; then the client "stops"
            return {"type": "http.request", "body": b"--x--\r\n", "more_body": False}
        return {"type": "http.request", "body": b"x" * 65536, "more_body": True}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/api/products", "raw_path": b"/api/products",
        "query_string": query.encode(), "root_path": "",
        "headers": [
            (b"authorization", f"Bearer {key}".encode()),
            (b"content-type", b"multipart/form-data; boundary=x"),
        ],
        "server": ("testserver", 80), "client": ("127.0.0.1", 1),
    }  # fmt: skip
    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], reads


async def test_the_upload_tenant_is_checked_before_the_body_is_read(stack: Stack) -> None:
    app = create_app(stack.broker, stack.redis, SETTINGS)
    status, reads = await _post_upload(app, f"tenant={SHOP_B}", KEY_A)
    assert status == 403 and reads == 0
    # The control: for its own tenant the same request is read (and refused as malformed).
    status, reads = await _post_upload(app, f"tenant={SHOP_A}", KEY_A)
    assert status in (400, 422) and reads > 0
    status, reads = await _post_upload(app, "", KEY_A)  # none named: the key's own
    assert status in (400, 422) and reads > 0


def test_a_generated_key_is_filed_and_printed_only_on_a_terminal(tmp_path: Path) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    shown = Terminal()
    page = "http://localhost:8080/dashboard"
    announce_key("fs-secret-1", "default", tmp_path, shown, dashboard=page)
    assert "fs-secret-1" in shown.getvalue()
    assert f"{page}#key=fs-secret-1" in shown.getvalue()  # a link to open, key in the fragment
    # Kept in its file on a terminal too: `flipsync http` names that file (a newcomer looked
    # for the key file the README promised and found none).
    assert (tmp_path / KEY_FILE).read_text().strip() == "fs-secret-1"
    assert stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode) == 0o600
    assert f"(kept in {tmp_path / KEY_FILE})" in shown.getvalue()

    logged = io.StringIO()  # a pipe, a container log: not a terminal
    announce_key("fs-secret-2", "default", tmp_path / "data", logged, dashboard=page)
    key_file = tmp_path / "data" / KEY_FILE
    assert "fs-secret-2" not in logged.getvalue() and str(key_file) in logged.getvalue()
    assert key_file.read_text().strip() == "fs-secret-2"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

    demo = io.StringIO()  # the demo tenant's key, beside the default one, not over it
    announce_key("fs-secret-4", "demo", tmp_path / "data", demo)
    assert (tmp_path / "data" / f"{KEY_FILE}-demo").read_text().strip() == "fs-secret-4"
    assert key_file.read_text().strip() == "fs-secret-2"
    assert "key of tenant demo is in" in demo.getvalue()

    elsewhere = io.StringIO()
    announce_key("fs-secret-3", "default", None, elsewhere)
    path = Path(elsewhere.getvalue().rsplit(" ", 1)[-1].strip())
    assert path.read_text().strip() == "fs-secret-3"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
