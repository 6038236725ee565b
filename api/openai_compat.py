"""The OpenAI-compatible endpoint: POST /v1/chat/completions and GET /v1/models.

An existing OpenAI client sets ``base_url`` to ``http://<api>/v1`` and its API key to a
FlipSync key; the tenant is the key's. Each call becomes an LlmRequest published on
``llm.request.<tenant>.<agent>`` (bus.llm_client), so the router pipeline answers it with
every lever (pattern, trim, caches, dedup, routing, budgets, packing) and the ledger prices
it. See api.openai_request for the mapping, api.openai_response for the answer's shape and
api.openai_stream for a streamed call relayed as the provider writes it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import nats.errors
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from faststream.nats import NatsBroker

from api.auth import AuthError, caller_of
from api.openai_errors import OpenAIError
from api.openai_request import AUTO_MODEL, ChatCall, named_place, quoted_model, read_call
from api.openai_response import completion_body, flipsync_headers, stream_events
from api.openai_stream import RelayedAnswer
from bus import subjects
from bus.limits import json_body
from bus.llm_client import LlmClient
from bus.settings import Settings
from cost_ledger.catalog import PriceCatalog

MODELS_CREATED = 1_700_000_000
"""The fixed creation time the model list reports."""
TENANT_HEADER = "x-flipsync-tenant"
"""The tenant an operator key calls for (a tenant's key always calls for its own)."""
OFF_LOOP_BYTES = 64 * 1024
"""A body larger than this is parsed and mapped on the endpoint's own threads, not the event
loop: a 4 MB body of a million tiny values took over a second to read, and every other
caller of the API waited for it."""
READ_THREADS = 2
"""Threads reading large bodies: callers sending many large bodies queue behind each other."""


def openai_router(broker: NatsBroker, settings: Settings, catalog: PriceCatalog) -> APIRouter:
    """The /v1 routes on a connected broker."""
    router = APIRouter(prefix="/v1", tags=["openai"])
    client = LlmClient(broker)
    models = model_list(settings, catalog)
    readers = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="openai-body")

    def read(
        raw: bytes, headers: Mapping[str, str], tenant: str, place: tuple[str, str]
    ) -> ChatCall:
        return read_call(
            _json_body(raw), headers, tenant=tenant, settings=settings,
            is_model=catalog.__contains__, place=place,
        )  # fmt: skip

    @router.post("/chat/completions")
    async def chat_completions(request: Request) -> Response:
        """Answer one chat completion through the router pipeline, streamed or not."""
        try:
            tenant = _tenant(request)
            place = _place(request)
            raw = await request.body()
            if len(raw) > OFF_LOOP_BYTES:
                call = await asyncio.get_running_loop().run_in_executor(
                    readers, read, raw, request.headers, tenant, place
                )
            else:
                call = read(raw, request.headers, tenant, place)
            relayed = (
                RelayedAnswer(broker, client, call.request, settings.openai_timeout_s)
                if call.stream
                else None
            )
            try:
                if relayed is None:
                    result = await client.request(call.request, settings.openai_timeout_s)
                elif (whole := await relayed.start()) is not None:
                    result = whole
                else:  # the provider is streaming: write each piece as it comes
                    live = relayed.events(int(time.time()), include_usage=call.include_usage)
                    return StreamingResponse(
                        live, media_type="text/event-stream",
                        headers={"x-flipsync-request-id": call.request.id},
                    )  # fmt: skip
            except nats.errors.MaxPayloadError as exc:
                raise OpenAIError(413, "the request is too large for the message bus") from exc
            except nats.errors.Error as exc:
                raise OpenAIError(503, f"the message bus is unavailable: {exc}",
                                  kind="api_error", code="bus_unavailable") from exc  # fmt: skip
            headers = flipsync_headers(result)
            if not result.ok:
                raise OpenAIError.of_result(result, headers)
        except OpenAIError as exc:
            return exc.response()
        created = int(time.time())
        if call.stream:
            # No call streamed: the whole answer is here, every event in one write.
            events = b"".join(stream_events(result, created, include_usage=call.include_usage))
            return Response(events, media_type="text/event-stream", headers=headers)
        return JSONResponse(completion_body(result, created), headers=headers)

    @router.get("/models")
    async def list_models() -> dict[str, Any]:
        """The models a call may name; flipsync-auto lets routing choose."""
        return {"object": "list", "data": models}

    @router.get("/models/{model}", response_model=None)
    async def get_model(model: str) -> dict[str, Any] | JSONResponse:
        """One model of the list, or OpenAI's 404."""
        for entry in models:
            if entry["id"] == model:
                return entry
        error = OpenAIError(
            404, f"The model '{quoted_model(model)}' does not exist", code="model_not_found"
        )
        return error.response()

    return router


def model_list(settings: Settings, catalog: PriceCatalog) -> list[dict[str, Any]]:
    """flipsync-auto, then every catalog model the configured provider offers."""
    offered = [
        model
        for model in catalog.models()
        if not settings.real_provider or model.provider == "openai"
    ]
    auto = {"id": AUTO_MODEL, "object": "model", "created": MODELS_CREATED, "owned_by": "flipsync"}
    return [auto] + [
        {"id": m.name, "object": "model", "created": MODELS_CREATED, "owned_by": m.provider}
        for m in offered
    ]


def _json_body(raw: bytes) -> Any:
    """The parsed JSON body; OpenAIError (400) if it is not JSON or nested too deeply."""
    try:
        return json_body(raw)
    except ValueError as exc:
        reason = str(exc).replace("nested deeper than", "nested too deeply: deeper than")
        raise OpenAIError(400, f"We could not read your JSON body: {reason}") from None


def _tenant(request: Request) -> str:
    """The caller's tenant; an operator key names one in X-FlipSync-Tenant."""
    caller = caller_of(request)
    if not caller.operator:
        return caller.tenant
    named = request.headers.get(TENANT_HEADER, "")
    if not named:
        raise OpenAIError(400, "an operator key must name a tenant in X-FlipSync-Tenant",
                          param=TENANT_HEADER)  # fmt: skip
    try:
        return subjects.token(named)
    except ValueError as exc:
        raise OpenAIError(400, str(exc), param=TENANT_HEADER) from None


def _place(request: Request) -> tuple[str, str]:
    """The workspace and project of a call: its headers', unless its key is bound to others
    (then OpenAIError 403: the call is refused, never moved)."""
    workspace, project = named_place(request.headers)
    try:
        return caller_of(request).place(workspace, project)
    except AuthError as exc:
        raise OpenAIError(403, exc.reason, kind="permission_error", code=exc.code) from None
