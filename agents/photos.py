"""Photo preparation, pure: perceptual hash and the resized renditions sent to models.

Models never get the seller's original. Low detail costs a flat 85 tokens whatever the size,
and OpenAI looks at 512 px of it, so its rendition is 512 px on the longest side. High detail
costs 170 tokens per 512 px tile after OpenAI's own scaling; 1024 px on the longest side is
at most 4 tiles, enough to read a label or spot a scratch. Both are JPEG: far smaller to
carry over NATS than the PNG or HEIC a phone produces.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import imagehash
from PIL import Image, ImageOps, UnidentifiedImageError

JPEG_QUALITY = 85
MAX_PIXELS = 64_000_000
"""Larger uploads are refused rather than decoded (a decompression bomb guard)."""
MAX_PHASH_BITS = 6
"""pHash bits (of 64) two photos of the same picture may differ by."""
INDEX_PARTS = 4
"""Near-duplicate lookup cuts the pHash in this many parts (finds up to 3 flipped bits for
sure, more when the flips fall in the same parts)."""


class PhotoError(ValueError):
    """An uploaded file that is not a photo we can read."""


class PhotoTooLargeError(PhotoError):
    """A photo with more pixels than we decode (a decompression bomb, say)."""


@dataclass(frozen=True, kw_only=True)
class Rendition:
    """A resized JPEG of a photo."""

    data: bytes
    width: int
    height: int


@dataclass(frozen=True, kw_only=True)
class PreparedPhoto:
    """What an upload keeps of one photo besides the original bytes."""

    width: int
    height: int
    content_type: str
    phash: str
    renditions: dict[str, Rendition]


def check_photo(path: Path) -> None:
    """Raise PhotoError unless the file at path opens as an image of at most MAX_PIXELS.

    Reads its header only (no pixels decoded): quick enough to check every photo of a
    catalog before anything is uploaded. A file damaged further in fails in prepare.
    OSError (a file that cannot be read at all) is raised as it is.
    """
    with _untrusted():
        _open(path).close()


def prepare(data: bytes, sides: dict[str, int]) -> PreparedPhoto:
    """Hash a photo and make one rendition per detail level (longest side given by sides).

    Raises PhotoError for data that is not a readable image.
    """
    largest = 2 * max(sides.values(), default=1)
    with _untrusted():
        image = _open(io.BytesIO(data))
        width, height = image.size
        image.draft(image.mode, (largest, largest))  # a JPEG is decoded at a reduced scale
        image.load()
    with image:
        content_type = Image.MIME.get(image.format or "", "application/octet-stream")
        if max(image.size) > largest:
            # Shrunk in place before any copy: an 8000x8000 photo held four full-size
            # copies (about 800 MB for a 186 KB PNG; found by review), now one.
            image.thumbnail((largest, largest), Image.Resampling.LANCZOS)
        upright = ImageOps.exif_transpose(image).convert("RGB")
        renditions = {detail: _rendition(upright, side) for detail, side in sides.items()}
        return PreparedPhoto(
            width=width,
            height=height,
            content_type=content_type,
            phash=photo_hash(upright),
            renditions=renditions,
        )


@contextlib.contextmanager
def _untrusted() -> Iterator[None]:
    """Decoding untrusted bytes: any decoder failure is the image's fault (PhotoError), too
    many pixels is PhotoTooLargeError; an OSError with an errno (the file) is not caught."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise PhotoTooLargeError(f"the image has too many pixels: {exc}") from exc
    except PhotoError:
        raise
    except UnidentifiedImageError as exc:  # not an image format at all
        raise PhotoError("not a readable image") from exc
    except OSError as exc:
        if exc.errno is not None:  # no such file, no permission: not the image's fault
            raise
        raise PhotoError(f"not a readable image ({exc})") from exc
    except Exception as exc:
        raise PhotoError(f"not a readable image ({type(exc).__name__})") from exc


def _open(source: Path | io.BytesIO) -> Image.Image:
    """The image at source, its header read and its size checked, no pixels decoded yet."""
    image = Image.open(source)
    if image.width * image.height > MAX_PIXELS:
        image.close()
        raise PhotoTooLargeError(f"{image.width}x{image.height} is over {MAX_PIXELS} pixels")
    return image


def photo_hash(image: Image.Image) -> str:
    """Perceptual hash (64-bit DCT pHash) and a coarse colour signature, as one subject token.

    The pHash is computed on grey levels, so a red and a blue variant of one product,
    photographed alike, would share it; the colour signature (the mean colour of each
    quarter of the picture, 16 levels a channel) keeps their analyses apart.
    """
    grid = image.convert("RGB").resize((2, 2), Image.Resampling.BOX)
    levels = [channel // 16 for channel in grid.tobytes()]
    return f"{imagehash.phash(image)}-{''.join(f'{level:x}' for level in levels)}"


def same_picture(a: str, b: str, *, max_bits: int = MAX_PHASH_BITS) -> bool:
    """Whether two photo hashes are the same picture: pHash within max_bits of 64, and each
    colour level within one step (JPEG re-encoding moves colours a little, a variant a lot)."""
    (pa, _, ca), (pb, _, cb) = a.partition("-"), b.partition("-")
    if len(pa) != len(pb) or len(ca) != len(cb):
        return False
    bits = (int(pa, 16) ^ int(pb, 16)).bit_count()
    colours = max((abs(int(x, 16) - int(y, 16)) for x, y in zip(ca, cb, strict=True)), default=0)
    return bits <= max_bits and colours <= 1


def hash_chunks(phash: str, parts: int = INDEX_PARTS) -> list[str]:
    """The pHash cut into parts: a picture within parts-1 flipped bits shares one of them."""
    hex_part = phash.partition("-")[0]
    size = len(hex_part) // parts
    return [f"{i}{hex_part[i * size : (i + 1) * size]}" for i in range(parts)]


def _rendition(image: Image.Image, longest: int) -> Rendition:
    copy = image.copy()
    copy.thumbnail((longest, longest), Image.Resampling.LANCZOS)  # never enlarges
    out = io.BytesIO()
    copy.save(out, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return Rendition(data=out.getvalue(), width=copy.width, height=copy.height)
