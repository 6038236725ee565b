"""The HTTP entry point: POST /api/products with multipart photos starts a workflow.

- ``POST /api/products`` (multipart form): ``tenant``, ``product_id``, ``title_hint``,
  ``notes``, ``cost_price``, ``priority`` (standard or bulk), ``attributes`` (a JSON object)
  and one or more ``photos`` files. Answers 202 with the workflow id and where to poll.
- ``GET /api/products/{tenant}/{workflow_id}``: 200 with the listing package once the
  workflow finished, 202 while it runs, 404 if no such upload.
- ``POST /api/chat/{tenant}``: a seller-chat question (JSON ChatAsk fields), its answer.

``products_router`` holds the routes; ``create_app`` serves them alone, with authentication
left to what fronts it. The HTTP API service (api.app) includes the router behind API keys and
passes ``tenant_check``, which refuses a form ``tenant`` other than the caller's.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import JSONResponse
from faststream.nats import NatsBroker
from nats.js.errors import NotFoundError

from agents.chat import ask_chat
from agents.photos import PhotoError
from agents.sources import PhotoFile, ProductInput
from agents.stores import StoreOpener
from agents.upload import Uploader
from bus import subjects
from bus.codec import decode
from bus.messages import ChatAsk, ChatTurn, Priority, WorkflowDone
from bus.settings import Settings

MAX_PHOTO_BYTES = 20 * 1024 * 1024
MAX_PHOTOS = 24

TenantCheck = Callable[[Request, str], None]
"""Raises (an HTTP error) unless the request's caller may act for the tenant named."""


def create_app(broker: NatsBroker, settings: Settings) -> FastAPI:
    """The FastAPI app on a connected broker, with the upload and chat routes only."""
    app = FastAPI(title="FlipSync uploads", version="1")
    app.include_router(products_router(broker, settings))
    return app


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
        tenant: Annotated[str, Form()],
        product_id: Annotated[str, Form()],
        photos: Annotated[list[UploadFile], File()],
        title_hint: Annotated[str, Form()] = "",
        notes: Annotated[str, Form()] = "",
        cost_price: Annotated[str, Form()] = "",
        priority: Annotated[Priority, Form()] = Priority.STANDARD,
        attributes: Annotated[str, Form()] = "{}",
    ) -> dict[str, str]:
        """Store the photos and start the product's workflow."""
        if tenant_check is not None:
            tenant_check(request, tenant)
        if len(photos) > MAX_PHOTOS:
            raise HTTPException(413, f"at most {MAX_PHOTOS} photos")
        files = []
        for index, photo in enumerate(photos):
            data = await photo.read(MAX_PHOTO_BYTES + 1)
            if len(data) > MAX_PHOTO_BYTES:
                raise HTTPException(413, f"{photo.filename} is over {MAX_PHOTO_BYTES} bytes")
            files.append(PhotoFile(name=photo.filename or f"photo-{index}", data=data))
        try:
            extra = json.loads(attributes)
            if not isinstance(extra, dict):
                raise ValueError("attributes must be a JSON object")
            product = ProductInput(
                product_id=product_id,
                title_hint=title_hint,
                notes=notes,
                cost_price=cost_price,
                photos=tuple(files),
                attributes={str(k): str(v) for k, v in extra.items()},
            )
            done = await uploader.upload(product, tenant=tenant, priority=priority)
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
        }
        return JSONResponse(body)

    @router.post("/api/chat/{tenant}")
    async def chat(tenant: str, body: dict[str, Any]) -> dict[str, Any]:
        """Answer a seller-chat question about this tenant's own products."""
        history = [
            ChatTurn(role=str(t["role"]), text=str(t["text"])) for t in body.get("history", [])
        ]
        ask = ChatAsk(tenant=tenant, question=str(body.get("question", "")), history=history)
        reply = await ask_chat(broker, ask)
        return {"ok": reply.ok, "answer": reply.answer, "reason": reply.reason,
                "product_ids": reply.product_ids}  # fmt: skip

    return router
