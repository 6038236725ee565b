"""How a spec and its inputs become chat messages: static parts first, inputs last."""

from __future__ import annotations

import base64
import json

from agents.spec import AgentSpec, Inputs
from bus.messages import ChatMessage, ImagePart, Part, Photo, TextPart

SYSTEM = (
    "You are one of FlipSync's marketplace agents. You turn a seller's product into "
    "marketplace listings. Answer only with JSON that matches the given schema."
)


def build_messages(
    spec: AgentSpec, inputs: Inputs, images: list[tuple[Photo, bytes]], fix: list[str] | None = None
) -> list[ChatMessage]:
    """System prompt, then the agent's instructions, then its inputs and photos.

    The static text comes first and the per-product text last, so that providers'
    automatic prompt caching can reuse the opening across products.
    """
    text = f"{spec.instructions}\n\nInputs:\n{json.dumps(inputs, sort_keys=True, default=str)}"
    content: list[Part] = [TextPart(text=text)]
    for photo, data in images:
        url = f"data:{photo.content_type};base64,{base64.b64encode(data).decode()}"
        content.append(
            ImagePart(url=url, detail=spec.image_detail, width=photo.width, height=photo.height)
        )
    messages = [
        ChatMessage(role="system", content=SYSTEM),
        ChatMessage(role="user", content=content),
    ]
    if fix:
        problems = "; ".join(fix)
        messages.append(
            ChatMessage(role="user", content=f"Your last answer was invalid: {problems}. Fix it.")
        )
    return messages
