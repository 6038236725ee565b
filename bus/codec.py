"""Encoding and strict decoding of wire messages, with clear errors for bad input."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec

from bus.errors import WireError
from bus.limits import MAX_DEPTH, bracket_bound, nesting_depth
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
    _check_depth(data, kind.__name__)
    try:
        message: T = decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise WireError(ErrorCode.MALFORMED, f"{kind.__name__} is invalid: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise WireError(ErrorCode.MALFORMED, f"{kind.__name__} is not valid JSON: {exc}") from exc
    except (RecursionError, UnicodeError, ValueError, TypeError) as exc:  # untrusted: any failure
        reason = f"{kind.__name__} could not be decoded ({type(exc).__name__})"
        raise WireError(ErrorCode.MALFORMED, reason) from exc
    version = getattr(message, "v", WIRE_VERSION)
    if version > WIRE_VERSION:
        raise WireError(
            ErrorCode.UNSUPPORTED_VERSION,
            f"{kind.__name__} version {version} is newer than this reader's {WIRE_VERSION}",
        )
    return message


def _check_depth(data: bytes, name: str) -> None:
    """Refuse a document nested deeper than MAX_DEPTH before any recursive code reads it."""
    if bracket_bound(data) <= MAX_DEPTH:
        return  # fewer brackets than the limit: surely shallow enough
    try:
        value = msgspec.json.decode(data)
    except RecursionError:
        depth = MAX_DEPTH + 1
    except (msgspec.DecodeError, UnicodeError, ValueError):
        return  # not JSON: the typed decode says why
    else:
        depth = nesting_depth(value, MAX_DEPTH)
    if depth > MAX_DEPTH:
        raise WireError(ErrorCode.MALFORMED, f"{name} is nested deeper than {MAX_DEPTH} levels")


class _Ids(msgspec.Struct):
    id: str = ""
    tenant: str = ""
    agent: str = ""


_ID_FIELD = re.compile(rb'"id"\s*:\s*"([A-Za-z0-9_-]{1,64})"')


def peek_ids(data: bytes) -> tuple[str, str, str]:
    """Best-effort (id, tenant, agent) of a request that failed to decode, for its error result.

    A document too deep to decode still gives the first "id" string it holds, if any.
    """
    try:
        ids = msgspec.json.decode(data, type=_Ids)
    except RecursionError:
        found = _ID_FIELD.search(data)
        return (found.group(1).decode() if found else ""), "", ""
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeError, ValueError):
        return "", "", ""
    return ids.id, ids.tenant, ids.agent
