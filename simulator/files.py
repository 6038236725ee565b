"""OpenAI's /v1/files in memory: upload (multipart), retrieve, and content, for the Batch API."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from openai.types import FileObject
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from simulator.errors import InvalidRequestError

PURPOSES = frozenset({"batch", "user_data", "fine-tune", "assistants", "vision"})
"""Purposes an upload may name; batch outputs are made by the simulator itself."""
FILE_TTL_S = 30 * 24 * 3600
"""OpenAI keeps batch files 30 days; reported as expires_at."""


@dataclass(frozen=True, kw_only=True)
class StoredFile:
    """One uploaded or generated file."""

    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int = field(default_factory=lambda: int(time.time()))

    def object_json(self) -> dict[str, object]:
        """The file object, as GET /v1/files/{id} answers it."""
        return FileObject(
            id=self.id,
            object="file",
            bytes=len(self.data),
            created_at=self.created_at,
            expires_at=self.created_at + FILE_TTL_S,
            filename=self.filename,
            purpose=self.purpose,  # checked against PURPOSES on upload
            status="processed",
        ).model_dump(exclude_unset=True)


class FileStore:
    """Files by id, kept for the life of the simulator."""

    def __init__(self) -> None:
        self._files: dict[str, StoredFile] = {}

    def add(self, filename: str, purpose: str, data: bytes) -> StoredFile:
        """Store data under a new file id."""
        stored = StoredFile(
            id=f"file-sim{uuid.uuid4().hex[:24]}", filename=filename, purpose=purpose, data=data
        )
        self._files[stored.id] = stored
        return stored

    def get(self, file_id: str) -> StoredFile | None:
        """The file with that id, if any."""
        return self._files.get(file_id)


class FileNotFoundApiError(InvalidRequestError):
    """404 for a file id the simulator does not have, in OpenAI's words."""

    status = 404

    def __init__(self, file_id: str) -> None:
        super().__init__(f"No such File object: {file_id}", param="id")
        self.file_id = file_id


def file_routes(store: FileStore) -> list[Route]:
    """The /v1/files routes over store."""

    async def upload(request: Request) -> Response:
        # A body that is not multipart is Starlette's HTTPException 400, answered by the app.
        async with request.form() as form:
            upload_file, purpose = form.get("file"), form.get("purpose")
            if not isinstance(upload_file, UploadFile):
                error = InvalidRequestError("Missing required parameter: 'file'.", param="file")
                return JSONResponse(error.body(), status_code=error.status)
            if not isinstance(purpose, str) or purpose not in PURPOSES:
                error = InvalidRequestError(f"Invalid 'purpose': {purpose!r}.", param="purpose")
                return JSONResponse(error.body(), status_code=error.status)
            data = await upload_file.read()
            stored = store.add(upload_file.filename or "upload", purpose, data)
        return JSONResponse(stored.object_json())

    async def retrieve(request: Request) -> Response:
        stored = _lookup(store, request)
        if isinstance(stored, Response):
            return stored
        return JSONResponse(stored.object_json())

    async def content(request: Request) -> Response:
        stored = _lookup(store, request)
        if isinstance(stored, Response):
            return stored
        return Response(stored.data, media_type="application/octet-stream")

    return [
        Route("/v1/files", upload, methods=["POST"]),
        Route("/v1/files/{file_id}", retrieve, methods=["GET"]),
        Route("/v1/files/{file_id}/content", content, methods=["GET"]),
    ]


def _lookup(store: FileStore, request: Request) -> StoredFile | Response:
    file_id = request.path_params["file_id"]
    stored = store.get(file_id)
    if stored is None:
        error = FileNotFoundApiError(file_id)
        return JSONResponse(error.body(), status_code=error.status)
    return stored
