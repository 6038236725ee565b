"""Response bodies in OpenAI's exact shapes, built with the openai package's own types."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from openai.types import CompletionUsage, Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessage
from openai.types.chat.chat_completion import Choice
from openai.types.chat.chat_completion_chunk import Choice as ChunkChoice
from openai.types.chat.chat_completion_chunk import (
    ChoiceDelta,
    ChoiceDeltaToolCall,
    ChoiceDeltaToolCallFunction,
)
from openai.types.chat.chat_completion_message_tool_call import (
    ChatCompletionMessageToolCall,
    Function,
)
from openai.types.completion_usage import CompletionTokensDetails, PromptTokensDetails

from router.tokens import text_pieces
from simulator.content import FinishReason, Generated
from simulator.tool_calls import ToolCall

FINGERPRINT = "simulated"
CHUNK_TOKENS = 1
"""Tokens per streamed chunk: one, as OpenAI streams, each after its decode time."""
MODELS_CREATED = 1_700_000_000
"""The fixed creation time the model list reports."""


@dataclass(frozen=True, kw_only=True)
class Answer:
    """A produced completion with its usage, ready to be written as JSON or as a stream."""

    model: str
    generated: Generated
    prompt_tokens: int
    cached_tokens: int
    id: str = field(default_factory=lambda: f"chatcmpl-sim{uuid.uuid4().hex[:24]}")
    created: int = field(default_factory=lambda: int(time.time()))

    def usage(self) -> CompletionUsage:
        """The usage block, with OpenAI's detail objects."""
        completion = self.generated.completion_tokens
        return CompletionUsage(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=completion,
            total_tokens=self.prompt_tokens + completion,
            prompt_tokens_details=PromptTokensDetails(
                cached_tokens=self.cached_tokens, audio_tokens=0
            ),
            completion_tokens_details=CompletionTokensDetails(
                reasoning_tokens=0,
                audio_tokens=0,
                accepted_prediction_tokens=0,
                rejected_prediction_tokens=0,
            ),
        )

    def completion_json(self) -> bytes:
        """The non-streaming answer: one chat.completion object."""
        calls = self.generated.tool_calls
        message = ChatCompletionMessage(
            role="assistant",
            content=None if calls else self.generated.content,
            refusal=None,
            annotations=[],
            **({"tool_calls": [_tool_call(call) for call in calls]} if calls else {}),
        )
        choice = Choice(
            index=0, message=message, logprobs=None, finish_reason=self.generated.finish_reason
        )
        completion = ChatCompletion(
            id=self.id,
            object="chat.completion",
            created=self.created,
            model=self.model,
            choices=[choice],
            usage=self.usage(),
            service_tier="default",
            system_fingerprint=FINGERPRINT,
        )
        return completion.model_dump_json(exclude_unset=True).encode()

    def stream_events(self, *, include_usage: bool) -> Iterator[tuple[bytes, int]]:
        """The SSE events of a streamed answer, each with the completion tokens it carries.

        A role chunk, content chunks, a finish chunk, a usage chunk when asked, then [DONE].
        """
        role = ChoiceDelta(role="assistant", content="", refusal=None)
        yield self._event(role, include_usage), 0
        for index, call in enumerate(self.generated.tool_calls):  # name first, then arguments
            yield self._event(_call_delta(index, call, name=True), include_usage), 0
            for piece, count in text_pieces(call.arguments):
                yield self._event(_call_delta(index, call, arguments=piece), include_usage), count
        text, tokens = "", 0
        for piece, count in text_pieces(self.generated.content):
            text, tokens = text + piece, tokens + count
            if tokens >= CHUNK_TOKENS:
                yield self._event(ChoiceDelta(content=text), include_usage), tokens
                text, tokens = "", 0
        if text:
            yield self._event(ChoiceDelta(content=text), include_usage), tokens
        finish = self.generated.finish_reason
        yield self._event(ChoiceDelta(), include_usage, finish_reason=finish), 0
        if include_usage:
            yield self._event(None, include_usage, usage=self.usage()), 0
        yield b"data: [DONE]\n\n", 0

    def _event(
        self,
        delta: ChoiceDelta | None,
        include_usage: bool,
        *,
        finish_reason: FinishReason | None = None,
        usage: CompletionUsage | None = None,
    ) -> bytes:
        choices = []
        if delta is not None:
            choices.append(
                ChunkChoice(index=0, delta=delta, logprobs=None, finish_reason=finish_reason)
            )
        chunk = ChatCompletionChunk(
            id=self.id,
            object="chat.completion.chunk",
            created=self.created,
            model=self.model,
            choices=choices,
            service_tier="default",
            system_fingerprint=FINGERPRINT,
        )
        if include_usage:
            chunk.usage = usage  # null on every chunk but the last, as OpenAI sends it
        return b"data: " + chunk.model_dump_json(exclude_unset=True).encode() + b"\n\n"


def _tool_call(call: ToolCall) -> ChatCompletionMessageToolCall:
    return ChatCompletionMessageToolCall(
        id=call.id, type="function", function=Function(name=call.name, arguments=call.arguments)
    )


def _call_delta(
    index: int, call: ToolCall, *, name: bool = False, arguments: str = ""
) -> ChoiceDelta:
    """A streamed piece of a tool call: its id and name first, then its arguments' text."""
    function = ChoiceDeltaToolCallFunction(name=call.name, arguments="") if name else (
        ChoiceDeltaToolCallFunction(arguments=arguments))  # fmt: skip
    delta = ChoiceDeltaToolCall(index=index, function=function)
    if name:
        delta.id, delta.type = call.id, "function"
    return ChoiceDelta(tool_calls=[delta])


def models_json(models: tuple[str, ...], owner: str) -> dict[str, object]:
    """GET /v1/models: the offered models as OpenAI's list object."""
    return {"object": "list", "data": [model_json(model, owner) for model in models]}


def model_json(model: str, owner: str) -> dict[str, object]:
    """One model object, as GET /v1/models/{model} answers it."""
    return Model(id=model, created=MODELS_CREATED, object="model", owned_by=owner).model_dump(
        exclude_unset=True
    )
