"""Token usage read from each provider's own response shape, normalised to one Usage.

Usage.input_tokens always counts every prompt token (cache reads and writes included) and
output_tokens every billed output token (reasoning included); the details are parts of them.

- OpenAI chat completions (and their batch output lines): prompt_tokens (cached included),
  prompt_tokens_details.cached_tokens, completion_tokens (reasoning included),
  completion_tokens_details.reasoning_tokens.
- Anthropic Messages API: input_tokens is only the uncached part; cache_read_input_tokens
  and cache_creation_input_tokens are added to it. Its OpenAI-compatible endpoint answers in
  OpenAI's shape (without cache fields: it does not do prompt caching).
- Gemini generateContent usageMetadata: promptTokenCount (cached included),
  cachedContentTokenCount, candidatesTokenCount plus thoughtsTokenCount (both billed as
  output), promptTokensDetails per modality (IMAGE).
- Any OpenAI-shaped usage whose total_tokens exceeds prompt plus completion (Gemini's
  compatible endpoint has reported thinking only in the total): the rest is billed output.

A count no model can have billed (over MAX_PLAUSIBLE_TOKENS, ten times the largest context
window offered today) is not a usage but a broken or hostile answer: implausible() names it,
and the caller books the call at its bound instead (never at zero, and never at a figure
that would overflow the ledger's 64-bit counters and send the paid call to dead letters).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bus.messages import Usage

MAX_PLAUSIBLE_TOKENS = 100_000_000
"""More tokens than any one call can be billed for (context windows reach about 10 million)."""


def implausible(usage: Usage) -> str | None:
    """Why usage cannot be what a provider billed (a count over MAX_PLAUSIBLE_TOKENS), or None."""
    for name in usage.__struct_fields__:
        value = getattr(usage, name)
        if value > MAX_PLAUSIBLE_TOKENS:
            return f"{name} {value} is over {MAX_PLAUSIBLE_TOKENS:,}, more than any call bills"
    return None


def usage_from(raw: Mapping[str, Any] | None) -> Usage:
    """The usage of a response's usage object (or Gemini's usageMetadata), in any shape."""
    if not raw:
        return Usage()
    if "promptTokenCount" in raw or "candidatesTokenCount" in raw:
        return _gemini(raw)
    if "prompt_tokens" not in raw and "input_tokens" in raw:
        return _anthropic(raw)
    return _openai(raw)


def _openai(raw: Mapping[str, Any]) -> Usage:
    prompt = _int(raw, "prompt_tokens")
    completion = _int(raw, "completion_tokens")
    prompt_details = _map(raw, "prompt_tokens_details")
    completion_details = _map(raw, "completion_tokens_details")
    reasoning = _int(completion_details, "reasoning_tokens")
    unreported = max(_int(raw, "total_tokens") - prompt - completion, 0)
    cache_read = _int(prompt_details, "cached_tokens") or _int(raw, "cache_read_input_tokens")
    cache_write = _int(prompt_details, "cache_write_tokens") or _int(
        raw, "cache_creation_input_tokens"
    )
    return Usage(
        input_tokens=prompt,
        cached_input_tokens=min(cache_read, prompt),
        output_tokens=completion + unreported,
        cache_write_input_tokens=min(cache_write, max(prompt - cache_read, 0)),
        reasoning_tokens=reasoning + unreported,
        image_tokens=_int(prompt_details, "image_tokens"),
    )


def _anthropic(raw: Mapping[str, Any]) -> Usage:
    read = _int(raw, "cache_read_input_tokens")
    written = _int(raw, "cache_creation_input_tokens")
    return Usage(
        input_tokens=_int(raw, "input_tokens") + read + written,
        cached_input_tokens=read,
        output_tokens=_int(raw, "output_tokens"),
        cache_write_input_tokens=written,
    )


def _gemini(raw: Mapping[str, Any]) -> Usage:
    prompt = _int(raw, "promptTokenCount")
    thoughts = _int(raw, "thoughtsTokenCount")
    images = sum(
        _int(detail, "tokenCount")
        for detail in raw.get("promptTokensDetails") or ()
        if isinstance(detail, Mapping) and detail.get("modality") == "IMAGE"
    )
    return Usage(
        input_tokens=prompt,
        cached_input_tokens=min(_int(raw, "cachedContentTokenCount"), prompt),
        output_tokens=_int(raw, "candidatesTokenCount") + thoughts,
        reasoning_tokens=thoughts,
        image_tokens=images,
    )


def _int(raw: Mapping[str, Any], key: str) -> int:
    value = raw.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _map(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = raw.get(key)
    return value if isinstance(value, Mapping) else {}
