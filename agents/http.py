"""The HTTP entry point: POST /api/products with multipart photos starts a workflow.

- ``POST /api/products?tenant=<tenant>`` (multipart form): ``product_id``, ``title_hint``,
  ``notes``, ``cost_price``, ``priority`` (standard or bulk), ``attributes`` (a JSON object)
  and one or more ``photos`` files. Answers 202 with the workflow id and where to poll. The
  tenant is a query parameter so it is checked before the body (up to 24 x 20 MB) is read:
  the API key middleware (api.auth) refuses another tenant's, and fills in the key's own when
  it is absent. A form ``tenant`` field is still read, and must then be the same tenant.
- ``GET /api/products/{tenant}/{workflow_id}``: 200 with the listing package once the
  workflow finished, 202 while it runs, 404 if no such upload.
- ``POST /api/chat/{tenant}``: a seller-chat question (JSON ChatAsk fields), its answer.

``products_router`` holds the routes; the HTTP API service (api.app) includes it behind API
keys and passes ``tenant_check``, which refuses a tenant other than the caller's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

import nats.errors
from fastapi import APIRouter, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import JSONResponse
from faststream.nats import NatsBroker
from nats.js.errors import NotFoundError
from pydantic import BaseModel, Field

from agents.chat import ask_chat
from agents.limits import MAX_PHOTO_BYTES, MAX_PHOTOS, attributes_type_problem
from agents.photos import PhotoError, PhotoTooLargeError
from agents.product_input import PhotoFile, ProductInput
from agents.stores import StoreOpener
from agents.upload import Uploader
from bus import subjects
from bus.codec import decode
from bus.limits import json_body
from bus.messages import ChatAsk, ChatTurn, Priority, WorkflowDone
from bus.settings import Settings

MAX_UPLOAD_BYTES = MAX_PHOTOS * MAX_PHOTO_BYTES + 1024 * 1024
"""The largest upload body: every photo at its limit, plus the form's fields."""
MAX_ATTRIBUTES = 200
MAX_CHAT_TEXT = 8000
MAX_CHAT_TURNS = 50

TenantCheck = Callable[[Request, str], None]
"""Raises (an HTTP error) unless the request's caller may act for the tenant named."""


def products_router(
    broker: NatsBroker, settings: Settings, tenant_check: TenantCheck | None = None
) -> APIRouter:
    """The upload, status and chat routes on a connected broker."""
    router = APIRouter(tags=["products"])
    uploader = Uploader(broker, settings)
    stores = StoreOpener(settings)

    @router.post("/api/products", status_code=202)
    async def upload(
        request: Request,
        product_id: Annotated[str, Form()],
        photos: Annotated[list[UploadFile], File()],
        tenant: Annotated[str, Query()] = "",
        form_tenant: Annotated[str, Form(alias="tenant")] = "",
        title_hint: Annotated[str, Form()] = "",
        notes: Annotated[str, Form()] = "",
        cost_price: Annotated[str, Form()] = "",
        priority: Annotated[Priority, Form()] = Priority.STANDARD,
        attributes: Annotated[str, Form()] = "{}",
    ) -> dict[str, str]:
        """Store the photos and start the product's workflow."""
        if tenant_check is not None:
            for named in {tenant, form_tenant} - {""}:
                tenant_check(request, named)
        tenant = _upload_tenant(tenant, form_tenant)
        if len(photos) > MAX_PHOTOS:
            raise HTTPException(413, f"at most {MAX_PHOTOS} photos")
        files = []
        for index, photo in enumerate(photos):
            data = await photo.read(MAX_PHOTO_BYTES + 1)
            if len(data) > MAX_PHOTO_BYTES:
                raise HTTPException(413, f"{photo.filename} is over {MAX_PHOTO_BYTES} bytes")
            files.append(PhotoFile(name=photo.filename or f"photo-{index}", data=data))
        extra = _attributes(attributes)
        try:
            product = ProductInput(
                product_id=product_id,
                title_hint=title_hint,
                notes=notes,
                cost_price=cost_price,
                photos=tuple(files),
                attributes=extra,
            )
            done = await uploader.upload(product, tenant=tenant, priority=priority)
        except PhotoTooLargeError as exc:
            raise HTTPException(413, str(exc)) from exc
        except (PhotoError, ValueError) as exc:
            raise HTTPException(422, str(exc)) from exc
        return {
            "workflow_id": done.workflow_id,
            "status_url": f"/api/products/{tenant}/{done.workflow_id}",
        }

    @router.get("/api/products/{tenant}/{workflow_id}")
    async def status(tenant: str, workflow_id: str) -> JSONResponse:
        """The listing package when the workflow finished; 202 while it runs."""
        try:
            subject = subjects.workflow_done(tenant, workflow_id)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc
        js = broker.connection.jetstream()
        try:
            raw = await js.get_last_msg(subjects.STREAM_WORKFLOW, subject, direct=True)
        except NotFoundError:
            upload = await (await stores(js)).checkpoints.upload(tenant, workflow_id)
            if upload is None:
                raise HTTPException(404, "no such upload") from None
            return JSONResponse({"status": "running"}, status_code=202)
        done = decode(raw.data or b"", WorkflowDone)
        body: dict[str, Any] = {
            "status": "done" if done.ok else "failed",
            "reason": done.reason,
            "missing": done.missing,
            "cost_micro_usd": done.cost_micro_usd,
            "baseline_micro_usd": done.baseline_micro_usd,
            "listing": done.listing,
            "simulated": done.simulated,
        }
        return JSONResponse(body)

    @router.post("/api/chat/{tenant}")
    async def chat(tenant: str, body: ChatBody) -> dict[str, Any]:
        """Answer a seller-chat question about this tenant's own products."""
        try:
            subjects.token(tenant)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc
        history = [ChatTurn(role=t.role, text=t.text) for t in body.history]
        ask = ChatAsk(tenant=tenant, question=body.question, history=history)
        try:
            reply = await ask_chat(broker, ask)
        except (nats.errors.NoRespondersError, nats.errors.TimeoutError) as exc:
            raise HTTPException(503, "the seller chat service is not answering") from exc
        return {"ok": reply.ok, "answer": reply.answer, "reason": reply.reason,
                "product_ids": reply.product_ids}  # fmt: skip

    return router


class ChatTurnBody(BaseModel):
    """One earlier turn of the conversation."""

    role: Literal["user", "assistant"]
    text: str = Field(max_length=MAX_CHAT_TEXT)


class ChatBody(BaseModel):
    """A seller-chat question and the conversation so far."""

    question: str = Field(default="", max_length=MAX_CHAT_TEXT)
    history: list[ChatTurnBody] = Field(default=[], max_length=MAX_CHAT_TURNS)


def _attributes(text: str) -> dict[str, str]:
    """The form's attributes: a flat JSON object of at most MAX_ATTRIBUTES texts or numbers."""
    try:
        value = json_body(text.encode("utf-8", "surrogatepass"))
    except ValueError as exc:
        raise HTTPException(400, f"attributes: {exc}") from None
    if not isinstance(value, dict) or len(value) > MAX_ATTRIBUTES:
        raise HTTPException(400, f"attributes must be a JSON object of at most {MAX_ATTRIBUTES}")
    if problem := attributes_type_problem(value):  # null was uploaded as the text "None"
        raise HTTPException(400, f"attributes: {problem}")
    return {str(k): str(v) for k, v in value.items()}


def _upload_tenant(query: str, form: str) -> str:
    """The tenant of an upload: the query's (checked before the body was read), or the form's
    when the query names none (an operator key); both named must agree."""
    if query and form and query != form:
        raise HTTPException(422, f"form tenant {form!r} is not the query's tenant {query!r}")
    if not (query or form):
        raise HTTPException(422, "name the tenant: POST /api/products?tenant=<tenant>")
    return query or form
