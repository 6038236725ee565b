"""One client for every provider: openai.AsyncOpenAI pointed at the provider's base URL."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import openai
from openai._types import RequestOptions
from openai.types.chat import ChatCompletion
from opentelemetry import trace

from bus.messages import LlmRequest, Usage
from router.errors import ProviderError, ProviderRateLimitedError
from router.providers.config import ProviderConfig
from router.providers.messages import openai_messages, response_format, tool_fields


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


class ProviderClient:
    """Calls one provider's /chat/completions; retries (honouring retry-after) are openai's."""

    def __init__(self, config: ProviderConfig, *, timeout_s: float, max_retries: int) -> None:
        self.config = config
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
        self, request: LlmRequest, model: str, timeout_s: float | None = None
    ) -> Completion:
        """Send the request to model; raise ProviderError when it fails after retries."""
        body: dict[str, Any] = {
            "model": model,
            "messages": openai_messages(request.messages),
            "temperature": request.temperature,
            self.config.max_tokens_param: request.max_output_tokens,
        }
        fmt = response_format(request)
        if fmt is not None:
            body["response_format"] = fmt
        body.update(tool_fields(request))  # only when the request still sends tools
        options: RequestOptions = {}
        if timeout_s is not None:
            options["timeout"] = max(timeout_s, 0.001)
        started = time.monotonic()
        try:
            # post() skips the SDK's per-call re-typing of params (about 2 ms of CPU per
            # call); the body is built from already validated wire messages.
            response = await self._client.post(
                "/chat/completions", body=body, cast_to=ChatCompletion, options=options
            )
        except openai.RateLimitError as exc:
            retry_after = exc.response.headers.get("retry-after")
            raise ProviderRateLimitedError(
                self.name, model, float(retry_after) if retry_after else None
            ) from exc
        except openai.APITimeoutError as exc:
            raise ProviderError(self.name, model, "timed out") from exc
        except openai.APIStatusError as exc:
            raise ProviderError(self.name, model, f"HTTP {exc.status_code}") from exc
        except (openai.APIError, ValueError) as exc:
            raise ProviderError(self.name, model, f"bad response: {type(exc).__name__}") from exc
        latency_ms = (time.monotonic() - started) * 1000
        if not response.choices:
            raise ProviderError(self.name, model, "answer has no choices")
        choice = response.choices[0]
        usage = Usage()
        if response.usage is not None:
            details = response.usage.prompt_tokens_details
            usage = Usage(
                input_tokens=response.usage.prompt_tokens,
                cached_input_tokens=(details.cached_tokens or 0) if details else 0,
                output_tokens=response.usage.completion_tokens,
            )
        completion = Completion(
            content=choice.message.content or "",
            model=response.model or model,
            usage=usage,
            latency_ms=latency_ms,
            finish_reason=choice.finish_reason or "",
            tool_calls=[call.model_dump(mode="json") for call in choice.message.tool_calls or ()],
        )
        _record_genai(trace.get_current_span(), self.name, model, completion)
        return completion

    async def close(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.close()


def _record_genai(span: trace.Span, provider: str, model: str, completion: Completion) -> None:
    """OpenTelemetry GenAI attributes of one call, on the current span."""
    span.set_attribute("gen_ai.operation.name", "chat")
    span.set_attribute("gen_ai.provider.name", provider)
    span.set_attribute("gen_ai.request.model", model)
    span.set_attribute("gen_ai.response.model", completion.model)
    span.set_attribute("gen_ai.usage.input_tokens", completion.usage.input_tokens)
    span.set_attribute("gen_ai.usage.output_tokens", completion.usage.output_tokens)
    span.set_attribute("gen_ai.response.finish_reasons", [completion.finish_reason])
