"""OpenAI's /v1/fine_tuning/jobs in memory: create, retrieve, list, events and cancel, with a
configurable outcome (succeeded or failed) and delay; a succeeded job's model is then served
on /v1/chat/completions like any other.

Like batches, a job moves on lazily when it is read: no background task runs. The outcome is
set for all jobs on PUT /_sim/fine_tuning ({"outcome": "failed", "delay_s": 0.5}) or for one
job by its metadata {"sim_outcome": "failed"}.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from openai.types.fine_tuning import FineTuningJob
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from simulator.errors import InvalidRequestError
from simulator.files import FileStore

MIN_EXAMPLES = 10
"""OpenAI refuses a training file of fewer examples."""
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
ORGANIZATION = "org-simulated"


class FineTuneSettings(BaseModel):
    """How the simulator's fine-tuning jobs end, and how long they take."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    outcome: Literal["succeeded", "failed"] = "succeeded"
    delay_s: float = Field(default=0.2, ge=0.0)
    """From creation to the job's end."""


@dataclass(kw_only=True)
class SimJob:
    """One fine-tuning job and where it stands."""

    id: str
    model: str
    training_file: str
    validation_file: str | None
    suffix: str
    metadata: dict[str, str]
    outcome: str
    due: float
    """time.monotonic() at which it ends."""
    trained_tokens: int
    status: str = "validating_files"
    created_at: int = field(default_factory=lambda: int(time.time()))
    finished_at: int | None = None
    fine_tuned_model: str | None = None
    error: dict[str, Any] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)

    def object_json(self) -> dict[str, Any]:
        """The job object, as GET /v1/fine_tuning/jobs/{id} answers it."""
        job = FineTuningJob.model_validate(
            {
                "id": self.id,
                "object": "fine_tuning.job",
                "created_at": self.created_at,
                "error": self.error,
                "fine_tuned_model": self.fine_tuned_model,
                "finished_at": self.finished_at,
                "hyperparameters": {"n_epochs": 3, "batch_size": 1, "learning_rate_multiplier": 2},
                "model": self.model,
                "organization_id": ORGANIZATION,
                "result_files": [],
                "seed": 0,
                "status": self.status,
                "trained_tokens": self.trained_tokens if self.status == "succeeded" else None,
                "training_file": self.training_file,
                "validation_file": self.validation_file,
                "metadata": self.metadata or None,
            }
        )
        return job.model_dump(mode="json")

    def event(self, level: str, message: str) -> None:
        """Add one job event, newest last."""
        self.events.append(
            {
                "id": f"ftevent-sim{uuid.uuid4().hex[:20]}",
                "object": "fine_tuning.job.event",
                "created_at": int(time.time()),
                "level": level,
                "message": message,
                "type": "message",
            }
        )


class FineTuneStore:
    """Jobs by id, and the fine-tuned models they produced."""

    def __init__(self, files: FileStore, settings: FineTuneSettings | None = None) -> None:
        self.files = files
        self.settings = settings or FineTuneSettings()
        self._jobs: dict[str, SimJob] = {}
        self._models: set[str] = set()

    def serves(self, model: str) -> bool:
        """Whether model is a fine-tuned model of a job that succeeded."""
        return model in self._models

    def create(self, body: dict[str, Any], offered: frozenset[str]) -> SimJob:
        """Start a job; raises InvalidRequestError for a bad model or file."""
        model, training = body.get("model"), body.get("training_file")
        if not isinstance(model, str) or model not in offered:
            raise InvalidRequestError(
                f"Model {model!r} is not available for fine-tuning.", param="model"
            )
        if not isinstance(training, str):
            raise InvalidRequestError(
                "Missing required parameter: 'training_file'.", param="training_file"
            )
        examples, tokens = self._examples(training, "training_file", MIN_EXAMPLES)
        validation = body.get("validation_file")
        if validation is not None:
            self._examples(str(validation), "validation_file", 1)
        metadata = body.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise InvalidRequestError("Invalid 'metadata': expected an object.", param="metadata")
        outcome = str(metadata.get("sim_outcome", self.settings.outcome))
        job = SimJob(
            id=f"ftjob-sim{uuid.uuid4().hex[:20]}",
            model=model,
            training_file=training,
            validation_file=None if validation is None else str(validation),
            suffix=str(body.get("suffix") or "flipsync")[:40],
            metadata={str(k): str(v) for k, v in metadata.items()},
            outcome=outcome,
            due=time.monotonic() + self.settings.delay_s,
            trained_tokens=tokens * 3,
        )
        job.event("info", f"Validated training file: {examples} examples")
        self._jobs[job.id] = job
        return job

    def get(self, job_id: str) -> SimJob | None:
        """The job, moved on to where its clock says it is."""
        job = self._jobs.get(job_id)
        if job is not None:
            self._advance(job)
        return job

    def all(self) -> list[SimJob]:
        """Every job, newest first."""
        return [self._advance(job) for job in reversed(self._jobs.values())]

    def cancel(self, job_id: str) -> SimJob | None:
        """Cancel a job that has not ended."""
        job = self.get(job_id)
        if job is not None and job.status not in TERMINAL:
            job.status, job.finished_at = "cancelled", int(time.time())
            job.event("info", "Job cancelled")
        return job

    def _advance(self, job: SimJob) -> SimJob:
        if job.status in TERMINAL:
            return job
        if time.monotonic() < job.due:
            if job.status == "validating_files":
                job.status = "running"
                job.event("info", "Fine-tuning job started")
            return job
        job.finished_at = int(time.time())
        if job.outcome == "failed":
            job.status = "failed"
            job.error = {
                "code": "invalid_training_file",
                "message": "The job failed (simulated outcome).",
                "param": "training_file",
            }
            job.event("error", "The job failed (simulated outcome).")
            return job
        job.status = "succeeded"
        job.fine_tuned_model = f"ft:{job.model}:flipsync:{job.suffix}:{job.id[-8:]}"
        self._models.add(job.fine_tuned_model)
        job.event("info", f"New fine-tuned model created: {job.fine_tuned_model}")
        return job

    def _examples(self, file_id: str, param: str, minimum: int) -> tuple[int, int]:
        """(examples, rough tokens) of a fine-tune file; raises InvalidRequestError."""
        stored = self.files.get(file_id)
        if stored is None:
            raise InvalidRequestError(f"File {file_id} does not exist.", param=param)
        if stored.purpose != "fine-tune":
            raise InvalidRequestError(
                f"File {file_id} has purpose {stored.purpose!r}.", param=param
            )
        count = 0
        for number, line in enumerate(stored.data.decode(errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                messages = json.loads(line)["messages"]
            except (ValueError, KeyError, TypeError):
                raise InvalidRequestError(
                    f"Line {number} of {file_id} is not a JSON object with 'messages'.",
                    param=param,
                ) from None
            if not isinstance(messages, list) or not any(
                isinstance(m, dict) and m.get("role") == "assistant" for m in messages
            ):
                raise InvalidRequestError(
                    f"Line {number} of {file_id} has no assistant message to learn from.",
                    param=param,
                )
            count += 1
        if count < minimum:
            raise InvalidRequestError(
                f"File {file_id} has {count} examples; at least {minimum} are required.",
                param=param,
            )
        return count, len(stored.data) // 4


def fine_tuning_routes(store: FineTuneStore, offered: frozenset[str]) -> list[Route]:
    """The /v1/fine_tuning/jobs routes over store, and /_sim/fine_tuning to set outcomes."""

    async def create(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
            if not isinstance(body, dict):
                raise InvalidRequestError("The body must be a JSON object.")
            job = store.create(body, offered)
        except json.JSONDecodeError:
            error = InvalidRequestError("The body is not valid JSON.")
            return JSONResponse(error.body(), status_code=error.status)
        except InvalidRequestError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)
        return JSONResponse(job.object_json())

    async def retrieve(request: Request) -> Response:
        job = store.get(request.path_params["job_id"])
        return _found(job, request) if job is None else JSONResponse(job.object_json())

    async def cancel(request: Request) -> Response:
        job = store.cancel(request.path_params["job_id"])
        return _found(job, request) if job is None else JSONResponse(job.object_json())

    async def events(request: Request) -> Response:
        job = store.get(request.path_params["job_id"])
        if job is None:
            return _found(job, request)
        data = list(reversed(job.events))
        return JSONResponse({"object": "list", "data": data, "has_more": False})

    async def listing(request: Request) -> Response:
        data = [job.object_json() for job in store.all()]
        return JSONResponse({"object": "list", "data": data, "has_more": False})

    async def settings(request: Request) -> Response:
        if request.method == "PUT":
            try:
                store.settings = FineTuneSettings.model_validate_json(await request.body())
            except ValidationError as exc:
                error = InvalidRequestError(f"Invalid fine-tuning settings: {exc}")
                return JSONResponse(error.body(), status_code=error.status)
        return JSONResponse(store.settings.model_dump())

    return [
        Route("/v1/fine_tuning/jobs", create, methods=["POST"]),
        Route("/v1/fine_tuning/jobs", listing, methods=["GET"]),
        Route("/v1/fine_tuning/jobs/{job_id}", retrieve, methods=["GET"]),
        Route("/v1/fine_tuning/jobs/{job_id}/cancel", cancel, methods=["POST"]),
        Route("/v1/fine_tuning/jobs/{job_id}/events", events, methods=["GET"]),
        Route("/_sim/fine_tuning", settings, methods=["GET", "PUT"]),
    ]


def _found(job: SimJob | None, request: Request) -> Response:
    error = InvalidRequestError(f"No such fine-tuning job: {request.path_params['job_id']}")
    return JSONResponse(error.body(), status_code=404)
