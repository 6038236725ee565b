"""The simulated provider's HTTP app: OpenAI's chat completions, models, files and batches,
plus /_sim admin."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from router.tokens import REPLY_PRIMING_TOKENS, message_pieces, tool_pieces
from simulator.batches import BatchStore, batch_routes
from simulator.billing import Billing, provider_prompt_tokens
from simulator.config import FaultKind, Faults, SimConfig
from simulator.content import Generated, generate
from simulator.errors import ApiError, InvalidRequestError, ModelNotFoundError, error_body
from simulator.files import FileStore, file_routes
from simulator.fine_tuning import FineTuneStore, fine_tuning_routes
from simulator.markers import marked_fault
from simulator.request import ChatRequest, parse_chat_request
from simulator.response import Answer, model_json, models_json
from simulator.state import SimState

SIMULATED_HEADER = "x-flipsync-simulated"
"""Carried (with value "true") by every response, so no one mistakes it for a real provider."""
FAULT_HEADER = "x-sim-fault"
"""Request header that forces one fault kind for that one request."""
_DISCONNECT_POLL_S = 0.05
log = logging.getLogger(__name__)


def create_app(config: SimConfig, state: SimState | None = None) -> Starlette:
    """The ASGI app of one simulated provider; state is made from config unless given."""
    sim = state or SimState(config)
    offered = frozenset(config.models)

    async def chat_completions(request: Request) -> Response:
        sim.stats.requests += 1
        try:
            chat = parse_chat_request(await request.body())
            if chat.model not in offered and not tunes.serves(chat.model):
                raise ModelNotFoundError(chat.model)
            fault = marked_fault(chat, _fault(request, sim))
            if fault is None and config.quality is not None and config.quality.fails(chat):
                fault = FaultKind.SCHEMA_INVALID  # a weaker model's answer (simulator.quality)
            # Before any fault or sleep: OpenAI also rejects an unusable schema up front.
            generated = _generate(chat, break_schema=fault is FaultKind.SCHEMA_INVALID)
        except ApiError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)
        if fault is not None:
            sim.stats.faults[fault] += 1
        if fault is FaultKind.RATE_LIMIT:
            return _rate_limited(chat.model, sim.faults.retry_after_s, sim.faults.retry_after_ms)
        if fault is FaultKind.TIMEOUT and await _held_until_gone(request, sim.faults.timeout_s):
            return Response(status_code=499)  # nobody is listening any more
        await _sleep(sim.latency_s())
        if fault is FaultKind.SERVER_ERROR:
            message = "The server had an error while processing your request. Sorry about that!"
            return JSONResponse(error_body(message, "server_error"), status_code=500)
        answer = _answer(chat, generated, sim)
        malformed = fault is FaultKind.MALFORMED_JSON
        if chat.stream:
            events = _stream(answer, sim, include_usage=chat.include_usage, malformed=malformed)
            return StreamingResponse(events, media_type="text/event-stream")
        await _sleep(sim.decode_s(answer.generated.completion_tokens))
        body = answer.completion_json()
        return Response(_cut(body) if malformed else body, media_type="application/json")

    def batch_line(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """One line of a batch, answered as chat_completions would (no latency, no stream)."""
        try:
            chat = parse_chat_request(json.dumps(body).encode())
            if chat.model not in offered and not tunes.serves(chat.model):
                raise ModelNotFoundError(chat.model)
            fault = sim.draw_fault()
            if fault is None and config.quality is not None and config.quality.fails(chat):
                fault = FaultKind.SCHEMA_INVALID
            generated = _generate(chat, break_schema=fault is FaultKind.SCHEMA_INVALID)
        except ApiError as exc:
            return exc.status, exc.body()
        if fault is not None:
            sim.stats.faults[fault] += 1
        if fault in (FaultKind.SERVER_ERROR, FaultKind.RATE_LIMIT):
            return 500, error_body("The server had an error processing this line.", "server_error")
        answer = _answer(chat, generated, sim, via_batch=True)
        return 200, json.loads(answer.completion_json())

    files = FileStore()
    batches = BatchStore(files, batch_line, sim)
    tunes = FineTuneStore(files)

    async def list_models(request: Request) -> Response:
        return JSONResponse(models_json(config.models, config.name))

    async def get_model(request: Request) -> Response:
        model = request.path_params["model"]
        if model not in offered:
            error = ModelNotFoundError(model)
            return JSONResponse(error.body(), status_code=error.status)
        return JSONResponse(model_json(model, config.name))

    async def stats(request: Request) -> Response:
        return JSONResponse(sim.stats.to_json())

    async def reset(request: Request) -> Response:
        sim.reset()
        return JSONResponse(sim.stats.to_json())

    async def faults(request: Request) -> Response:
        if request.method == "PUT":
            try:
                sim.set_faults(Faults.model_validate_json(await request.body()))
            except ValidationError as exc:
                error = InvalidRequestError(f"Invalid faults: {exc}")
                return JSONResponse(error.body(), status_code=error.status)
        return JSONResponse(sim.faults.model_dump())

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/models", list_models, methods=["GET"]),
            Route("/v1/models/{model:path}", get_model, methods=["GET"]),
            Route("/_sim/stats", stats, methods=["GET"]),
            Route("/_sim/reset", reset, methods=["POST"]),
            Route("/_sim/faults", faults, methods=["GET", "PUT"]),
            *file_routes(files),
            *batch_routes(batches),
            *fine_tuning_routes(tunes, offered),
        ],
        middleware=[Middleware(SimulatedHeader)],
        exception_handlers={HTTPException: _http_error, Exception: _crash},
    )


class SimulatedHeader:
    """ASGI middleware that marks every response with x-flipsync-simulated: true."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, adding the header to the response start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                header = (SIMULATED_HEADER.encode(), b"true")
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        await self.app(scope, receive, marked)


def _fault(request: Request, sim: SimState) -> FaultKind | None:
    """The drawn fault (one draw per call, to keep the sequence), or the header's override."""
    drawn = sim.draw_fault()
    forced = request.headers.get(FAULT_HEADER)
    if forced is None:
        return drawn
    try:
        return FaultKind(forced)
    except ValueError:
        kinds = ", ".join(FaultKind)
        raise InvalidRequestError(
            f"Unknown {FAULT_HEADER} {forced!r}; use one of {kinds}."
        ) from None


def _generate(chat: ChatRequest, *, break_schema: bool) -> Generated:
    """The content; a schema the generator chokes on is the caller's 400, not our 500."""
    try:
        return generate(chat, break_schema=break_schema)
    except (TypeError, ValueError, AttributeError, KeyError, IndexError, RecursionError) as exc:
        if chat.json_schema is None:
            raise
        param = "response_format.json_schema.schema"
        raise InvalidRequestError(f"Invalid '{param}': {exc!r}", param=param) from exc


def _answer(
    chat: ChatRequest, generated: Generated, sim: SimState, *, via_batch: bool = False
) -> Answer:
    """Usage (prompt cache included) of a produced completion, counted in the stats."""
    pieces = [*tool_pieces(chat.tools), *message_pieces(chat.messages)]
    prompt = sum(tokens for _, tokens in pieces) + REPLY_PRIMING_TOKENS
    if sim.config.billing == Billing.PROVIDER:
        prompt = provider_prompt_tokens(chat.model, chat.messages, chat.response_format, chat.tools)
    cached = min(sim.cache.lookup_and_store(chat.model, pieces, prompt), prompt)
    sim.record(chat.model, prompt, cached, generated.completion_tokens, via_batch=via_batch)
    return Answer(model=chat.model, generated=generated, prompt_tokens=prompt, cached_tokens=cached)


async def _stream(
    answer: Answer, sim: SimState, *, include_usage: bool, malformed: bool
) -> AsyncIterator[bytes]:
    sim.stats.streams_open += 1
    gate = sim.stream_gate
    try:
        for event, tokens in answer.stream_events(include_usage=include_usage):
            await _sleep(sim.stream_s(tokens))
            if malformed:
                yield _cut(event) + b"\n\n"
                return
            yield event
            if tokens and gate is not None:  # held after the first text (a test's gate)
                await gate.wait()
                gate = None
    finally:
        sim.stats.streams_open -= 1


def _cut(body: bytes) -> bytes:
    """The first half of a JSON body, as a connection cut mid-answer delivers it."""
    return body[: len(body) // 2].decode(errors="ignore").encode()


async def _held_until_gone(request: Request, seconds: float) -> bool:
    """Hold the request for seconds; True as soon as the client hangs up."""
    deadline = asyncio.get_running_loop().time() + seconds
    while (left := deadline - asyncio.get_running_loop().time()) > 0:
        if await request.is_disconnected():
            return True
        await asyncio.sleep(min(left, _DISCONNECT_POLL_S))
    return await request.is_disconnected()


async def _sleep(seconds: float) -> None:
    if seconds > 0:  # no sleep at all at zero latency: the benchmark wants every cycle
        await asyncio.sleep(seconds)


def _rate_limited(model: str, retry_after_s: int, retry_after_ms: int | None = None) -> Response:
    message = (
        f"Rate limit reached for {model} (simulated) on requests per min (RPM). "
        f"Please try again in {retry_after_s}s."
    )
    body = error_body(message, "requests", code="rate_limit_exceeded")
    headers = {"retry-after": str(retry_after_s)}
    if retry_after_ms is not None:
        headers["retry-after-ms"] = str(retry_after_ms)
    return JSONResponse(body, status_code=429, headers=headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 404:
        message, code = f"Unknown request URL: {request.method} {request.url.path}.", "unknown_url"
    else:
        message, code = f"HTTP {status} on {request.method} {request.url.path}.", None
    return JSONResponse(error_body(message, "invalid_request_error", code=code), status_code=status)


async def _crash(request: Request, exc: Exception) -> Response:
    # Outside the middleware stack, so the header is set here by hand.
    log.exception("simulated provider failed on %s", request.url.path, exc_info=exc)
    body = error_body("The simulated provider failed: see its log.", "server_error")
    return JSONResponse(body, status_code=500, headers={SIMULATED_HEADER: "true"})
