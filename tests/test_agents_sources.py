"""Products come from a catalog, a CSV (a bulk import) or folders of photos and notes."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from agents import product_table, source_files
from agents.folders import KEY_SHOWN, KEYS_NAMED
from agents.limits import MAX_TEXT_BYTES
from agents.source_files import SourceError
from agents.sources import load_path, load_source

SAMPLES = Path(__file__).parent.parent / "agents" / "samples"


def photo(folder: Path, name: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(SAMPLES / "photos" / "mug-001-a.png", folder / name)


def test_the_sample_catalog() -> None:
    products, bulk = load_path(SAMPLES)
    assert not bulk and [p.product_id for p in products][:2] == ["mug-001", "sneaker-002"]
    assert len(products[1].photos) == 2 and products[1].photos[0].read()[:4] == b"\x89PNG"


def test_a_csv_is_a_bulk_import_with_extra_columns_as_attributes(tmp_path: Path) -> None:
    photo(tmp_path, "a.png")
    photo(tmp_path, "b.png")
    (tmp_path / "p.csv").write_text(
        "product_id,title,notes,cost_price,photos,weight_g,sku\n"
        "m1,Teal mug,350 ml,4.20,a.png;b.png,400,SKU-1\n"
        "m2,Plain mug,,,,,\n"
    )
    products, bulk = load_path(tmp_path / "p.csv")
    assert bulk
    first, second = products
    assert first.title_hint == "Teal mug" and first.cost_price == "4.20"
    assert [p.name for p in first.photos] == ["a.png", "b.png"]
    assert first.attributes == {"weight_g": "400", "sku": "SKU-1"}
    assert second.photos == () and second.attributes == {}
    assert load_path(tmp_path)[1]  # a folder holding a CSV imports it


def test_a_folder_of_photos_and_notes_is_one_product(tmp_path: Path) -> None:
    photo(tmp_path / "mug", "front.png")
    photo(tmp_path / "mug", "back.PNG")
    (tmp_path / "mug" / "notes.txt").write_text("Hand-glazed mug, no chips.\n")
    (tmp_path / "mug" / "product.json").write_text('{"cost_price": "4.20"}')
    (products, bulk) = load_path(tmp_path / "mug")
    assert not bulk and len(products) == 1
    assert products[0].product_id == "mug" and products[0].notes == "Hand-glazed mug, no chips."
    assert products[0].cost_price == "4.20" and len(products[0].photos) == 2
    photo(tmp_path / "lamp", "lamp.png")
    many, _ = load_path(tmp_path)  # a folder of product folders
    assert [p.product_id for p in many] == ["lamp", "mug"]


@pytest.mark.parametrize(
    ("given", "read", "currency"),
    [('"$25"', "25", None), ("12.5", "12.5", None), ('"1.234,50 €"', "1234.50", "EUR"),
     ('"4.20"', "4.20", None), ("4.125", "4.125", None), ("0.125", "0.125", None)],
)  # fmt: skip
def test_a_product_json_cost_price_is_read_as_a_csv_s_is(
    tmp_path: Path, given: str, read: str, currency: str | None
) -> None:
    """A product.json's "$25" passed as text the pricing agent could not read, and the
    upload said no cost price was given (found after a newcomer's pass)."""
    photo(tmp_path / "mug", "front.png")
    (tmp_path / "mug" / "product.json").write_text(f'{{"cost_price": {given}}}')
    (product,), _ = load_path(tmp_path / "mug")
    assert product.cost_price == read
    assert product.attributes.get("cost_price_currency") == currency


def test_an_ignored_file_s_name_never_reaches_the_terminal_raw(tmp_path: Path) -> None:
    photo(tmp_path / "mug", "front.png")
    (tmp_path / "mug" / "a\x1b]0;owned\x07\nb.txt").write_text("x")
    loaded = load_source(tmp_path / "mug")
    (warning,) = loaded.warnings
    assert warning.isprintable() and "\\x1b" in warning and "\\n" in warning, warning
    (tmp_path / "shop").mkdir()
    shutil.move(tmp_path / "mug", tmp_path / "shop" / "mug")
    (tmp_path / "shop" / "x\x1b]0;owned\x07\nWARNING fake.txt").write_text("x")
    top = load_source(tmp_path / "shop").warnings  # a folder of product folders
    assert len(top) == 2 and all(w.isprintable() for w in top), top


@pytest.mark.parametrize(
    "given", ['"twenty dollars"', '"-5"', "true", '{"usd": 5}', "-5", "Infinity"]
)
def test_an_unreadable_cost_price_is_named(tmp_path: Path, given: str) -> None:
    photo(tmp_path / "mug", "front.png")
    (tmp_path / "mug" / "product.json").write_text(f'{{"cost_price": {given}}}')
    with pytest.raises(SourceError, match="cost_price: "):
        load_path(tmp_path / "mug")


def test_a_file_a_folder_does_not_read_is_named_with_what_it_should_be_called(
    tmp_path: Path,
) -> None:
    """Found by a newcomer: front.png and description.txt uploaded with exit 0 and the text
    was never read, without a word. Each file FlipSync does not read is one warning saying
    what it would have to be called; the files it reads get none, and the upload goes on."""
    mug = tmp_path / "mug"
    photo(mug, "front.png")
    (mug / "notes.txt").write_text("Teal mug")
    (mug / "product.json").write_text('{"cost_price": "4.20"}')
    (mug / ".DS_Store").write_bytes(b"\0")  # hidden: the system's, not the seller's
    assert load_source(mug).warnings == []
    (mug / "description.txt").write_text("Bought for $25.")
    (mug / "info.json").write_text("{}")
    (mug / "back.heic").write_bytes(b"")
    loaded = load_source(mug)
    assert [p.product_id for p in loaded.products] == ["mug"]
    assert loaded.products[0].notes == "Teal mug"
    assert loaded.warnings == [
        "ignored back.heic: photos are read from .jpg, .jpeg, .png, .webp, .gif, .bmp, .tif, "
        ".tiff files",
        "ignored description.txt: notes are read from notes.txt",
        "ignored info.json: fields (title_hint, cost_price, attributes...) are read from "
        "product.json",
    ]
    (tmp_path / "README.txt").write_text("my products")  # a folder of product folders
    assert load_source(tmp_path).warnings == [
        "ignored README.txt: a folder of product folders is read one folder at a time (put it "
        "in its product's folder)",
        *(w.replace("ignored ", "ignored mug/", 1) for w in loaded.warnings),
    ]


def test_a_product_json_key_that_is_not_read_is_named_with_its_close_match(
    tmp_path: Path,
) -> None:
    """Found by review: a product.json key FlipSync does not read ("pirce") was dropped
    without a word, and the seller's cost price with it. Each one is a warning naming the
    key (escaped: a key is anyone's to choose) and the known keys close to it."""
    mug = tmp_path / "mug"
    photo(mug, "front.png")
    fields = {"title": "Teal mug", "pirce": "4.20", "Cost_Price": "5", "atributes": {},
              "brand": "Acme", "photos": [], "bad\x1b[2Jkey": 1}  # fmt: skip
    (mug / "product.json").write_text(json.dumps(fields))
    loaded = load_source(mug)
    assert loaded.products[0].title_hint == "Teal mug"  # title is read, for title_hint
    assert loaded.products[0].cost_price == ""
    assert loaded.warnings == [
        "ignored key 'pirce' in product.json: did you mean cost_price?",
        "ignored key 'Cost_Price' in product.json: did you mean cost_price?",
        "ignored key 'atributes' in product.json: did you mean attributes?",
        "ignored key 'brand' in product.json: product.json is read for product_id, "
        "title_hint (or title), notes, cost_price and attributes; other facts go in attributes",
        "ignored key 'photos' in product.json: a folder's photos are its image files",
        "ignored key 'bad\\x1b[2Jkey' in product.json: product.json is read for product_id, "
        "title_hint (or title), notes, cost_price and attributes; other facts go in attributes",
    ]
    (mug / "product.json").write_text(json.dumps({"cost_price": "4.20", "title_hint": "x"}))
    assert load_source(mug).warnings == []  # every key read: no word

    (mug / "product.json").write_text(json.dumps({"titel": "Teal mug"}))
    (mug / "notes.text").write_text("Teal")
    assert load_source(tmp_path).warnings == [  # a folder of product folders names its folder
        "ignored key 'titel' in mug/product.json: did you mean title_hint?",
        "ignored mug/notes.text: notes are read from notes.txt",
    ]
    (mug / "notes.text").unlink()
    many = {"x" * 500: 1} | {f"k{n}": n for n in range(KEYS_NAMED + 3)}
    (mug / "product.json").write_text(json.dumps(many))
    warnings = load_source(mug).warnings
    assert len(warnings) == KEYS_NAMED + 1  # a long or hostile file is not a flood
    assert warnings[0].startswith(f"ignored key '{'x' * KEY_SHOWN}...' in product.json: ")
    assert warnings[-1] == "ignored 4 more unknown keys in product.json"


def test_a_catalog_product_key_that_is_not_read_is_named_with_its_entry(tmp_path: Path) -> None:
    """Found by review: a catalog.json product's unknown keys were dropped without a word
    (its "pirce" lost the cost price), as product.json's were. Each is a warning naming the
    product by its number and id, and the key with its close match."""
    photo(tmp_path / "photos", "mug.png")
    products = [{"product_id": "mug-1", "title": "Mug", "photos": [{"file": "mug.png"}]},
                {"product_id": 7, "pirce": "4.20", "photo": "mug.png", "brand": "Acme",
                 "bad\x1b[2Jkey": 1}]  # fmt: skip
    (tmp_path / "catalog.json").write_text(json.dumps({"about": "x", "products": products}))
    catalog = tmp_path / "catalog.json"
    for source in (catalog, tmp_path):  # the file, or the folder holding it
        loaded = load_source(source)
        assert [p.product_id for p in loaded.products] == ["mug-1", "7"]
        assert loaded.warnings == [
            f"ignored key 'pirce' in {catalog}, product 2 (7): did you mean cost_price?",
            f"ignored key 'photo' in {catalog}, product 2 (7): did you mean photos?",
            f"ignored key 'brand' in {catalog}, product 2 (7): a catalog.json product is read "
            "for product_id, title_hint (or title), notes, cost_price, attributes and photos; "
            "other facts go in attributes",
            f"ignored key 'bad\\x1b[2Jkey' in {catalog}, product 2 (7): a catalog.json "
            "product is read for product_id, title_hint (or title), notes, cost_price, "
            "attributes and photos; other facts go in attributes",
        ]
    assert load_source(SAMPLES / "catalog.json").warnings == []  # every key read: no word


def test_a_catalog_top_level_key_that_is_not_read_is_named(tmp_path: Path) -> None:
    """A catalog.json's own keys other than products (and about, its description) were
    dropped without a word: a "defaults" or a "cost_price" meant for every product was
    lost. Each is a warning naming the file and the key with its close match; what is
    loaded stays the same."""
    photo(tmp_path / "photos", "mug.png")
    products = [{"product_id": "mug-1", "cost_price": "4.20", "photos": [{"file": "mug.png"}]}]
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps({"about": "x", "products": products}))
    plain = load_source(catalog)
    assert plain.warnings == []
    extra = {"Products": [], "about": "x", "products": products, "currency": "EUR",
             "cost_price": "5", "bad\x1b[2Jkey": 1}  # fmt: skip
    catalog.write_text(json.dumps(extra))
    for source in (catalog, tmp_path):  # the file, or the folder holding it
        loaded = load_source(source)
        assert loaded.products == plain.products
        assert loaded.warnings == [
            f"ignored key 'Products' in {catalog}: did you mean products?",
            f"ignored key 'currency' in {catalog}: a catalog.json is read for products "
            "(and about, its description); a product's facts go in its entry",
            f"ignored key 'cost_price' in {catalog}: a product's key, read only inside each "
            "entry of products",
            f"ignored key 'bad\\x1b[2Jkey' in {catalog}: a catalog.json is read for products "
            "(and about, its description); a product's facts go in its entry",
        ]
    many = {"products": products} | {f"k{n}": n for n in range(KEYS_NAMED + 2)}
    catalog.write_text(json.dumps(many))
    warnings = load_source(catalog).warnings
    assert len(warnings) == KEYS_NAMED + 1  # a long or hostile file is not a flood
    assert warnings[-1] == f"ignored 2 more unknown keys in {catalog}"


def test_unusable_paths_say_why(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file"):
        load_path(tmp_path / "missing")
    with pytest.raises(SourceError, match="no photos"):
        load_path(tmp_path)
    (tmp_path / "p.csv").write_text("product_id,photos\nm1,gone.png\n")
    with pytest.raises(SourceError, match="photos not found"):
        load_path(tmp_path / "p.csv")


@pytest.mark.parametrize("product_id", ["../../escaped", "/tmp/x", "..", "", "a\nb"])
def test_a_catalog_product_id_that_is_not_one_folder_name_is_refused(
    tmp_path: Path, product_id: str
) -> None:
    """A product id names its package folder: a path in it would write outside --out."""
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps({"products": [{"product_id": "m1"}, {"product_id": product_id}]}))
    with pytest.raises(SourceError, match=rf"^{re.escape(str(catalog))}: product 2: product id"):
        load_path(catalog)


def test_a_product_json_id_is_checked_and_a_folder_keeps_its_own_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    photo(tmp_path / "Tasse café ☕", "front.png")
    assert load_path(tmp_path / "Tasse café ☕")[0][0].product_id == "Tasse café ☕"
    monkeypatch.chdir(tmp_path / "Tasse café ☕")
    assert load_path(Path("."))[0][0].product_id == "Tasse café ☕"  # ".": the folder's name
    (tmp_path / "Tasse café ☕" / "product.json").write_text('{"product_id": "../../x"}')
    with pytest.raises(SourceError, match=r"product\.json: product id '\.\./\.\./x' has /"):
        load_path(tmp_path / "Tasse café ☕")


def test_hidden_folders_are_not_products(tmp_path: Path) -> None:
    photo(tmp_path / "mug", "front.png")
    photo(tmp_path / ".git", "x.png")
    (tmp_path / ".flipsync").mkdir()
    assert [p.product_id for p in load_path(tmp_path)[0]] == ["mug"]


def test_a_photo_that_is_not_an_image_is_named_before_anything_starts(tmp_path: Path) -> None:
    (tmp_path / "notimg").mkdir()
    (tmp_path / "notimg" / "photo.jpg").write_text("hello this is not a png\n")
    with pytest.raises(SourceError) as caught:
        load_path(tmp_path / "notimg")
    assert str(caught.value) == f"{tmp_path / 'notimg' / 'photo.jpg'}: not a readable image"
    photo(tmp_path, "a.png")
    (tmp_path / "b.png").write_bytes(b"")
    (tmp_path / "p.csv").write_text("product_id,photos\nm1,a.png\nm2,b.png;notimg/photo.jpg\n")
    with pytest.raises(SourceError) as caught:
        load_path(tmp_path / "p.csv")
    assert str(caught.value).splitlines() == [
        f"{tmp_path / 'p.csv'}: 2 problem(s), nothing uploaded:",
        f"  line 3: {tmp_path / 'b.png'}: not a readable image",  # a CSV's: by line
        f"  line 3: {tmp_path / 'notimg' / 'photo.jpg'}: not a readable image",
    ]


CATALOG_DEFECTS: dict[str, tuple[str | bytes, str]] = {
    "broken JSON": ('{"products": [\n', "not valid JSON: Expecting value (line 2, column 1)"),
    "no products key": (
        '{"items": []}',
        "expected {\"products\": [...]} (a catalog), found keys 'items'",
    ),
    "not an object": ("[1, 2]", 'expected {"products": [...]} (a catalog), found an array'),
    "a product not an object": (
        '{"products": [7]}',
        "product 1: expected an object of fields, found a number",
    ),
    "no product_id": (
        '{"products": [{"product_id": "m1"}, {"title_hint": "x"}]}',
        "product 2: no product_id",
    ),
    "bad photos": (
        '{"products": [{"product_id": "m1", "photos": ["a.png"]}]}',
        'product 1: photos: expected a list of {"file": NAME}',
    ),
    "bad attributes": (
        '{"products": [{"product_id": "m1", "attributes": [1]}]}',
        "product 1: attributes: expected an object, found an array",
    ),
    "nested too deeply": ("[" * 100_000, "not valid JSON: nested too deeply"),
    "not UTF-8": (
        '{"products": [{"product_id": "Tasse caf\xe9"}]}'.encode("latin-1"),
        "not UTF-8 text (invalid continuation byte at byte 39)",
    ),
}


@pytest.mark.parametrize("defect", list(CATALOG_DEFECTS))
def test_a_catalog_defect_is_one_line_naming_the_file(tmp_path: Path, defect: str) -> None:
    text, expected = CATALOG_DEFECTS[defect]
    catalog = tmp_path / "catalog.json"
    if isinstance(text, bytes):
        catalog.write_bytes(text)
    else:
        catalog.write_text(text)
    with pytest.raises(SourceError) as caught:
        load_path(catalog)
    assert str(caught.value) == f"{catalog}: {expected}"


def test_a_folder_s_product_json_and_notes_are_named_when_unreadable(tmp_path: Path) -> None:
    folder = tmp_path / "mug"
    photo(folder, "front.png")
    (folder / "product.json").write_text('{"title_hint": "x",}')
    with pytest.raises(SourceError) as caught:
        load_path(folder)
    assert str(caught.value) == (
        f"{folder / 'product.json'}: not valid JSON: "
        "Expecting property name enclosed in double quotes (line 1, column 20)"
    )
    (folder / "product.json").write_text('["cost_price", "4.20"]')
    with pytest.raises(SourceError) as caught:
        load_path(folder)
    assert str(caught.value) == (
        f"{folder / 'product.json'}: expected an object of fields, found an array"
    )
    (folder / "product.json").unlink()
    (folder / "notes.txt").write_bytes("Tasse \xe0 caf\xe9\n".encode("latin-1"))
    with pytest.raises(SourceError) as caught:
        load_path(folder)
    assert str(caught.value) == (
        f"{folder / 'notes.txt'}: not UTF-8 text (invalid continuation byte at byte 6)"
    )


def test_text_over_its_bound_is_refused_up_front_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Megabytes of notes were uploaded, then failed inside the router with a traceback."""
    folder = tmp_path / "mug"
    photo(folder, "front.png")
    (folder / "notes.txt").write_text("x" * 2_250_000)
    with pytest.raises(SourceError) as caught:
        load_path(folder)
    assert str(caught.value) == (
        f"{folder / 'notes.txt'}: 2250000 bytes, over the {MAX_TEXT_BYTES}-byte limit"
    )
    (folder / "notes.txt").write_text("x" * MAX_TEXT_BYTES)  # at the bound: fine
    assert len(load_path(folder)[0][0].notes) == MAX_TEXT_BYTES
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps({"products": [{"product_id": "m1", "notes": "é" * 40_000}]}))
    with pytest.raises(SourceError) as caught:
        load_path(catalog)
    assert str(caught.value) == (
        f"{catalog}: product 1: notes: 80000 bytes, over the {MAX_TEXT_BYTES}-byte limit"
    )
    table = tmp_path / "p.csv"
    table.write_text(f"product_id,title,notes,shelf\nm1,Mug,ok,B4\nm2,Lamp,{'y' * 70_000},B5\n")
    with pytest.raises(SourceError, match="line 3: notes: 70000 bytes, over the 65536-byte"):
        load_path(table)
    monkeypatch.setattr(product_table, "MAX_FILE_BYTES", 100)  # a product file's bound
    monkeypatch.setattr(source_files, "MAX_FILE_BYTES", 100)  # a JSON file's
    with pytest.raises(SourceError) as caught:
        load_path(table)
    size = table.stat().st_size
    assert str(caught.value) == f"{table}: {size} bytes, over the 100-byte limit"
    with pytest.raises(SourceError, match=r"catalog\.json: \d+ bytes, over the 100-byte limit"):
        load_path(catalog)


def test_a_file_with_no_products_is_refused(tmp_path: Path) -> None:
    """It started the whole stack to upload 0 products, and exited 0."""
    (tmp_path / "catalog.json").write_text('{"products": []}')
    with pytest.raises(SourceError) as caught:
        load_path(tmp_path / "catalog.json")
    assert str(caught.value) == f"{tmp_path / 'catalog.json'}: no products"
    (tmp_path / "p.csv").write_text("product_id,title,notes\n\n")
    with pytest.raises(SourceError) as caught:
        load_path(tmp_path / "p.csv")
    assert str(caught.value) == f"{tmp_path / 'p.csv'}: no products (a header and no rows)"
