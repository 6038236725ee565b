"""A product source handed to `flipsync upload` reads only files inside its folder, and
refuses bad photos and text by name before anything is uploaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from agents.limits import MAX_PHOTO_BYTES, MAX_PHOTOS
from agents.source_files import SourceError
from agents.sources import load_source

SECRET = "AWS_SECRET_ACCESS_KEY=do-not-send"


def _png(path: Path, colour: str = "red") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 16), colour).save(path)
    return path


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the product source, holding what the seller did not hand in."""
    folder = tmp_path / "home"
    _png(folder / "private.png", "blue")
    (folder / "credentials").write_text(SECRET)
    return folder


def _product_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "upload" / "mug"
    _png(folder / "front.png")
    return folder


def test_a_notes_symlink_out_of_the_folder_is_refused(tmp_path: Path, outside: Path) -> None:
    folder = _product_folder(tmp_path)
    (folder / "notes.txt").symlink_to(outside / "credentials")
    for source in (folder, folder.parent):  # one product, or a folder of products
        with pytest.raises(SourceError, match="leads outside") as caught:
            load_source(source)
        assert SECRET not in str(caught.value)


def test_a_photo_symlink_out_of_the_folder_is_refused(tmp_path: Path, outside: Path) -> None:
    folder = _product_folder(tmp_path)
    (folder / "back.png").symlink_to(outside / "private.png")
    with pytest.raises(SourceError, match=r"back\.png: leads outside"):
        load_source(folder)


def test_a_product_folder_symlinked_from_elsewhere_is_refused(
    tmp_path: Path, outside: Path
) -> None:
    products = tmp_path / "upload"
    _png(products / "mug" / "front.png")
    (products / "stolen").symlink_to(outside)
    with pytest.raises(SourceError, match="stolen: leads outside"):
        load_source(products)


@pytest.mark.parametrize("name", ["../home/private.png", "{outside}/private.png"])
def test_csv_photos_outside_the_csv_folder_are_refused(
    tmp_path: Path, outside: Path, name: str
) -> None:
    folder = tmp_path / "upload"
    folder.mkdir()
    photo = name.format(outside=outside)
    csv = folder / "products.csv"
    csv.write_text(f"product_id,title,photos\nmug-1,Blue mug,{photo}\n")
    with pytest.raises(SourceError, match="leads outside"):
        load_source(csv)
    with pytest.raises(SourceError, match="leads outside"):
        load_source(folder)


def test_catalog_photos_outside_the_catalog_folder_are_refused(
    tmp_path: Path, outside: Path
) -> None:
    folder = tmp_path / "upload"
    (folder / "photos").mkdir(parents=True)
    catalog = folder / "catalog.json"
    catalog.write_text(
        '{"products": [{"product_id": "mug", "photos": [{"file": "../../home/private.png"}]}]}'
    )
    with pytest.raises(SourceError, match="leads outside"):
        load_source(folder)


def test_files_inside_the_folder_still_load(tmp_path: Path) -> None:
    folder = _product_folder(tmp_path)
    (folder / "notes.txt").write_text("Teal stoneware mug")
    _png(folder / "extra" / "side.png")
    (folder / "side.png").symlink_to(folder / "extra" / "side.png")  # a link inside is fine
    (products,) = [load_source(folder).products]
    assert products[0].notes == "Teal stoneware mug"
    assert [p.name for p in products[0].photos] == ["front.png", "side.png"]


def test_a_photo_over_the_upload_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """A valid header and gigabytes after it: the header check passed, the upload read it
    whole into memory."""
    folder = _product_folder(tmp_path)
    huge = _png(folder / "huge.png")
    with huge.open("r+b") as file:
        file.truncate(MAX_PHOTO_BYTES + 1)  # sparse: no disk used
    with pytest.raises(SourceError, match=r"huge\.png: \d+ bytes, over the"):
        load_source(folder)


def test_a_product_with_more_photos_than_an_upload_takes_is_refused(tmp_path: Path) -> None:
    folder = _product_folder(tmp_path)
    for n in range(MAX_PHOTOS):
        _png(folder / f"p{n:02}.png")
    with pytest.raises(SourceError, match=f"{MAX_PHOTOS + 1} photos, at most {MAX_PHOTOS}"):
        load_source(folder)


def test_empty_and_non_image_photos_are_named(tmp_path: Path) -> None:
    folder = _product_folder(tmp_path)
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.jpg").write_text("not a photo")
    with pytest.raises(SourceError) as caught:
        load_source(folder)
    assert "empty.png: not a readable image" in str(caught.value)
    assert "text.jpg: not a readable image" in str(caught.value)


def test_a_field_past_the_csv_limit_is_named_as_too_large(tmp_path: Path) -> None:
    """Not blamed on a quote: the seller is told the field is too large."""
    csv = tmp_path / "p.csv"
    csv.write_text("\ufeffproduct_id,title,notes\nmug,Mug," + "x" * 200_000 + "\n")
    with pytest.raises(SourceError, match="line 2: unreadable row .*: a field too large"):
        load_source(csv)


def test_a_product_too_large_together_is_refused_by_file_and_line(tmp_path: Path) -> None:
    """Each field under its own bound, a product of 150 attributes of 60 KB was over what one
    upload message carries: it passed, and `flipsync upload` died at the publish."""
    attributes = {f"a{i}": "x" * 60_000 for i in range(150)}
    folder = _product_folder(tmp_path)
    (folder / "product.json").write_text(json.dumps({"attributes": attributes}))
    with pytest.raises(SourceError, match=r"mug: title, notes and attributes together: 9000490"):
        load_source(folder)
    csv = tmp_path / "p.csv"
    header = ",".join(["product_id", "title", *attributes])
    csv.write_text(f"{header}\nsmall,Mug,{','.join('x' * len(attributes))}\n"
                   f"big,Mug,{','.join(attributes.values())}\n")  # fmt: skip
    with pytest.raises(SourceError, match=r"line 3: the row's fields together: \d+ bytes"):
        load_source(csv)


def test_an_attribute_that_is_not_text_or_a_number_is_named(tmp_path: Path) -> None:
    """A product.json's or catalog.json's attributes were turned into Python's text without
    a word: null became the brand "None", an object "{'w': 10}" and 980 nested lists two
    thousand brackets; the HTTP API refuses objects with a 400."""
    folder = _product_folder(tmp_path)
    for value, found in ((None, "null"), ({"w": 10}, "an object"), ([[[]]], "an array")):
        fields: dict[str, object] = {"attributes": {"colour": "teal", "brand": value}}
        (folder / "product.json").write_text(json.dumps(fields))
        with pytest.raises(SourceError, match=f"mug: attribute 'brand': expected text or a "
                           f"number, found {found}"):  # fmt: skip
            load_source(folder)
    catalog = {"products": [{"product_id": "p1", "attributes": {"size": None}}]}
    (tmp_path / "catalog.json").write_text(json.dumps(catalog))
    with pytest.raises(SourceError, match="product 1: attribute 'size': expected text"):
        load_source(tmp_path / "catalog.json")
    (folder / "product.json").write_text('{"attributes": {"size": 12.5, "boxed": true}}')
    assert load_source(folder).products[0].attributes == {"size": "12.5", "boxed": "True"}


def test_a_number_of_thousands_of_digits_is_named_with_its_file(tmp_path: Path) -> None:
    """json.loads stops at Python's 4,300-digit bound on ints with a ValueError that named
    no file and told the seller to call sys.set_int_max_str_digits()."""
    folder = _product_folder(tmp_path)
    (folder / "product.json").write_text('{"cost_price": ' + "9" * 5000 + "}")
    with pytest.raises(SourceError, match=r"mug/product\.json: a number of more than 4,300"):
        load_source(folder)
