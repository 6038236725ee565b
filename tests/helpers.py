"""Small helpers the tests share: building requests and waiting on the ledger."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

from bus.messages import ChatMessage, LlmRequest, OutputSchema

TITLE_SCHEMA = OutputSchema(
    name="title",
    schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["title"],
        "properties": {"title": {"type": "string", "minLength": 3, "maxLength": 80}},
    },
)


def make_request(
    *,
    tenant: str = "t1",
    agent: str = "ebay_listing",
    text: str = "Write a title for a teal stoneware mug.",
    request_id: str | None = None,
    schema: OutputSchema | None = TITLE_SCHEMA,
) -> LlmRequest:
    """A small structured request, unique unless request_id is given."""
    return LlmRequest(
        id=request_id or uuid.uuid4().hex,
        tenant=tenant,
        agent=agent,
        task_type="text_generation",
        messages=[ChatMessage(role="user", content=text)],
        output_schema=schema,
        max_output_tokens=100,
    )


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 10.0) -> None:
    """Wait until check() is true; fail the test with TimeoutError otherwise."""
    async with asyncio.timeout(timeout_s):
        while not await check():  # noqa: ASYNC110 - polling state held in another server
            await asyncio.sleep(0.02)
