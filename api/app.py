"""The HTTP API: one FastAPI app with every route FlipSync serves over HTTP.

- /api/products, /api/products/{tenant}/{id}, /api/chat/{tenant}: uploads and seller chat
  (agents.http);
- /api/cost/*: spend, budgets, forecast, anomalies, recommendations (cost_ledger.http);
- /dashboard: the operator page (api.dashboard); the page holds no data, its /api/cost/*
  fetches carry the key, so the page and its assets need none;
- /v1/chat/completions, /v1/models: the OpenAI-compatible endpoint (api.openai_compat);
- /asyncapi.json, /asyncapi: the AsyncAPI document of every NATS subject (api.asyncapi);
- /healthz: whether NATS and Redis answer.

/v1/* and /api/* need "Authorization: Bearer <key>" (api.auth); the key decides the tenant.
Every error is answered in one shape, OpenAI's {"error": {message, type, param, code}}
(api.errors).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from faststream.exceptions import IncorrectState
from faststream.nats import NatsBroker
from redis.exceptions import RedisError

from agents.http import MAX_UPLOAD_BYTES, products_router
from api.asyncapi import asyncapi_router
from api.auth import ApiKeyMiddleware, ApiKeys, AuthError, form_tenant_check, path_tenant_guard
from api.dashboard import DASHBOARD_PATH, dashboard_router
from api.errors import install_error_handlers
from api.limits import JSON_BODY_LIMIT, BodyLimit
from api.openai_compat import openai_router
from bus.settings import Settings
from cost_ledger.catalog import PriceCatalog

log = logging.getLogger(__name__)
HEALTH_TIMEOUT_S = 1.0
"""How long /healthz waits for Redis (whose client otherwise retries for seconds)."""


def create_app(
    broker: NatsBroker,
    redis: aioredis.Redis,
    settings: Settings,
    *,
    keys: ApiKeys | None = None,
    catalog: PriceCatalog | None = None,
) -> FastAPI:
    """The API app on a connected broker and Redis; keys default to the settings' keys."""
    keys = keys if keys is not None else ApiKeys.from_settings(settings)
    if not len(keys):
        log.warning("no API keys configured (FLIPSYNC_API_KEYS): /v1 and /api refuse every call")
    catalog = catalog or PriceCatalog.load()
    app = FastAPI(
        title="FlipSync",
        version="1",
        description=__doc__,
        dependencies=[Depends(path_tenant_guard)],
    )
    app.add_middleware(ApiKeyMiddleware, keys=keys)
    app.add_middleware(BodyLimit, limit_for=_body_limit)  # outside the key check: 413 first
    install_error_handlers(app)
    app.add_exception_handler(AuthError, _auth_error)
    app.include_router(products_router(broker, settings, tenant_check=form_tenant_check))
    cost = _optional_router("cost_ledger.http", "cost_api", redis, settings, catalog=catalog)
    if cost is not None:
        app.include_router(cost)
    app.include_router(dashboard_router())
    app.include_router(openai_router(broker, settings, catalog))
    app.include_router(asyncapi_router(settings))
    app.include_router(_health_router(broker, redis))
    return app


def _body_limit(path: str, method: str) -> int:
    """The largest body a route takes: an upload's photos, or one JSON document."""
    return MAX_UPLOAD_BYTES if path == "/api/products" else JSON_BODY_LIMIT


def _optional_router(module: str, factory: str, *args: Any, **kwargs: Any) -> APIRouter | None:
    """A router another package builds, if that package can be imported yet.

    WIRING: the cost API (cost_ledger/http.py, ``cost_api(redis, settings)``) is written
    alongside this app; until all of its modules exist it is left out with a warning.
    """
    try:
        build: Callable[..., APIRouter] = getattr(importlib.import_module(module), factory)
    except (ImportError, AttributeError) as exc:
        log.warning("%s.%s is not available, its routes are not served: %s", module, factory, exc)
        return None
    return build(*args, **kwargs)


async def _auth_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AuthError)
    return exc.response()


def _health_router(broker: NatsBroker, redis: aioredis.Redis) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz")
    async def healthz() -> JSONResponse:
        """200 when NATS and Redis answer, else 503 saying which does not."""
        nats_ok = False
        with contextlib.suppress(IncorrectState):  # never connected
            nats_ok = broker.connection.is_connected
        redis_ok = False
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            async with asyncio.timeout(HEALTH_TIMEOUT_S):
                redis_ok = bool(await redis.ping())
        ok = nats_ok and redis_ok
        body = {"status": "ok" if ok else "unavailable", "nats": nats_ok, "redis": redis_ok}
        return JSONResponse(body, status_code=200 if ok else 503)

    @router.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        """The dashboard."""
        return RedirectResponse(DASHBOARD_PATH)

    return router
