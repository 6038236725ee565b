"""Encoding and strict decoding of wire messages, with clear errors for bad input."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from bus.errors import WireError
from bus.messages import WIRE_VERSION, ErrorCode

T = TypeVar("T", bound=msgspec.Struct)

_encoder = msgspec.json.Encoder()
_decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {}


def encode(message: msgspec.Struct) -> bytes:
    """Encode a wire message as JSON bytes."""
    return _encoder.encode(message)


def decode(data: bytes, kind: type[T], *, max_bytes: int | None = None) -> T:
    """Decode data as a kind, or raise WireError with a stable code and a human reason."""
    if max_bytes is not None and len(data) > max_bytes:
        raise WireError(
            ErrorCode.OVERSIZED,
            f"{kind.__name__} of {len(data)} bytes is over the limit of {max_bytes} bytes",
        )
    decoder = _decoders.get(kind)
    if decoder is None:
        decoder = _decoders[kind] = msgspec.json.Decoder(kind)
    try:
        message: T = decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise WireError(ErrorCode.MALFORMED, f"{kind.__name__} is invalid: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise WireError(ErrorCode.MALFORMED, f"{kind.__name__} is not valid JSON: {exc}") from exc
    version = getattr(message, "v", WIRE_VERSION)
    if version > WIRE_VERSION:
        raise WireError(
            ErrorCode.UNSUPPORTED_VERSION,
            f"{kind.__name__} version {version} is newer than this reader's {WIRE_VERSION}",
        )
    return message


def peek_ids(data: bytes) -> tuple[str, str, str]:
    """Best-effort (id, tenant, agent) of a request that failed to decode, for its error result."""
    try:
        raw = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return "", "", ""
    if not isinstance(raw, dict):
        return "", "", ""
    fields = (raw.get("id"), raw.get("tenant"), raw.get("agent"))
    id_, tenant, agent = (f if isinstance(f, str) else "" for f in fields)
    return id_, tenant, agent
