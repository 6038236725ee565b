"""OpenAI's /v1/batches in memory: create, retrieve, cancel and list, with a completion delay.

A batch is finished lazily: the first read after its completion delay answers every line of
its input file (with the same generator and usage counting as /v1/chat/completions) and writes
the output and error files. No background task runs, so a stopped simulator leaves none behind.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from openai.types import Batch
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from simulator.batch_input import ENDPOINT, jsonl, read_lines
from simulator.errors import ApiError, InvalidRequestError
from simulator.files import FileStore
from simulator.state import SimState

LineAnswer = Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]
"""Answers one line's body as /v1/chat/completions would: (HTTP status, response body)."""
WINDOW = "24h"
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
EXPIRY_S = 24 * 3600


@dataclass(kw_only=True)
class SimBatch:
    """One batch and where it stands."""

    id: str
    input_file_id: str
    metadata: dict[str, str]
    lines: list[dict[str, Any]]
    due: float
    """time.monotonic() at which its output is ready."""
    status: str = "validating"
    created_at: int = field(default_factory=lambda: int(time.time()))
    finished_at: int | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    completed: int = 0
    failed: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def object_json(self) -> dict[str, object]:
        """The batch object, as GET /v1/batches/{id} answers it."""
        done = self.finished_at
        batch = Batch.model_validate(
            {
                "id": self.id,
                "object": "batch",
                "endpoint": ENDPOINT,
                "input_file_id": self.input_file_id,
                "completion_window": WINDOW,
                "status": self.status,
                "created_at": self.created_at,
                "expires_at": self.created_at + EXPIRY_S,
                "in_progress_at": self.created_at if self.status != "validating" else None,
                "completed_at": done if self.status == "completed" else None,
                "failed_at": done if self.status == "failed" else None,
                "cancelled_at": done if self.status == "cancelled" else None,
                "output_file_id": self.output_file_id,
                "error_file_id": self.error_file_id,
                "errors": {"object": "list", "data": self.errors} if self.errors else None,
                "request_counts": {
                    "total": len(self.lines),
                    "completed": self.completed,
                    "failed": self.failed,
                },
                "metadata": self.metadata or None,
            }
        )
        return batch.model_dump(exclude_none=True)


class BatchNotFoundError(ApiError):
    """404 for a batch id the simulator does not have."""

    status = 404
    type = "invalid_request_error"

    def __init__(self, batch_id: str) -> None:
        super().__init__(f"No batch found with id '{batch_id}'.", param="batch_id")
        self.batch_id = batch_id


class BatchStore:
    """The simulator's batches; each is answered line by line once its delay has passed."""

    def __init__(self, files: FileStore, answer: LineAnswer, sim: SimState) -> None:
        self._files = files
        self._answer = answer
        self._sim = sim
        self._batches: dict[str, SimBatch] = {}

    def create(self, body: dict[str, Any]) -> SimBatch:
        """A new batch over an uploaded JSONL file; raises ApiError for a bad request."""
        if body.get("endpoint") != ENDPOINT:
            raise InvalidRequestError(f"Only endpoint {ENDPOINT} is simulated.", param="endpoint")
        if body.get("completion_window") != WINDOW:
            raise InvalidRequestError("completion_window must be '24h'.", param="completion_window")
        file_id = body.get("input_file_id")
        stored = self._files.get(file_id) if isinstance(file_id, str) else None
        if stored is None or stored.purpose != "batch":
            message = f"Invalid input_file_id {file_id!r}: no uploaded file with purpose 'batch'."
            raise InvalidRequestError(message, param="input_file_id")
        metadata = body.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise InvalidRequestError("metadata must be an object.", param="metadata")
        lines, errors = read_lines(stored.data)
        batch = SimBatch(
            id=f"batch_sim{uuid.uuid4().hex[:24]}",
            input_file_id=stored.id,
            metadata={str(k): str(v) for k, v in metadata.items()},
            lines=lines,
            due=time.monotonic() + self._sim.config.batch_completion_s,
            errors=errors,
        )
        if errors:  # OpenAI fails the whole batch when validation finds a bad line
            batch.status, batch.finished_at = "failed", batch.created_at
        self._batches[batch.id] = batch
        self._sim.stats.batches += 1
        return batch

    def get(self, batch_id: str) -> SimBatch:
        """The batch, finished first if its delay has passed; raises BatchNotFoundError."""
        batch = self._batches.get(batch_id)
        if batch is None:
            raise BatchNotFoundError(batch_id)
        if batch.status in ("validating", "in_progress"):
            if time.monotonic() >= batch.due:
                self._finish(batch)
            else:
                batch.status = "in_progress"
        return batch

    def cancel(self, batch_id: str) -> SimBatch:
        """Cancel a batch that has not finished; raises ApiError otherwise."""
        batch = self.get(batch_id)
        if batch.status in TERMINAL:
            raise InvalidRequestError(f"Cannot cancel a batch with status '{batch.status}'.")
        batch.status, batch.finished_at = "cancelled", int(time.time())
        return batch

    def list(self, limit: int, after: str | None) -> dict[str, object]:
        """Batches newest first, OpenAI's cursor page."""
        ordered = list(reversed(self._batches))
        if after in self._batches:
            ordered = ordered[ordered.index(after) + 1 :]
        page = [self.get(batch_id) for batch_id in ordered[:limit]]
        return {
            "object": "list",
            "data": [batch.object_json() for batch in page],
            "first_id": page[0].id if page else None,
            "last_id": page[-1].id if page else None,
            "has_more": len(ordered) > limit,
        }

    def _finish(self, batch: SimBatch) -> None:
        out: list[str] = []
        err: list[str] = []
        for line in batch.lines:
            status, body = self._answer(line["body"])
            record: dict[str, Any] = {
                "id": f"batch_req_{uuid.uuid4().hex[:24]}",
                "custom_id": line["custom_id"],
                "response": {
                    "status_code": status,
                    "request_id": uuid.uuid4().hex,
                    "body": body,
                },
                "error": None,
            }
            (out if status == 200 else err).append(json.dumps(record))
        batch.completed, batch.failed = len(out), len(err)
        if out:
            name = f"{batch.id}_output.jsonl"
            batch.output_file_id = self._files.add(name, "batch_output", jsonl(out)).id
        if err:
            name = f"{batch.id}_error.jsonl"
            batch.error_file_id = self._files.add(name, "batch_output", jsonl(err)).id
        batch.status, batch.finished_at = "completed", int(time.time())


def batch_routes(store: BatchStore) -> list[Route]:
    """The /v1/batches routes over store."""

    async def create(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
            if not isinstance(body, dict):
                raise InvalidRequestError("The request body must be a JSON object.")
            batch = store.create(body)
        except ValueError:
            error = InvalidRequestError("We could not parse the JSON body of your request.")
            return JSONResponse(error.body(), status_code=error.status)
        except ApiError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)
        return JSONResponse(batch.object_json())

    async def retrieve(request: Request) -> Response:
        try:
            batch = store.get(request.path_params["batch_id"])
        except ApiError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)
        return JSONResponse(batch.object_json())

    async def cancel(request: Request) -> Response:
        try:
            batch = store.cancel(request.path_params["batch_id"])
        except ApiError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)
        return JSONResponse(batch.object_json())

    async def list_batches(request: Request) -> Response:
        try:
            limit = max(1, min(int(request.query_params.get("limit", "20")), 100))
        except ValueError:
            error = InvalidRequestError("limit must be an integer.", param="limit")
            return JSONResponse(error.body(), status_code=error.status)
        return JSONResponse(store.list(limit, request.query_params.get("after")))

    return [
        Route("/v1/batches", create, methods=["POST"]),
        Route("/v1/batches", list_batches, methods=["GET"]),
        Route("/v1/batches/{batch_id}", retrieve, methods=["GET"]),
        Route("/v1/batches/{batch_id}/cancel", cancel, methods=["POST"]),
    ]
