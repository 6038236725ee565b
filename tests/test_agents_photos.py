"""Photos are resized before models see them, and hashed so a repeat is recognised."""

from __future__ import annotations

import asyncio
import io
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import cast

import pytest
from faststream.nats import NatsBroker
from PIL import Image, ImageDraw

from agents import upload
from agents.photos import (
    PhotoError,
    PhotoTooLargeError,
    PreparedPhoto,
    check_photo,
    hash_chunks,
    prepare,
    same_picture,
)
from agents.product_input import PhotoFile
from agents.stores import Stores
from agents.upload import Uploader
from router.tokens import image_part_tokens

SIDES = {"low": 512, "high": 1024}


def photo(colour: str, size: tuple[int, int] = (2000, 1500), fmt: str = "PNG") -> bytes:
    """A product-ish picture: a coloured disc with a stripe on a light background."""
    image = Image.new("RGB", size, "#f4f1ea")
    pen = ImageDraw.Draw(image)
    w, h = size
    pen.ellipse((w // 5, h // 5, w * 3 // 5, h * 4 // 5), fill=colour)
    pen.rectangle((w * 2 // 3, h // 6, w * 5 // 6, h * 5 // 6), fill="#333333")
    out = io.BytesIO()
    image.save(out, format=fmt, quality=80)
    return out.getvalue()


def test_renditions_fit_the_detail_they_are_sent_at() -> None:
    prepared = prepare(photo("#c03030"), SIDES)
    assert (prepared.width, prepared.height) == (2000, 1500)
    low, high = prepared.renditions["low"], prepared.renditions["high"]
    assert (low.width, low.height) == (512, 384)
    assert (high.width, high.height) == (1024, 768)
    assert len(low.data) < len(high.data)
    # The tile rule: the high rendition costs 4 tiles (765 tokens), the original would too,
    # but a low one is a flat 85 whatever its size.
    size = {"width": high.width, "height": high.height}
    assert image_part_tokens({"url": "https://x", "detail": "high", **size}) == 765
    assert image_part_tokens({"url": "https://x", "detail": "low", **size}) == 85


def test_small_photos_are_never_enlarged() -> None:
    prepared = prepare(photo("#c03030", (300, 200)), SIDES)
    assert {(r.width, r.height) for r in prepared.renditions.values()} == {(300, 200)}


def test_the_same_picture_re_encoded_is_recognised_a_colour_variant_is_not() -> None:
    original = prepare(photo("#c03030"), SIDES).phash
    smaller_jpeg = prepare(photo("#c03030", (1000, 750), "JPEG"), SIDES).phash
    blue = prepare(photo("#3050c0"), SIDES).phash
    assert same_picture(original, smaller_jpeg)
    assert set(hash_chunks(original)) & set(hash_chunks(smaller_jpeg))  # found by the index
    assert not same_picture(original, blue)


def test_unreadable_uploads_are_refused() -> None:
    try:
        prepare(b"not a photo", SIDES)
    except ValueError as exc:
        assert "not a readable image" in str(exc)
    else:
        raise AssertionError("a non-image was accepted")


def test_a_photo_file_is_checked_by_its_header_and_named_when_it_is_not_one(
    tmp_path: Path,
) -> None:
    good = tmp_path / "good.png"
    good.write_bytes(photo("#c03030", (40, 30)))
    check_photo(good)
    (tmp_path / "photo.jpg").write_text("hello this is not a png\n")
    with pytest.raises(PhotoError, match="^not a readable image$"):
        check_photo(tmp_path / "photo.jpg")
    with pytest.raises(FileNotFoundError):  # not the image's fault: raised as it is
        check_photo(tmp_path / "gone.png")
    huge = io.BytesIO()
    Image.new("1", (9000, 9000)).save(huge, format="PNG")
    (tmp_path / "huge.png").write_bytes(huge.getvalue())
    with pytest.raises(PhotoTooLargeError, match="9000x9000 is over"):
        check_photo(tmp_path / "huge.png")


def test_a_photo_damaged_past_its_header_is_named_by_the_uploader(tmp_path: Path) -> None:
    """check_photo reads headers only; the upload decodes, and names the file that fails."""
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(photo("#c03030", (400, 300))[:200])
    check_photo(truncated)
    uploader = Uploader(cast(NatsBroker, None))
    with pytest.raises(PhotoError, match=rf"^{re.escape(str(truncated))}: not a readable image"):
        asyncio.run(
            uploader._store_photo(cast(Stores, None), "t", "wf", 0, PhotoFile.at(truncated))
        )


def test_a_huge_photo_is_shrunk_before_it_is_copied(tmp_path: Path) -> None:
    """Found by review: a 186 KB PNG of 8000x8000 pixels took about 800 MB to prepare (four
    full-size copies); shrunk in place after decoding, it takes one. Measured in a process of
    its own (its peak resident memory), well apart from either figure."""
    image = Image.new("RGB", (8000, 7999))
    path = tmp_path / "huge.png"
    image.save(path, format="PNG", compress_level=9)
    del image
    # VmHWM, the process's own peak: getrusage's ru_maxrss keeps the peak of the image it was
    # forked from across exec (the test worker's, 1.4 GB in a full run)
    script = (
        "import re, sys\n"
        "from agents.photos import prepare\n"
        "p = prepare(open(sys.argv[1], 'rb').read(), {'low': 512, 'high': 1024})\n"
        "status = open('/proc/self/status').read()\n"
        "peak = int(re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1)) // 1024\n"
        "print(p.width, p.height, p.renditions['high'].width, peak)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True,
                          text=True, check=True, timeout=120)  # fmt: skip
    width, height, side, peak_mb = (int(n) for n in done.stdout.split())
    assert (width, height, side) == (8000, 7999, 1024)
    assert peak_mb < 600, f"{peak_mb} MB"  # 807 MB before, 355 MB after (8000x7999 RGB)


async def test_photos_are_prepared_on_their_own_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not on the default pool, where they starved the router's schema checks (review)."""
    seen: list[str] = []

    def recording(data: bytes, sides: dict[str, int]) -> PreparedPhoto:
        seen.append(threading.current_thread().name)
        raise PhotoError("stop here")

    monkeypatch.setattr(upload, "prepare", recording)
    uploader = upload.Uploader(cast(NatsBroker, None))
    photo = PhotoFile(name="p.png", data=b"x")
    with pytest.raises(PhotoError):
        await uploader._store_photo(cast(Stores, None), "t", "wf", 0, photo)
    assert seen and seen[0].startswith("flipsync-photos")
