"""Splitting a packed answer into its items, each validated against its own request's schema."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from router.tokens import count_text_tokens
from router.validation import parse_answer


@dataclass(frozen=True, kw_only=True)
class ItemAnswer:
    """One item of a packed answer: its answer when valid, else the problem."""

    index: int
    content: str = ""
    """The item's answer as JSON text, as if the request had been answered alone."""
    parsed: object | None = None
    problem: str = ""
    """Why the item has no valid answer ("" when it has one)."""
    output_tokens: int = 0
    """Estimated output tokens the item took in the packed answer (0 when missing)."""

    @property
    def ok(self) -> bool:
        """Whether the item has an answer valid for its schema."""
        return not self.problem


def split_answer(
    content: str, schemas: Sequence[dict[str, object]], *, inline: bool = False
) -> list[ItemAnswer]:
    """One ItemAnswer per schema, in order: found by its index, validated on its own.

    inline: each item is the answer itself with an "index" key added (see
    ``router.batching.prompt``); else it is {"index": i, "answer": ...}. A missing,
    duplicated-later or invalid item gets a problem; the others stand.
    """
    count = len(schemas)
    try:
        decoded = msgspec.json.decode(content)
    except (msgspec.DecodeError, RecursionError) as exc:  # deep nesting: RecursionError
        return _all_missing(count, f"the packed answer is not JSON: {exc}")
    entries = decoded.get("items") if isinstance(decoded, dict) else None
    if not isinstance(entries, list):
        return _all_missing(count, 'the packed answer has no "items" array')
    found: dict[int, object] = {}
    for entry in entries:
        if not isinstance(entry, dict) or not (inline or "answer" in entry):
            continue
        index = entry.get("index")
        if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < count:
            answer = {k: v for k, v in entry.items() if k != "index"} if inline else entry["answer"]
            found.setdefault(index, answer)  # a later duplicate does not override
    answers = []
    for i, schema in enumerate(schemas):
        if i not in found:
            answers.append(ItemAnswer(index=i, problem=f"item {i} is missing from the answer"))
            continue
        text = msgspec.json.encode(found[i]).decode()
        parsed, problem = parse_answer(text, schema)
        tokens = count_text_tokens(text)
        answers.append(
            ItemAnswer(index=i, content=text, parsed=parsed, problem=problem, output_tokens=tokens)
        )
    return answers


def _all_missing(count: int, problem: str) -> list[ItemAnswer]:
    return [ItemAnswer(index=i, problem=problem) for i in range(count)]
