"""The provider's Batch API through the openai client: JSONL in, a batch, JSONL out.

Each operation opens a short-lived client: a batch is a handful of calls spread over minutes
or hours, so no connection pool is kept (and none is left open at shutdown).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
import openai
from openai.types.chat import ChatCompletion

from bus.messages import LlmRequest, Usage
from router.batching.errors import BatchApiError
from router.providers.config import ProviderConfig
from router.providers.messages import openai_messages, response_format
from router.providers.usage import usage_from

ENDPOINT: Literal["/v1/chat/completions"] = "/v1/chat/completions"
WINDOW: Literal["24h"] = "24h"
WINDOW_METADATA = "flipsync_window"
"""Metadata key naming the window a batch was made from, so a replica can find it again."""
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
FIND_LIMIT = 100
"""How many of the newest batches are searched for a window's batch."""


@dataclass(frozen=True, kw_only=True)
class BatchState:
    """Where a batch stands."""

    id: str
    status: str
    output_file_id: str | None = None
    error_file_id: str | None = None

    @property
    def done(self) -> bool:
        """Whether the batch reached a terminal status."""
        return self.status in TERMINAL


@dataclass(frozen=True, kw_only=True)
class LineResult:
    """One line of a batch's output: the answer, or why there is none."""

    custom_id: str
    content: str = ""
    model: str = ""
    usage: Usage | None = None
    problem: str = ""


def batch_line(request: LlmRequest, model: str, max_tokens_param: str) -> dict[str, Any]:
    """One input line: the chat completion of request, with custom_id the request id."""
    body: dict[str, Any] = {
        "model": model,
        "messages": openai_messages(request.messages),
        "temperature": request.temperature,
        max_tokens_param: request.max_output_tokens,
    }
    fmt = response_format(request)
    if fmt is not None:
        body["response_format"] = fmt
    return {"custom_id": request.id, "method": "POST", "url": ENDPOINT, "body": body}


def parse_output(data: bytes) -> dict[str, LineResult]:
    """The lines of an output or error file, by custom_id."""
    results: dict[str, LineResult] = {}
    for raw in data.splitlines():
        if not raw.strip():
            continue
        try:
            line = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            continue  # a line we cannot read has no custom_id to give it to
        if isinstance(line, dict) and isinstance(line.get("custom_id"), str):
            results[line["custom_id"]] = _line(line)
    return results


def _line(line: dict[str, Any]) -> LineResult:
    custom_id = line["custom_id"]
    response = line.get("response") or {}
    error = line.get("error")
    status = response.get("status_code") if isinstance(response, dict) else None
    if error or status != 200:
        message = error.get("message") if isinstance(error, dict) else None
        if message is None and isinstance(response, dict):
            body = response.get("body")
            inner = body.get("error") if isinstance(body, dict) else None
            message = inner.get("message") if isinstance(inner, dict) else None
        return LineResult(custom_id=custom_id, problem=f"batch line failed ({status}): {message}")
    try:
        completion = ChatCompletion.model_validate(response.get("body"))
    except ValueError as exc:
        return LineResult(custom_id=custom_id, problem=f"batch line unreadable: {exc}")
    if not completion.choices:
        return LineResult(custom_id=custom_id, problem="batch line has no choices")
    usage = usage_from(completion.usage.model_dump() if completion.usage is not None else None)
    return LineResult(
        custom_id=custom_id,
        content=completion.choices[0].message.content or "",
        model=completion.model,
        usage=usage,
    )


class BatchApiClient:
    """Upload, create, poll and fetch batches at one provider."""

    def __init__(self, config: ProviderConfig, *, timeout_s: float, max_retries: int) -> None:
        self.config = config
        self._timeout_s = timeout_s
        self._max_retries = max_retries

    @contextlib.asynccontextmanager
    async def _client(self, operation: str) -> AsyncIterator[openai.AsyncOpenAI]:
        client = openai.AsyncOpenAI(
            base_url=self.config.base_url,
            api_key=self.config.api_key.get_secret_value(),
            timeout=self._timeout_s,
            max_retries=self._max_retries,
        )
        try:
            async with client:
                yield client
        except openai.APIStatusError as exc:
            raise BatchApiError(self.config.name, operation, f"HTTP {exc.status_code}") from exc
        except openai.APIError as exc:
            raise BatchApiError(self.config.name, operation, type(exc).__name__) from exc

    async def create(self, lines: Sequence[dict[str, Any]], window_id: str) -> str:
        """Upload lines as a JSONL file and create a batch over it; the batch id."""
        data = b"\n".join(msgspec.json.encode(line) for line in lines) + b"\n"
        async with self._client("create") as client:
            uploaded = await client.files.create(
                file=(f"flipsync-{window_id}.jsonl", data), purpose="batch"
            )
            batch = await client.batches.create(
                input_file_id=uploaded.id,
                endpoint=ENDPOINT,
                completion_window=WINDOW,
                metadata={WINDOW_METADATA: window_id},
            )
        return batch.id

    async def state(self, batch_id: str) -> BatchState:
        """Where the batch stands now."""
        async with self._client("retrieve") as client:
            batch = await client.batches.retrieve(batch_id)
        return BatchState(
            id=batch.id,
            status=batch.status,
            output_file_id=batch.output_file_id,
            error_file_id=batch.error_file_id,
        )

    async def results(self, state: BatchState) -> dict[str, LineResult]:
        """Every line of a finished batch's output and error files, by custom_id."""
        results: dict[str, LineResult] = {}
        async with self._client("content") as client:
            for file_id in (state.error_file_id, state.output_file_id):  # output wins
                if file_id:
                    content = await client.files.content(file_id)
                    results.update(parse_output(content.content))
        return results

    async def find(self, window_id: str) -> str | None:
        """The batch made from window_id among the newest ones, if any."""
        async with self._client("list") as client:
            page = await client.batches.list(limit=FIND_LIMIT)
        for batch in page.data:
            if (batch.metadata or {}).get(WINDOW_METADATA) == window_id:
                return batch.id
        return None
