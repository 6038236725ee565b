"""Draws the sample catalog's product photos (simple generated pictures, no third-party images).

Run it again with `python -m agents.samples.make_photos` after editing catalog.json.
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).parent


def draw(label: str, colour: str, shape: str, size: int = 256) -> Image.Image:
    """A product-ish picture: a coloured shape on a light background, with a label."""
    image = Image.new("RGB", (size, size), "#f4f1ea")
    pen = ImageDraw.Draw(image)
    box = (size // 5, size // 5, size * 4 // 5, size * 4 // 5)
    if shape == "circle":
        pen.ellipse(box, fill=colour, outline="#222222", width=3)
    elif shape == "triangle":
        pen.polygon([(size // 2, size // 6), box[0:2][::-1], (box[2], box[3])], fill=colour)
    else:
        pen.rounded_rectangle(box, radius=18, fill=colour, outline="#222222", width=3)
    pen.text((10, size - 24), label[:36], fill="#111111")
    return image


def main() -> None:
    """Write one PNG per photo named in catalog.json."""
    catalog = json.loads((HERE / "catalog.json").read_text())
    for product in catalog["products"]:
        for photo in product["photos"]:
            image = draw(product["title_hint"], photo["colour"], photo["shape"])
            image.save(HERE / "photos" / photo["file"], optimize=True)


if __name__ == "__main__":
    main()
