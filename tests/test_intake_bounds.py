"""Numbers and image URLs a request carries are bounded before any stage sees them.

Found by review: a deadline_ms of 400 digits (msgspec decodes integers of thousands) broke
the deadline's float arithmetic outside the error handling, and the request was redelivered
ten times before an internal error; a quality_floor of 1e308 routed to the dearest model with
a 300-digit reason; image sides of 10**400 ended as internal errors; file: and http: image
URLs were passed on to the provider, which fetches them.
"""

from __future__ import annotations

import math

import msgspec
import pytest

from bus.errors import WireError
from bus.messages import ChatMessage, ErrorCode, ImagePart, LlmRequest, TextPart
from router.intake import check_request
from tests.helpers import make_request


def with_image(**image: object) -> LlmRequest:
    """A request whose user message carries one image part."""
    part = ImagePart(**{"url": "https://img.example/p.png", **image})  # type: ignore[arg-type]
    message = ChatMessage(role="user", content=[TextPart(text="Describe it."), part])
    return msgspec.structs.replace(make_request(), messages=[message])


@pytest.mark.parametrize(
    ("request_", "said"),
    [
        (msgspec.structs.replace(make_request(), deadline_ms=10**400), "deadline_ms"),
        (msgspec.structs.replace(make_request(), deadline_ms=-(10**400)), "deadline_ms"),
        (msgspec.structs.replace(make_request(), quality_floor=1e308), "quality_floor"),
        (msgspec.structs.replace(make_request(), quality_floor=-5.0), "quality_floor"),
        (msgspec.structs.replace(make_request(), quality_floor=math.nan), "quality_floor"),
        (with_image(width=10**400, height=10), "width and height"),
        (with_image(width=1024, height=0), "width and height"),
        (with_image(url="file:///etc/passwd"), "https: or data:image/"),
        (with_image(url="http://169.254.169.254/latest/meta-data"), "https: or data:image/"),
        (with_image(url="data:text/html;base64,PGgxPmhpPC9oMT4="), "https: or data:image/"),
    ],
)
async def test_an_out_of_range_request_is_malformed_with_a_reason(
    request_: LlmRequest, said: str
) -> None:
    with pytest.raises(WireError) as refused:
        await check_request(request_)
    assert refused.value.code is ErrorCode.MALFORMED and said in refused.value.reason


@pytest.mark.parametrize(
    "request_",
    [
        msgspec.structs.replace(make_request(), deadline_ms=1_796_000_000_000, quality_floor=1.0),
        msgspec.structs.replace(make_request(), deadline_ms=-1),  # past: deadline_exceeded later
        with_image(width=4032, height=3024, detail="high"),
        with_image(url="HTTPS://IMG.EXAMPLE/P.PNG"),
        with_image(url="data:image/png;base64,iVBORw0KGgo="),
    ],
)
async def test_requests_within_bounds_pass(request_: LlmRequest) -> None:
    await check_request(request_)
