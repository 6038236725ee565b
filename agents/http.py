"""The HTTP entry point: POST /api/products with multipart photos starts a workflow.

- ``POST /api/products`` (multipart form): ``tenant``, ``product_id``, ``title_hint``,
  ``notes``, ``cost_price``, ``priority`` (standard or bulk), ``attributes`` (a JSON object)
  and one or more ``photos`` files. Answers 202 with the workflow id and where to poll.
- ``GET /api/products/{tenant}/{workflow_id}``: 200 with the listing package once the
  workflow finished, 202 while it runs, 404 if no such upload.
- ``POST /api/chat/{tenant}``: a seller-chat question (JSON ChatAsk fields), its answer.

Authentication is left to what fronts it (a gateway that sets the tenant).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, HTTPException, UploadFile
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


def create_app(broker: NatsBroker, settings: Settings) -> FastAPI:
    """The FastAPI app on a connected broker."""
    app = FastAPI(title="FlipSync uploads", version="1")
    uploader = Uploader(broker, settings)
    stores = StoreOpener(settings)

    @app.post("/api/products", status_code=202)
    async def upload(
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

    @app.get("/api/products/{tenant}/{workflow_id}")
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

    @app.post("/api/chat/{tenant}")
    async def chat(tenant: str, body: dict[str, Any]) -> dict[str, Any]:
        """Answer a seller-chat question about this tenant's own products."""
        history = [
            ChatTurn(role=str(t["role"]), text=str(t["text"])) for t in body.get("history", [])
        ]
        ask = ChatAsk(tenant=tenant, question=str(body.get("question", "")), history=history)
        reply = await ask_chat(broker, ask)
        return {"ok": reply.ok, "answer": reply.answer, "reason": reply.reason,
                "product_ids": reply.product_ids}  # fmt: skip

    return app
