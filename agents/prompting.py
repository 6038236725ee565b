"""How a spec and its inputs become chat messages: static parts first, inputs last."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from agents.spec import UPLOAD, AgentSpec, Inputs
from bus.messages import ChatMessage, ImagePart, Part, PhotoRendition, TextPart

SYSTEM = (
    "You are one of FlipSync's marketplace agents. You turn a seller's product into "
    "marketplace listings. Answer only with JSON that matches the given schema."
)

Image = tuple[PhotoRendition, bytes]
"""A rendition of a photo and its bytes."""


def llm_inputs(spec: AgentSpec, inputs: Inputs) -> dict[str, Any]:
    """What the model sees: the upload fields the spec names, and its inputs' outputs."""
    upload = inputs.get(UPLOAD, {})
    view: dict[str, Any] = {name: value for name, value in inputs.items() if name != UPLOAD}
    seen = {field: upload[field] for field in spec.upload_fields if upload.get(field)}
    if seen:
        view[UPLOAD] = seen
    return view


def build_messages(
    spec: AgentSpec,
    inputs: Inputs,
    images: list[Image] | None = None,
    fix: list[str] | None = None,
    previous: str = "",
) -> list[ChatMessage]:
    """System prompt, then the agent's instructions, then its inputs and photos.

    The static text comes first and the per-product text last, so that providers'
    automatic prompt caching can reuse the opening across products. A retry adds the
    previous answer and the problems found in it.
    """
    text = spec.instructions
    view = llm_inputs(spec, inputs)
    if view:
        text += f"\n\nInputs:\n{json.dumps(view, sort_keys=True, default=str)}"
    if images:
        text += (
            f"\n\nThere are {len(images)} photos. Analyse each one on its own, in the order "
            'given, and answer {"photos": [one analysis per photo]}.'
        )
    content: list[Part] = [TextPart(text=text)]
    for rendition, data in images or []:
        url = f"data:{rendition.content_type};base64,{base64.b64encode(data).decode()}"
        content.append(
            ImagePart(
                url=url, detail=spec.image_detail, width=rendition.width, height=rendition.height
            )
        )
    messages = [
        ChatMessage(role="system", content=SYSTEM),
        ChatMessage(role="user", content=content),
    ]
    if fix:
        if previous:
            messages.append(ChatMessage(role="assistant", content=previous))
        problems = "; ".join(fix)
        messages.append(
            ChatMessage(role="user", content=f"Your last answer was invalid: {problems}. Fix it.")
        )
    return messages


def photos_schema(spec: AgentSpec, count: int) -> dict[str, Any]:
    """The answer schema of a per-photo agent asked about count photos at once."""
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["photos"],
        "properties": {
            "photos": {
                "type": "array",
                "items": spec.output_schema,
                "minItems": count,
                "maxItems": count,
            }
        },
    }


@dataclass(frozen=True, kw_only=True)
class NaiveCall:
    """The model call a naive agent would have made for work that made none: its size."""

    input_tokens: int
    output_tokens: int
    max_output_tokens: int
    """The cap the call would have asked for (the spec's), as the router checks it."""
    prompt_bytes: int
    """The prompt's UTF-8 size: the request would have been at least this large."""


def naive_call(spec: AgentSpec, inputs: Inputs, output: object) -> NaiveCall:
    """The call a model doing this agent's work would have taken.

    About four characters a token; used only to price the naive baseline of work that
    made no call (and to tell whether that call could have been made), never to bill.
    """
    prompt = SYSTEM + spec.instructions + json.dumps(llm_inputs(spec, inputs), default=str)
    answer = json.dumps(output, default=str)
    return NaiveCall(
        input_tokens=len(prompt) // 4 + 10,
        output_tokens=len(answer) // 4 + 1,
        max_output_tokens=spec.max_output_tokens,
        prompt_bytes=len(prompt.encode()),
    )
