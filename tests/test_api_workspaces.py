"""API keys bound to a workspace or project: calls are made there, a call naming another one
is refused with 403, and the cost API narrows the key's reports to it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from api.auth import ApiKeys, AuthError, Caller, bound_caller
from bus.settings import Settings
from flipsync.stack import Service, Stack, start_stack
from tests.helpers import eventually

SHOP = f"w{uuid.uuid4().hex[:8]}"
KEY_FREE, KEY_WS, KEY_PROJ = (f"sk-{n}-{uuid.uuid4().hex}" for n in ("free", "ws", "proj"))
SETTINGS = Settings(
    sim_latency_ms=0,
    api_port=0,
    api_keys={KEY_FREE: SHOP, KEY_WS: f"{SHOP}/eu", KEY_PROJ: f"{SHOP}/eu/spring"},
)


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


async def chat(http: aiohttp.ClientSession, key: str, **headers: str) -> tuple[int, dict[str, Any]]:
    """One chat completion with a key and FlipSync headers: the status and the JSON body."""
    body = {
        "model": "flipsync-auto",
        "messages": [{"role": "user", "content": f"Name a mug colour ({uuid.uuid4().hex})"}],
    }
    sent = {"Authorization": f"Bearer {key}", **headers}
    async with http.post("/v1/chat/completions", json=body, headers=sent) as response:
        return response.status, await response.json(content_type=None)


async def get(http: aiohttp.ClientSession, path: str, key: str) -> tuple[int, Any]:
    """GET path with a key: the status and the JSON body."""
    async with http.get(path, headers={"Authorization": f"Bearer {key}"}) as response:
        return response.status, await response.json(content_type=None)


def test_a_key_value_binds_tenant_workspace_and_project() -> None:
    assert bound_caller("shop") == Caller("shop")
    assert bound_caller("shop/eu/spring") == Caller("shop", "eu", "spring")
    for bad in ("shop/e u", "shop/eu/spring/x", "*/eu", "shop//p"):
        with pytest.raises(ValueError):
            bound_caller(bad)
    keys = ApiKeys({"sk-1": "shop/eu"})
    assert keys.caller_of("sk-1") == Caller("shop", "eu") and keys.tenant_of("sk-1") == "shop"
    bound = Caller("shop", "eu", "spring")
    assert bound.place(None, None) == ("eu", "spring")
    assert bound.place("eu", "spring") == ("eu", "spring")
    assert Caller("shop", "eu").place(None, "fall") == ("eu", "fall")
    assert Caller("shop").place(None, None) == ("default", "default")
    with pytest.raises(AuthError) as refused:
        bound.place("us", None)
    assert refused.value.status == 403 and "bound to workspace 'eu'" in refused.value.reason


async def test_a_bound_key_calls_in_its_place_and_another_is_refused(
    http: aiohttp.ClientSession,
) -> None:
    status, body = await chat(http, KEY_PROJ)  # names nothing: made in eu/spring
    assert status == 200, body
    status, body = await chat(http, KEY_PROJ, **{"X-FlipSync-Project": "fall"})
    assert status == 403 and body["error"]["type"] == "permission_error"
    assert body["error"]["code"] == "forbidden_project"
    assert "bound to project 'spring'" in body["error"]["message"]
    status, body = await chat(http, KEY_WS, **{"X-FlipSync-Workspace": "us"})
    assert status == 403 and body["error"]["code"] == "forbidden_workspace"
    status, body = await chat(http, KEY_WS, **{"X-FlipSync-Project": "fall"})  # its workspace
    assert status == 200, body
    status, body = await chat(http, KEY_FREE, **{"X-FlipSync-Workspace": "us"})
    assert status == 200, body
    status, body = await chat(http, KEY_FREE, **{"X-FlipSync-Workspace": "u s"})
    assert status == 400 and body["error"]["param"] == "x-flipsync-workspace"

    async def booked() -> bool:
        _, spend = await get(http, "/api/cost/spend", KEY_FREE)
        return bool(spend["totals"]["calls"] == 3)

    await eventually(booked, timeout_s=30)
    _, spend = await get(http, "/api/cost/spend", KEY_FREE)
    assert {r["name"]: r["calls"] for r in spend["by_project"]} == {
        "eu/fall": 1, "eu/spring": 1, "us/default": 1,
    }  # fmt: skip


async def test_a_bound_key_reads_only_its_workspaces_costs(
    http: aiohttp.ClientSession,
) -> None:
    status, body = await chat(http, KEY_FREE, **{"X-FlipSync-Workspace": "apac"})
    assert status == 200, body

    async def booked() -> bool:
        _, spend = await get(http, "/api/cost/spend?workspace=apac", KEY_FREE)
        return bool(spend["totals"]["calls"] == 1)

    await eventually(booked, timeout_s=30)
    status, spend = await get(http, "/api/cost/spend", KEY_WS)  # narrowed to its workspace
    assert status == 200 and spend["filter"]["workspace"] == "eu"
    assert {r["name"] for r in spend["by_workspace"]} <= {"eu"}
    status, spend = await get(http, "/api/cost/spend?workspace=apac", KEY_WS)
    assert status == 403 and "bound to workspace 'eu'" in spend["error"]["message"]
    status, spend = await get(http, "/api/cost/spend", KEY_PROJ)
    assert status == 200 and spend["filter"]["project"] == "spring"
    status, body = await get(http, "/api/cost/forecast", KEY_WS)  # not kept by workspace
    assert status == 400 and "not kept by workspace" in body["error"]["message"]
    status, body = await get(http, "/api/cost/budgets", KEY_PROJ)
    assert status == 200 and body["filter"]["workspace"] == "eu"
