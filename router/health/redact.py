"""Provider error text made safe to store: an OpenAI-compatible server may echo a key back."""

from __future__ import annotations

import re

MAX_ERROR_CHARS = 200
"""Stored error text is cut to this many characters (after redaction)."""
SECRET = re.compile(r"(?i)\bsk-\S+|\bBearer\s+\S+|\b(?:api[_-]?)?key=\S+")
"""What looks like a credential: an sk- key, a bearer token, a key= query parameter."""
REDACTED = "[redacted]"
AUTH_STATUSES = frozenset({401, 403})
"""Statuses whose text is never kept: it is about the credentials themselves."""


def redact(text: str) -> str:
    """text with anything that looks like a credential replaced, cut to MAX_ERROR_CHARS."""
    return SECRET.sub(REDACTED, text)[:MAX_ERROR_CHARS]


def safe_error(status: int | None, error_class: str, text: str) -> str:
    """What may be stored of a failure: only status and class for 401/403, else redacted text."""
    if status in AUTH_STATUSES:
        return f"HTTP {status} ({error_class})"
    return redact(text)
