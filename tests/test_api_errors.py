"""Every error the HTTP API answers has one shape, OpenAI's {"error": {message, type, param,
code}}: on /v1, where OpenAI SDK clients parse it, and on /api, where some routes answered
FastAPI's {"detail": ...} and others that (found by review). A representative error of every
/api and /v1 route, and of what no route answers, through the whole app (api.app) on a real
nats-server and Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest
import redis.asyncio as aioredis
from faststream.nats import NatsBroker

from api.app import create_app
from api.auth import ApiKeys
from api.limits import JSON_BODY_LIMIT
from bus.settings import Settings

TENANT = f"er{uuid.uuid4().hex[:8]}"
KEY, OPS = "sk-err-" + uuid.uuid4().hex, "sk-ops-" + uuid.uuid4().hex
SHAPE = {"message", "type", "param", "code"}


@dataclass(frozen=True)
class Case:
    """One request, the route it reaches (None: no route), and the error it must get."""

    route: tuple[str, str] | None
    method: str
    path: str
    status: int
    code: str | None
    param: str | None = None
    key: str | None = KEY
    kwargs: dict[str, Any] = field(default_factory=dict)


CASES = [
    Case(("POST", "/api/products"), "POST", f"/api/products?tenant={TENANT}", 422,
         "invalid_value", "photos", kwargs={"data": {"product_id": "p1"}}),
    Case(("GET", "/api/products/{tenant}/{workflow_id}"), "GET", f"/api/products/{TENANT}/nope",
         404, "not_found"),
    Case(("POST", "/api/chat/{tenant}"), "POST", f"/api/chat/{TENANT}", 422, "invalid_value",
         "question", kwargs={"json": {"question": "x" * 9000}}),
    Case(("GET", "/api/cost/spend"), "GET", "/api/cost/spend?agent=a&model=m", 400,
         "bad_filter"),
    Case(("GET", "/api/cost/timeseries"), "GET", "/api/cost/timeseries?start=yesterday", 422,
         "invalid_value", "start"),
    Case(("GET", "/api/cost/hourly"), "GET", "/api/cost/hourly?start=2026-11-05&end=2026-11-01",
         400, "bad_filter"),
    Case(("GET", "/api/cost/budgets"), "GET", "/api/cost/budgets?tenant=a.b", 400, "bad_filter",
         key=OPS),
    Case(("GET", "/api/cost/forecast"), "GET", "/api/cost/forecast?workspace=w", 400,
         "not_kept_by_workspace", "workspace"),
    Case(("GET", "/api/cost/forecast"), "GET", "/api/cost/forecast?agent=no_such_agent", 422,
         "unknown_agent", "agent"),
    Case(("GET", "/api/cost/anomalies"), "GET", "/api/cost/anomalies?end=soon", 422,
         "invalid_value", "end"),
    Case(("GET", "/api/cost/recommendations"), "GET", "/api/cost/recommendations?project=p",
         400, "not_kept_by_workspace", "project"),
    Case(("POST", "/v1/chat/completions"), "POST", "/v1/chat/completions", 400, None,
         "messages", kwargs={"json": {"model": "flipsync-auto"}}),
    Case(("GET", "/v1/models"), "GET", "/v1/models", 401, "missing_api_key", key=None),
    Case(("GET", "/v1/models/{model}"), "GET", "/v1/models/nope", 404, "model_not_found"),
    # What no route answers, and what is refused before any route.
    Case(None, "GET", "/api/nope", 404, "not_found"),
    Case(None, "DELETE", "/api/cost/spend", 405, "method_not_allowed"),
    Case(None, "GET", "/v1/embeddings", 404, "not_found"),
    Case(None, "GET", f"/api/cost/spend?tenant=x{TENANT}", 403, "forbidden"),
    Case(None, "POST", f"/api/chat/{TENANT}", 413, "request_too_large",
         kwargs={"content": b"x" * (JSON_BODY_LIMIT + 1)}),
    Case(None, "POST", f"/api/chat/{TENANT}", 422, "invalid_value",
         kwargs={"content": b"{not json", "headers": {"content-type": "application/json"}}),
    Case(None, "GET", "/dashboard/assets/nope.js", 404, "not_found", key=None),
]  # fmt: skip


@pytest.fixture
async def api(
    broker: NatsBroker, redis_client: aioredis.Redis
) -> AsyncIterator[tuple[httpx2.AsyncClient, set[tuple[str, str]]]]:
    """A client of the whole app, and every /api and /v1 route it has (method, path)."""
    app = create_app(broker, redis_client, Settings(), keys=ApiKeys({KEY: TENANT, OPS: "*"}))
    routes = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if path.startswith(("/api/", "/v1/"))
        for method in operations
    }
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client, routes


async def test_every_error_of_every_route_has_one_shape(
    api: tuple[httpx2.AsyncClient, set[tuple[str, str]]],
) -> None:
    client, routes = api
    assert routes == {case.route for case in CASES if case.route}, "a route without a case"
    for case in CASES:
        headers = {"Authorization": f"Bearer {case.key}"} if case.key else {}
        kwargs = dict(case.kwargs)
        headers |= kwargs.pop("headers", {})
        response = await client.request(case.method, case.path, headers=headers, **kwargs)
        seen = f"{case.method} {case.path[:80]}: {response.status_code} {response.text[:300]}"
        assert response.status_code == case.status, seen
        body = response.json()
        assert set(body) == {"error"} and set(body["error"]) == SHAPE, seen
        error = body["error"]
        assert isinstance(error["message"], str) and error["message"], seen
        assert error["code"] == case.code and error["param"] == case.param, seen
        kind = {401: "authentication_error", 403: "permission_error"}
        assert error["type"] == kind.get(case.status, "invalid_request_error"), seen


async def test_no_route_and_a_bad_value_say_what_is_wrong(
    api: tuple[httpx2.AsyncClient, set[tuple[str, str]]],
) -> None:
    client, _ = api
    auth = {"Authorization": f"Bearer {KEY}"}
    missing = (await client.get("/api/cost/spnd", headers=auth)).json()["error"]
    assert missing["message"] == "no such route: the API's routes are listed at /docs"
    bad_day = (await client.get("/api/cost/spend?start=yesterday", headers=auth)).json()["error"]
    assert bad_day["message"].startswith("invalid request: query.start: ")
    assert "yesterday" not in bad_day["message"]  # never the input itself
