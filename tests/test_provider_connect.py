"""A provider that cannot be reached is a connection failure naming its URL, not a timeout."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from bus.embedded.process import free_port
from bus.messages import ChatMessage, LlmRequest
from router.providers.client import ProviderClient
from router.providers.config import ProviderConfig
from router.providers.errors import ProviderCallError


async def test_a_refused_connection_is_not_a_timeout_that_may_have_been_billed() -> None:
    """openai's aiohttp transport reports a refused connection as a timeout; nothing was
    sent, so the error must not say a call may have been billed, and it names the URL."""
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    config = ProviderConfig(name="p", base_url=url, api_key=SecretStr("k"), models=("m",))
    client = ProviderClient(config, timeout_s=10)
    request = LlmRequest(
        id="r1", tenant="t", agent="a", task_type="qa",
        messages=[ChatMessage(role="user", content="hi")],
    )  # fmt: skip
    try:
        with pytest.raises(ProviderCallError) as caught:
            await client.complete(request, "m")
    finally:
        await client.close()
    assert not caught.value.timed_out
    assert caught.value.retryable
    assert f"could not connect to {url}" in caught.value.reason
