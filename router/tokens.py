"""Offline token estimates for text, chat messages and images, shared by router and simulator.

tiktoken downloads its vocabulary at run time, so we estimate BPE tokens from the text itself.
The text is cut into pieces and each piece costs:

- an ASCII word: 1 token per started 6 letters ("hello" 1, "waterproof" 2);
- a word in another alphabet (Cyrillic, Greek, accented Latin): 1 per started 3 letters;
- CJK (Chinese, Japanese kana, Korean): 1 token per character;
- a digit run: 1 per started 3 digits, as cl100k/o200k split numbers;
- a punctuation run: 1 per started 2 characters (``{"`` and ``",`` are single tokens);
- whitespace: a single space is free (BPE glues it to the next word), any other run is 1.

On English prose this lands within about 10% of cl100k/o200k (near 4 characters a token).
"""

from __future__ import annotations

import base64
import functools
import io
import json
import math
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from PIL import Image

from bus.memo import KEPT_CHARS, text_memo

LONG_COUNTS_KEPT = 8
"""Counts of this many texts over bus.memo.KEPT_CHARS are kept (the texts themselves stay
referenced: at most 8 times the 4 MiB request bound): each stage of a long prompt's request
asks for its count."""

MESSAGE_OVERHEAD_TOKENS = 3
"""OpenAI's per-message framing tokens (<|start|>role ... <|end|>)."""
REPLY_PRIMING_TOKENS = 3
"""Tokens that prime the assistant's reply, counted once per request."""
NAME_TOKENS = 1
"""Extra token when a message carries a name."""
LOW_DETAIL_TOKENS = 85
"""Tokens of a low-detail image, and the base cost of a high-detail one (gpt-4o class)."""
TILE_TOKENS = 170
"""Tokens per 512px tile of a high-detail image (gpt-4o class)."""
DEFAULT_IMAGE_SIZE = (1024, 1024)
"""Assumed size of an image whose size is unknown (an https URL without width/height)."""

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_PIECE = re.compile(
    rf"(?P<cjk>[{_CJK}]+)"
    r"|(?P<ascii>[A-Za-z]+)"
    r"|(?P<digits>\d+)"
    rf"|(?P<word>(?:(?![{_CJK}])[^\W\d_])+)"
    r"|(?P<space>\s+)"
    r"|(?P<punct>[^\w\s]+|_+)"
)
_CHARS_PER_TOKEN = {"cjk": 1, "ascii": 6, "digits": 3, "word": 3, "punct": 2}


def text_pieces(text: str) -> tuple[tuple[str, int], ...]:
    """The text as (piece, tokens) pairs in order; their tokens sum to count_text_tokens."""
    return _pieces(text)


def count_text_tokens(text: str) -> int:
    """Estimated BPE tokens of text (see the module docstring for the rule)."""
    return _count(text)


def count_joined_tokens(parts: Iterable[str]) -> int:
    """count_text_tokens("".join(parts)), from each part's cached count where that is exact.

    A piece never spans two characters of different kinds (letters, digits, CJK, whitespace,
    underscores, other punctuation), so where such kinds meet the counts simply add; where two
    parts meet on the same kind the piece may join across them, and those parts are counted
    joined. A packed prompt is its items' texts put together: counted this way, no item's text
    is walked again.
    """
    total = 0
    run: list[str] = []
    for part in parts:
        if not part:
            continue
        if run and _kind(run[-1][-1]) == _kind(part[0]):
            run.append(part)
            continue
        total += _count(run[0] if len(run) == 1 else "".join(run)) if run else 0
        run = [part]
    if run:
        total += _count(run[0] if len(run) == 1 else "".join(run))
    return total


@functools.lru_cache(maxsize=1024)
def _kind(char: str) -> str:
    """The kind of piece a character starts, with ASCII and other letters as one kind (an
    accented letter's piece takes the ASCII letters that follow it)."""
    match = _PIECE.match(char)
    kind = (match.lastgroup if match else None) or "punct"
    if kind in ("ascii", "word"):
        return "letter"
    return "underscore" if char == "_" else kind


# Memoised: system prompts and few-shot examples repeat in nearly every request (long texts
# are not kept: bus.memo).
@text_memo(2048)
def _pieces(text: str) -> tuple[tuple[str, int], ...]:
    pieces = []
    for match in _PIECE.finditer(text):
        kind = match.lastgroup or "punct"
        piece = match.group()
        if kind == "space":
            pieces.append((piece, 0 if piece == " " else 1))
        else:
            pieces.append((piece, -(-len(piece) // _CHARS_PER_TOKEN[kind])))
    return tuple(pieces)


@text_memo(2048, long_kept=LONG_COUNTS_KEPT)
def _count(text: str) -> int:
    if len(text) > KEPT_CHARS:  # its pieces are not kept: count them as they come
        return _count_unkept(text)
    return sum(tokens for _, tokens in _pieces(text))


def _count_unkept(text: str) -> int:
    """_count of a long text without building its pieces (about 30 bytes a character)."""
    total = 0
    for match in _PIECE.finditer(text):  # as _pieces, summed instead of kept
        kind = match.lastgroup or "punct"
        piece = match.group()
        if kind == "space":
            total += 0 if piece == " " else 1
        else:
            total += -(-len(piece) // _CHARS_PER_TOKEN[kind])
    return total


def image_tokens(width: int, height: int, detail: str = "auto") -> int:
    """Tokens of one image by OpenAI's tile rule for gpt-4o class models.

    "low" is a flat 85. "high" (and "auto") fits the image within 2048x2048, then shrinks it
    so the shortest side is 768 (never enlarging), and costs 170 per 512px tile plus 85.
    """
    if detail == "low":
        return LOW_DETAIL_TOKENS
    w, h = max(width, 1), max(height, 1)
    if max(w, h) > 2048:
        scale = 2048 / max(w, h)
        w, h = round(w * scale), round(h * scale)
    if min(w, h) > 768:
        scale = 768 / min(w, h)
        w, h = round(w * scale), round(h * scale)
    tiles = math.ceil(w / 512) * math.ceil(h / 512)
    return TILE_TOKENS * tiles + LOW_DETAIL_TOKENS


PATCH_PX = 32
"""Side of an OpenAI patch (gpt-4.1-mini/-nano, o4-mini, gpt-5-mini/-nano)."""
MAX_PATCHES = 1536
"""Patches an OpenAI patch-rule image is scaled down to at most."""
ANTHROPIC_LONG_EDGE = 1568
"""Anthropic scales an image so its long edge is at most this many pixels."""
ANTHROPIC_PIXELS_PER_TOKEN = 750
ANTHROPIC_MAX_TOKENS = 1600
"""About the most one image costs on Claude (1.15 megapixels)."""
GEMINI_TILE_TOKENS = 258
"""Tokens of a small image (both sides <= 384px), or of each 768px tile of a larger one."""
GEMINI_SMALL_PX = 384
GEMINI_TILE_PX = 768


def image_tokens_by_rule(rule: str, width: int, height: int, detail: str = "auto") -> int:
    """Tokens of one image under a provider's rule, as the catalog names it (prices.toml):
    "tile:BASE:PER_TILE", "patch:MULTIPLIER", "anthropic", "gemini" or "none".

    Rounded up wherever a provider's arithmetic leaves a fraction: this feeds reservations.
    """
    w, h = max(width, 1), max(height, 1)
    kind, _, args = rule.partition(":")
    if kind == "tile":
        base, per_tile = (int(n) for n in args.split(":"))
        if detail == "low":
            return base
        return base + per_tile * _tiles_512(w, h)
    if kind == "patch":
        return math.ceil(_patches(w, h) * float(args))
    if kind == "anthropic":
        if max(w, h) > ANTHROPIC_LONG_EDGE:
            scale = ANTHROPIC_LONG_EDGE / max(w, h)
            w, h = math.ceil(w * scale), math.ceil(h * scale)
        return min(math.ceil(w * h / ANTHROPIC_PIXELS_PER_TOKEN), ANTHROPIC_MAX_TOKENS)
    if kind == "gemini":
        if w <= GEMINI_SMALL_PX and h <= GEMINI_SMALL_PX:
            return GEMINI_TILE_TOKENS
        tiles = math.ceil(w / GEMINI_TILE_PX) * math.ceil(h / GEMINI_TILE_PX)
        return GEMINI_TILE_TOKENS * tiles
    if kind == "none":
        return 0
    raise ValueError(f"unknown image rule {rule!r}")


def _tiles_512(w: int, h: int) -> int:
    """OpenAI's 512px tiles after fitting 2048x2048 and shrinking the short side to 768."""
    if max(w, h) > 2048:
        scale = 2048 / max(w, h)
        w, h = round(w * scale), round(h * scale)
    if min(w, h) > 768:
        scale = 768 / min(w, h)
        w, h = round(w * scale), round(h * scale)
    return math.ceil(w / 512) * math.ceil(h / 512)


def _patches(w: int, h: int) -> int:
    """OpenAI's 32px patches covering the image, scaled down to at most 1536."""
    patches = math.ceil(w / PATCH_PX) * math.ceil(h / PATCH_PX)
    if patches <= MAX_PATCHES:
        return patches
    shrink = math.sqrt(PATCH_PX * PATCH_PX * MAX_PATCHES / (w * h))
    w2, h2 = w * shrink, h * shrink
    # Then scaled again so a whole number of patches spans the width (OpenAI's second step).
    fit = math.floor(w2 / PATCH_PX) / (w2 / PATCH_PX)
    w2, h2 = w2 * fit, h2 * fit
    return min(math.ceil(w2 / PATCH_PX) * math.ceil(h2 / PATCH_PX), MAX_PATCHES)


def image_size_from_data_url(url: str) -> tuple[int, int] | None:
    """(width, height) of a base64 data: URL image, or None (https URL, undecodable data).

    Read from the first IMAGE_HEAD_CHARS of its base64, where image formats keep their size
    (and memoised by that head: the same head is the same size); only an image whose size
    lies further in (a long EXIF block before a JPEG's frame) is decoded whole, unkept."""
    if not url.startswith("data:"):
        return None
    header, sep, payload = url.partition(",")
    if not sep or not header.endswith(";base64"):
        return None
    head = payload[:IMAGE_HEAD_CHARS]
    size = _image_size(head)
    if size is None and len(payload) > len(head):
        size = _read_size(payload)
    return size


IMAGE_HEAD_CHARS = 65_536
"""Base64 characters (48 KiB of image) read for an image's size before the whole of it."""


@text_memo(256, max_chars=IMAGE_HEAD_CHARS)
def _image_size(payload: str) -> tuple[int, int] | None:
    return _read_size(payload)


def _read_size(payload: str) -> tuple[int, int] | None:
    """The size in an image's header, from its base64 (whole or a head of it), or None."""
    try:
        raw = base64.b64decode(payload, validate=False)
        # Only the header is read; a huge image is no bomb here, so Pillow need not warn.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw)) as image:
                width, height = image.size
    except Exception:  # untrusted bytes, maybe cut short: any failure means no size here
        return None
    return width, height


def image_part_tokens(image_url: Mapping[str, Any], rule: str | None = None) -> int:
    """Tokens of an image_url part; size from its data: URL, our width/height keys, or 1024x1024.

    Without a rule, gpt-4o's tile rule (the router's model-independent estimate); with one,
    that provider's rule for the model (cost_ledger catalog's image_rule).
    """
    detail = str(image_url.get("detail") or "auto")
    if rule is None and detail == "low":
        return LOW_DETAIL_TOKENS
    width, height = image_part_size(image_url)
    if rule is None:
        return image_tokens(width, height, detail)
    return image_tokens_by_rule(rule, width, height, detail)


def image_part_size(image_url: Mapping[str, Any]) -> tuple[int, int]:
    """(width, height) of an image_url part: from its data: URL, its width/height, or 1024x1024."""
    size = image_size_from_data_url(str(image_url.get("url", "")))
    if size is None:
        width, height = image_url.get("width"), image_url.get("height")
        if isinstance(width, int) and isinstance(height, int):
            size = (width, height)
        else:
            size = DEFAULT_IMAGE_SIZE
    return size


def message_pieces(messages: Iterable[Mapping[str, Any]]) -> Iterator[tuple[str, int]]:
    """Every message as (piece, tokens) pairs in order: framing, role, name, content, images.

    An image piece is its URL with its image tokens, so equal images hash equal.
    """
    for message in messages:
        role = str(message.get("role", ""))
        yield f"<|{role}|>", MESSAGE_OVERHEAD_TOKENS + count_text_tokens(role)
        name = message.get("name")
        if isinstance(name, str):
            yield name, NAME_TOKENS + count_text_tokens(name)
        yield from _content_pieces(message.get("content"))
        tool_calls = message.get("tool_calls")
        if tool_calls:
            yield from text_pieces(json.dumps(tool_calls, sort_keys=True))


def count_messages_tokens(messages: Iterable[Mapping[str, Any]]) -> int:
    """Prompt tokens of OpenAI chat messages: text, images and OpenAI's framing overhead.

    The sum of message_pieces, from each text's cached count: a request's prompt is counted by
    several stages, and walking a long text's pieces each time cost the router more than the
    rest of the count."""
    return sum(count_message_tokens(m) for m in messages) + REPLY_PRIMING_TOKENS


def tool_pieces(tools: Iterable[Mapping[str, Any]]) -> tuple[tuple[str, int], ...]:
    """Tool definitions as (piece, tokens) pairs, as a provider puts them ahead of the messages.

    Each definition is estimated from its canonical JSON; providers render them in their own
    syntax, of about the same size.
    """
    listed = list(tools)
    return _tool_pieces(json.dumps(listed, sort_keys=True)) if listed else ()


def count_tools_tokens(tools: Iterable[Mapping[str, Any]]) -> int:
    """Prompt tokens that tool definitions add to a request (the sum of tool_pieces)."""
    listed = list(tools)
    if not listed:
        return 0
    return MESSAGE_OVERHEAD_TOKENS + count_text_tokens(json.dumps(listed, sort_keys=True))


def count_message_tokens(message: Mapping[str, Any]) -> int:
    """Tokens of one OpenAI chat message: the sum of its message_pieces, from cached counts.

    Much faster than walking the pieces when long texts repeat (conversation histories).
    """
    role = str(message.get("role", ""))
    total = MESSAGE_OVERHEAD_TOKENS + count_text_tokens(role)
    name = message.get("name")
    if isinstance(name, str):
        total += NAME_TOKENS + count_text_tokens(name)
    content = message.get("content")
    if isinstance(content, str):
        total += count_text_tokens(content)
    elif isinstance(content, list):
        for part in content:
            if not isinstance(part, Mapping):
                continue
            if part.get("type") == "text":
                total += count_text_tokens(str(part.get("text", "")))
            elif part.get("type") == "image_url":
                image_url = part.get("image_url")
                if isinstance(image_url, Mapping):
                    total += image_part_tokens(image_url)
    tool_calls = message.get("tool_calls")
    if tool_calls:
        total += count_text_tokens(json.dumps(tool_calls, sort_keys=True))
    return total


@text_memo(256)
def _tool_pieces(tools_json: str) -> tuple[tuple[str, int], ...]:
    return (("<|tools|>", MESSAGE_OVERHEAD_TOKENS), *text_pieces(tools_json))


def _content_pieces(content: object) -> Iterator[tuple[str, int]]:
    if isinstance(content, str):
        yield from text_pieces(content)
        return
    if not isinstance(content, list):
        return
    for part in content:
        if not isinstance(part, Mapping):
            continue
        if part.get("type") == "text":
            yield from text_pieces(str(part.get("text", "")))
        elif part.get("type") == "image_url":
            image_url = part.get("image_url")
            if isinstance(image_url, Mapping):
                yield str(image_url.get("url", "")), image_part_tokens(image_url)
