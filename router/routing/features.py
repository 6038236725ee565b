"""Content features of a request, as the router sees it at request time (no I/O).

The features are what the routing policy and the learned router look at: the prompt's length
in tokens, its images, how demanding its output schema is, and reasoning cues in the text
(arithmetic, multi-step instructions, code). ``heuristic_complexity`` folds them into one
0..1 score; it is a hand-set prior, used until a learned score exists for the task type.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from bus.messages import LlmRequest
from router.providers.messages import openai_messages
from router.tokens import (
    count_messages_tokens,
    image_part_size,
    image_part_tokens,
    image_tokens_by_rule,
)

# Cue patterns: each match is one piece of evidence; the score saturates after a few. They
# run on the lower-cased text (as IGNORECASE would match), and each starts with a lookahead
# on the characters a match can begin with, which makes a scan ~2.5x faster (routing runs
# them on every request).
_MATH = re.compile(
    r"(?=[\d$hcstpaeird])(?:(?<!\d)\d+\s*[-+*/x×÷^=%]\s*\d+|\$\s?\d|(?<!\d)\d+(?:\.\d+)?\s?%"
    r"|\b(?:how many|how much|calculate|compute|solve|sum|total|percent|average|ratio"
    r"|equation|integral|derivative|probability|prove)\b)"
)
_MULTI_STEP = re.compile(
    r"(?=[sftnaecjpr])\b(?:step by step|first|then|next|finally|after that|each|every"
    r"|compare|explain why|justify|analy[sz]e|plan|reason)\b|^[ \t]*(?:\d+[.)]|[-*])\s",
    re.MULTILINE,
)
_CODE = re.compile(
    r"(?=[`dcfrsi={};])(?:```|\bdef |\bclass |\bfunction\b|\breturn\b|=>|\bselect\b"
    r"|\bimport \w|[{};]\s*$)",
    re.MULTILINE,
)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")

CUE_SATURATION = 4
"""Matches of one cue at which its strength reaches 1."""


@dataclass(frozen=True, kw_only=True)
class TextCues:
    """Reasoning cues found in a prompt's text, each a strength in 0..1."""

    math: float
    """Arithmetic, quantities and math vocabulary."""
    multi_step: float
    """Sequenced instructions, enumerations, 'explain why'."""
    code: float
    """Source code or code vocabulary."""
    numbers: int
    """How many numbers the text holds."""


@dataclass(frozen=True, kw_only=True)
class RequestFeatures:
    """What the router knows about a request before choosing a model."""

    task_type: str
    input_tokens: int
    """Estimated prompt tokens, images and framing included (router.tokens)."""
    max_output_tokens: int
    images: int
    image_tokens: int
    has_schema: bool
    """Whether the answer must validate against a JSON schema (a checkable output)."""
    schema_fields: int
    """Properties in the output schema, nested ones included."""
    schema_depth: int
    """Nesting depth of objects and arrays in the output schema."""
    cues: TextCues
    complexity: float
    """0..1: how likely a cheap model is to fall short (heuristic, or a learned score)."""
    image_sizes: tuple[tuple[int, int, str], ...] = ()
    """(width, height, detail) of each image, for each model's own image rule."""
    counted_image_tokens: int = 0
    """The images' part of input_tokens (gpt-4o's tile rule, as router.tokens counts them)."""

    def input_tokens_on(self, image_rule: str) -> int:
        """input_tokens with the images counted by a model's own rule (prices.toml): a photo
        costs gpt-4o-mini 33 times the tokens it costs gpt-4o."""
        if not self.image_sizes:
            return self.input_tokens
        images = sum(image_tokens_by_rule(image_rule, w, h, d) for w, h, d in self.image_sizes)
        return self.input_tokens - self.counted_image_tokens + images

    @property
    def needs_vision(self) -> bool:
        """Whether only a vision model can serve the request."""
        return self.images > 0


CUE_CHARS = 65_536
"""Characters of a request's text its cues are read from (the first ones): the cues
saturate long before (CUE_SATURATION matches), and reading a 4 MiB prompt whole took
seconds of the router's loop."""


def text_cues(text: str) -> TextCues:
    """The reasoning cues of a text (of its first CUE_CHARS characters)."""
    text = text[:CUE_CHARS]
    low = text.lower()
    return TextCues(
        math=_strength(_MATH, low),
        multi_step=_strength(_MULTI_STEP, low),
        code=_strength(_CODE, low),
        numbers=len(_NUMBER.findall(text)),
    )


def request_text(request: LlmRequest) -> str:
    """All text of a request's messages, joined by newlines (what the learned router reads)."""
    return "\n".join(text for message in request.messages for text in message.texts())


def extract(request: LlmRequest, *, complexity: float | None = None) -> RequestFeatures:
    """The features of a request; complexity is the heuristic one unless given (e.g. learned)."""
    image_parts = [part for message in request.messages for part in message.images()]
    image_tokens = sum(
        image_part_tokens({"url": p.url, "detail": p.detail, "width": p.width, "height": p.height})
        for p in image_parts
    )
    sizes = tuple(
        (*image_part_size({"url": p.url, "width": p.width, "height": p.height}), p.detail)
        for p in image_parts
    )
    counted = sum(image_part_tokens({"url": p.url, "detail": p.detail}) for p in image_parts)
    schema = request.output_schema.schema if request.output_schema is not None else None
    fields, depth = schema_size(schema) if schema is not None else (0, 0)
    features = RequestFeatures(
        task_type=request.task_type,
        input_tokens=count_messages_tokens(openai_messages(request.messages)),
        max_output_tokens=request.max_output_tokens,
        images=len(image_parts),
        image_tokens=image_tokens,
        has_schema=schema is not None,
        schema_fields=fields,
        schema_depth=depth,
        cues=text_cues(request_text(request)),
        complexity=0.0,
        image_sizes=sizes,
        counted_image_tokens=counted,
    )
    score = heuristic_complexity(features) if complexity is None else complexity
    return replace(features, complexity=_unit(score))


def heuristic_complexity(features: RequestFeatures) -> float:
    """A hand-set 0..1 complexity from content features (a prior, not a measured quantity).

    Each part adds at most its weight: length (log scale, 100 to 8,000 tokens) 0.2, images
    0.15, schema size 0.15, math 0.25, multi-step 0.2, code 0.2; the sum is capped at 1.
    """
    length = _unit((math.log10(max(features.input_tokens, 1)) - 2) / (math.log10(8000) - 2))
    images = min(features.images, 2) / 2
    schema = _unit(features.schema_fields / 20 + max(features.schema_depth - 1, 0) / 4)
    cues = features.cues
    score = (
        0.2 * length
        + 0.15 * images
        + 0.15 * schema
        + 0.25 * cues.math
        + 0.2 * cues.multi_step
        + 0.2 * cues.code
    )
    return round(min(score, 1.0), 4)


def schema_size(schema: Mapping[str, object]) -> tuple[int, int]:
    """(properties, nesting depth) of a JSON schema, counting nested objects and array items."""
    fields = 0
    depth = 0
    properties = schema.get("properties")
    if isinstance(properties, Mapping):
        fields += len(properties)
        for sub in properties.values():
            if isinstance(sub, Mapping):
                sub_fields, sub_depth = schema_size(sub)
                fields += sub_fields
                depth = max(depth, sub_depth)
        depth += 1
    items = schema.get("items")
    if isinstance(items, Mapping):
        sub_fields, sub_depth = schema_size(items)
        fields += sub_fields
        depth = max(depth, sub_depth + 1)
    return fields, depth


def _strength(pattern: re.Pattern[str], text: str) -> float:
    hits = sum(1 for _ in zip(range(CUE_SATURATION), pattern.finditer(text), strict=False))
    return hits / CUE_SATURATION


def _unit(value: float) -> float:
    return min(max(value, 0.0), 1.0)
