"""One client for every provider: openai.AsyncOpenAI pointed at the provider's base URL."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgspec
import openai
from openai import AsyncStream
from openai._types import RequestOptions
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from opentelemetry import trace

from bus.messages import LlmRequest, Usage
from router.errors import ProviderRateLimitedError
from router.providers.config import ProviderConfig
from router.providers.errors import ProviderCallError
from router.providers.messages import openai_messages, response_format, tool_fields
from router.providers.served_model import reported_model
from router.providers.streaming import (
    Relay,
    bound_usage,
    plausible_or_bound,
    relay_chunks,
    stream_body,
)
from router.providers.structured import SCHEMA_BY_INSTRUCTIONS, with_schema_instructions
from router.providers.usage import usage_from


class _Message(msgspec.Struct):
    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


class _Choice(msgspec.Struct):
    message: _Message = msgspec.field(default_factory=_Message)
    finish_reason: str | None = None


class _ChatCompletion(msgspec.Struct):
    """The fields of a chat completion the router reads; the rest of the body is skipped."""

    choices: list[_Choice] = []
    model: str | None = None
    usage: Any = None
    """Read as it came: reported_usage makes sense of it, or books the call at its bound."""


_decode_completion = msgspec.json.Decoder(_ChatCompletion).decode


@dataclass(frozen=True, kw_only=True)
class Completion:
    """What a provider answered: text, the model that answered, usage and latency."""

    content: str
    model: str
    usage: Usage
    latency_ms: float
    finish_reason: str
    tool_calls: list[dict[str, object]] = field(default_factory=list)
    """Tool calls the model asked for, in OpenAI's shape."""
    booked_as_lost: bool = False
    """Already booked at its bound as a lost call (its lease lapsed while it ran: a stalled
    replica, not a dead one): whoever prices it books 0, so it is booked once."""


_CONNECT_PHASE = ("ConnectTimeout", "ConnectError")
"""httpx's exceptions of the connect phase (before anything was sent), by name: the
aiohttp transport raises its own copies of httpx's classes."""


def _connect_failure(exc: BaseException) -> str | None:
    """Why the connection was never made, when exc comes from the connect phase: openai's
    aiohttp transport reports a refused connection as a timeout (ConnectTimeout), which
    would read as a call that may have been billed."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return None
        if isinstance(seen, (aiohttp.ClientConnectorError, ConnectionRefusedError)):
            return str(seen) or type(seen).__name__
        if type(seen).__name__ in _CONNECT_PHASE:
            return str(seen) or type(seen).__name__
        seen = seen.__cause__ or seen.__context__
    return None


class ProviderClient:
    """Calls one provider's /chat/completions once; retries and fallback are the dispatcher's.

    max_retries stays 0 in the router: openai's own retries would hide a failing provider
    from the health stats and hold the request past the point where a fallback could serve it.
    """

    def __init__(
        self,
        config: ProviderConfig,
        *,
        timeout_s: float,
        max_retries: int = 0,
        wire_ids: Mapping[str, str] | None = None,
    ) -> None:
        """wire_ids maps FlipSync's model names to the ids the provider's API takes
        ("claude-haiku-3.5" to "claude-3-5-haiku-20241022"); unmapped names go as they are."""
        self.config = config
        self._wire_ids = dict(wire_ids or {})
        self._client = openai.AsyncOpenAI(
            base_url=config.base_url,
            api_key=config.api_key.get_secret_value(),
            timeout=timeout_s,
            max_retries=max_retries,
            http_client=openai.DefaultAioHttpClient(),
        )

    @property
    def name(self) -> str:
        """The provider's name."""
        return self.config.name

    async def complete(
        self,
        request: LlmRequest,
        model: str,
        timeout_s: float | None = None,
        relay: Relay | None = None,
    ) -> Completion:
        """Send the request to model once; raise ProviderCallError or ProviderRateLimitedError.

        With a relay (and no tools to send), the call streams and each text piece is relayed
        as it arrives (router.providers.streaming)."""
        body: dict[str, Any] = {
            "model": self._wire_ids.get(model, model),
            "messages": openai_messages(request.messages),
            "temperature": request.temperature,
            self.config.max_tokens_param: request.max_output_tokens,
        }
        if self.config.kind in SCHEMA_BY_INSTRUCTIONS:
            body["messages"] = with_schema_instructions(request, body["messages"])
        else:
            fmt = response_format(request)
            if fmt is not None:
                body["response_format"] = fmt
        body.update(tool_fields(request))  # only when the request still sends tools
        options: RequestOptions = {}
        if timeout_s is not None:
            options["timeout"] = max(timeout_s, 0.001)
        if relay is not None and "tools" not in body:
            return await self._streamed(request, model, stream_body(body), options, relay)
        started = time.monotonic()
        with self._errors(model):
            # post() skips the SDK's per-call re-typing of params (about 2 ms of CPU per
            # call); the body is built from already validated wire messages. The answer comes
            # back as bytes and msgspec reads the few fields used: the SDK's construction of
            # its ChatCompletion model was a tenth of an unpacked request's router CPU.
            raw = await self._client.post(
                "/chat/completions", body=body, cast_to=bytes, options=options
            )
        latency_ms = (time.monotonic() - started) * 1000
        with self._errors(model, answered=True):  # a 2xx: whatever fails now was billed
            response = _decode_completion(raw)
            if not response.choices:
                raise ValueError("answer has no choices")
        choice = response.choices[0]
        completion = Completion(
            content=choice.message.content or "",
            model=reported_model(response.model, model),
            usage=reported_usage(response.usage, request),
            latency_ms=latency_ms,
            finish_reason=choice.finish_reason or "",
            tool_calls=list(choice.message.tool_calls or ()),
        )
        _record_genai(trace.get_current_span(), self.name, model, completion)
        return completion

    async def _streamed(
        self,
        request: LlmRequest,
        model: str,
        body: dict[str, Any],
        options: RequestOptions,
        relay: Relay,
    ) -> Completion:
        """The call made as a stream, each text piece relayed as it arrives."""
        started = time.monotonic()
        with self._errors(model):
            chunks = await self._client.post(
                "/chat/completions", body=body, cast_to=ChatCompletion, options=options,
                stream=True, stream_cls=AsyncStream[ChatCompletionChunk],
            )  # fmt: skip
        with self._errors(model, answered=True):  # the stream began: the call is billed
            async with chunks:
                summary, usage = await relay_chunks(
                    chunks, relay, fallback_usage=bound_usage(request)
                )
        completion = Completion(
            content=summary.content,
            model=reported_model(summary.model, model),
            usage=usage,
            latency_ms=(time.monotonic() - started) * 1000,
            finish_reason=summary.finish_reason,
        )
        _record_genai(trace.get_current_span(), self.name, model, completion)
        return completion

    @contextlib.contextmanager
    def _errors(self, model: str, *, answered: bool = False) -> Iterator[None]:
        """openai's and the transport's errors as ProviderCallError or ProviderRateLimitedError.

        answered: the provider already answered with a 2xx, so it billed the call; any failure
        from here on (a body that is not JSON, no choices, a stream cut or stalled) is
        ProviderCallError.unusable, which is booked and not tried again on this model."""
        if answered:
            try:
                yield
            except (openai.APIError, aiohttp.ClientError, ValueError, msgspec.DecodeError) as exc:
                reason = f"unusable answer: {type(exc).__name__}"
                raise ProviderCallError.unusable(self.name, model, reason) from exc
            return
        try:
            yield
        except openai.RateLimitError as exc:
            retry_after = retry_after_s(exc.response.headers)
            raise ProviderRateLimitedError(self.name, model, retry_after) from exc
        except openai.APITimeoutError as exc:
            refused = _connect_failure(exc)
            if refused is not None:  # never sent, so never billed: not a timeout
                reason = f"could not connect to {self.config.base_url}: {refused}"
                raise ProviderCallError.transient(self.name, model, reason) from exc
            error = ProviderCallError.transient(self.name, model, "timed out", timed_out=True)
            raise error from exc
        except openai.APIStatusError as exc:
            raise ProviderCallError.from_status(self.name, model, exc.status_code) from exc
        except openai.APIConnectionError as exc:
            reason = f"connection failed: {type(exc).__name__}"
            raise ProviderCallError.transient(self.name, model, reason) from exc
        except (openai.APIError, aiohttp.ClientError, ValueError, msgspec.DecodeError) as exc:
            # aiohttp errors: a stream cut mid-answer surfaces from the body, not as openai's
            reason = f"bad response: {type(exc).__name__}"
            raise ProviderCallError.transient(self.name, model, reason) from exc

    async def close(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.close()


def reported_usage(raw: Mapping[str, Any] | None, request: LlmRequest) -> Usage:
    """The usage an answer reports; an answer that reports no token at all (no usage object,
    an empty or unreadable one), or a count no call can bill (plausible_or_bound), is booked
    at the call's bound, never at zero, as a stream that ends without usage is
    (router.providers.streaming)."""
    usage = usage_from(raw if isinstance(raw, Mapping) else None)
    if usage.input_tokens == 0 and usage.output_tokens == 0:
        return bound_usage(request)
    return plausible_or_bound(usage, request)


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """Seconds a 429 asks us to wait: retry-after-ms, else a numeric retry-after, else None."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            continue  # an HTTP date: rare, and the backoff covers it
        if seconds >= 0:
            return seconds
    return None


def _record_genai(span: trace.Span, provider: str, model: str, completion: Completion) -> None:
    """OpenTelemetry GenAI attributes of one call, on the current span."""
    span.set_attribute("gen_ai.operation.name", "chat")
    span.set_attribute("gen_ai.provider.name", provider)
    span.set_attribute("gen_ai.request.model", model)
    span.set_attribute("gen_ai.response.model", completion.model)
    span.set_attribute("gen_ai.usage.input_tokens", completion.usage.input_tokens)
    span.set_attribute("gen_ai.usage.output_tokens", completion.usage.output_tokens)
    span.set_attribute("gen_ai.response.finish_reasons", [completion.finish_reason])
