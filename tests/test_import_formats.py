"""Sellers' own exports read as they are: one file per supported format, written to the
column list the marketplace publishes for it (headers in its order and spelling)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from agents.sources import load_source

SHOPIFY_HEADER = [
    "Handle", "Title", "Body (HTML)", "Vendor", "Product Category", "Type", "Tags", "Published",
    "Option1 Name", "Option1 Value", "Option2 Name", "Option2 Value", "Option3 Name",
    "Option3 Value", "Variant SKU", "Variant Grams", "Variant Inventory Tracker",
    "Variant Inventory Qty", "Variant Inventory Policy", "Variant Fulfillment Service",
    "Variant Price", "Variant Compare At Price", "Variant Requires Shipping", "Variant Taxable",
    "Variant Barcode", "Image Src", "Image Position", "Image Alt Text", "Gift Card", "SEO Title",
    "SEO Description", "Variant Image", "Variant Weight Unit", "Variant Tax Code",
    "Cost per item", "Status",
]  # fmt: skip
EBAY_FILE_EXCHANGE_HEADER = [
    "*Action(SiteID=US|Country=US|Currency=USD|Version=1193)", "CustomLabel", "*Category",
    "*Title", "*ConditionID", "ConditionDescription", "C:Brand", "C:Color", "PicURL",
    "*Description", "*Format", "*Duration", "*StartPrice", "*Quantity", "*Location",
    "WeightMajor", "WeightMinor", "WeightUnit", "PackageLength", "PackageWidth", "PackageDepth",
]  # fmt: skip
EBAY_SELLER_HUB_HEADER = [
    "Item number", "Title", "Variation details", "Custom label (SKU)", "Available quantity",
    "Format", "Currency", "Start price", "Auction Buy It Now price", "Reserve price",
    "Current price", "Sold quantity", "Watchers", "Bids", "Start date", "End date",
    "eBay category 1 name", "eBay category 1 number", "eBay category 2 name",
    "eBay category 2 number", "Condition", "Listing site",
]  # fmt: skip
AMAZON_LISTINGS_HEADER = [
    "item-name", "item-description", "listing-id", "seller-sku", "price", "quantity",
    "open-date", "image-url", "item-is-marketplace", "product-id-type", "zshop-shipping-fee",
    "item-note", "item-condition", "zshop-category1", "zshop-browse-path",
    "zshop-storefront-feature", "asin1", "asin2", "asin3", "will-ship-internationally",
    "expedited-shipping", "zshop-boldface", "product-id", "bid-for-featured-placement",
    "add-delete", "pending-quantity", "fulfillment-channel", "merchant-shipping-group", "status",
]  # fmt: skip
AMAZON_INVENTORY_HEADER = [
    "feed_product_type", "item_sku", "brand_name", "item_name", "external_product_id",
    "external_product_id_type", "standard_price", "quantity", "product_description",
    "main_image_url", "condition_type", "condition_note", "website_shipping_weight",
    "website_shipping_weight_unit_of_measure", "update_delete",
]  # fmt: skip


def write(path: Path, header: list[str], rows: list[dict[str, str]], delimiter: str = ",") -> Path:
    """A file with every published column, the given cells filled, the rest empty."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        assert set(row) <= set(header), set(row) - set(header)
        writer.writerow([row.get(column, "") for column in header])
    path.write_text(buffer.getvalue())
    return path


def test_shopify_product_csv_one_product_per_handle(tmp_path: Path) -> None:
    path = write(
        tmp_path / "products_export_1.csv",
        SHOPIFY_HEADER,
        [
            {"Handle": "teal-mug", "Title": "Teal stoneware mug",
             "Body (HTML)": "<p>Hand-glazed, <strong>350 ml</strong>.</p><p>No chips.</p>",
             "Vendor": "Kiln & Co", "Type": "Mug", "Tags": "mug, teal", "Published": "TRUE",
             "Option1 Name": "Title", "Option1 Value": "Default Title", "Variant SKU": "MUG-1",
             "Variant Grams": "400", "Variant Inventory Qty": "3", "Variant Price": "24.00",
             "Variant Weight Unit": "g", "Cost per item": "$4.20", "Status": "active",
             "Image Src": "https://cdn.example/mug-a.jpg", "Image Position": "1"},
            {"Handle": "teal-mug", "Image Src": "https://cdn.example/mug-b.jpg",
             "Image Position": "2"},
            {"Handle": "desk-lamp", "Title": "Brass desk lamp", "Vendor": "Lumen",
             "Variant Grams": "1800", "Variant Price": "89.00", "Cost per item": "15.00"},
        ],
    )  # fmt: skip
    loaded = load_source(path)
    mug, lamp = loaded.products
    assert mug.product_id == "teal-mug" and mug.title_hint == "Teal stoneware mug"
    assert mug.notes == "Hand-glazed, 350 ml.\nNo chips." and mug.cost_price == "4.20"
    assert mug.attributes["weight_g"] == "400" and mug.attributes["brand"] == "Kiln & Co"
    assert mug.attributes["list_price"] == "24.00" and mug.attributes["sku"] == "MUG-1"
    assert (
        mug.attributes["image_urls"]
        == "https://cdn.example/mug-a.jpg;https://cdn.example/mug-b.jpg"
    )
    assert lamp.cost_price == "15.00" and lamp.attributes["weight_g"] == "1800"
    assert loaded.warnings == []  # every Shopify column is known


def test_ebay_file_exchange_template(tmp_path: Path) -> None:
    path = write(
        tmp_path / "ebay-fx.csv",
        EBAY_FILE_EXCHANGE_HEADER,
        [
            {"*Action(SiteID=US|Country=US|Currency=USD|Version=1193)": "Add",
             "CustomLabel": "CAM-6", "*Category": "15230", "*Title": "35mm rangefinder camera",
             "*ConditionID": "3000", "ConditionDescription": "Shutter fires, meter untested",
             "C:Brand": "Canonet", "*Description": "Film camera, 1970s.", "*Format": "FixedPrice",
             "*Duration": "GTC", "*StartPrice": "120.00", "*Quantity": "1",
             "*Location": "Portland", "WeightMajor": "1", "WeightMinor": "4", "WeightUnit": "lbs",
             "PackageLength": "8", "PackageWidth": "6", "PackageDepth": "4"},
        ],
    )  # fmt: skip
    (camera,) = load_source(path).products
    assert camera.product_id == "CAM-6" and camera.title_hint == "35mm rangefinder camera"
    assert camera.attributes["condition"] == "Used" and camera.attributes["brand"] == "Canonet"
    assert camera.attributes["weight_g"] == "567"  # 1 lb 4 oz
    assert camera.attributes["dimensions_cm"] == "20.3 x 15.2 x 10.2"
    assert camera.attributes["list_price"] == "120.00"


def test_ebay_seller_hub_active_listings_report(tmp_path: Path) -> None:
    path = write(
        tmp_path / "eBay-all-active-listings-report.csv",
        EBAY_SELLER_HUB_HEADER,
        [
            {"Item number": "296512345678", "Title": "Waxed cotton jacket M",
             "Custom label (SKU)": "JKT-4", "Available quantity": "1", "Format": "FIXED_PRICE",
             "Currency": "USD", "Start price": "$79.99", "Current price": "$79.99",
             "eBay category 1 name": "Coats & Jackets", "Condition": "Pre-owned"},
            {"Item number": "296512345679", "Title": "Walnut cutting board",
             "Start price": "$45.00", "Condition": "New"},
        ],
    )  # fmt: skip
    jacket, board = load_source(path).products
    assert jacket.product_id == "JKT-4" and jacket.attributes["list_price"] == "79.99"
    assert jacket.attributes["category"] == "Coats & Jackets"
    assert board.product_id == "296512345679"  # no custom label: eBay's item number


def test_amazon_active_listings_report_tab_delimited(tmp_path: Path) -> None:
    path = write(
        tmp_path / "Active+Listings+Report.txt",
        AMAZON_LISTINGS_HEADER,
        [
            {"item-name": "Trail running shoes EU 42", "seller-sku": "SNK-2", "price": "64.99",
             "quantity": "1", "item-note": "Worn twice, original box", "item-condition": "2",
             "asin1": "B0TEST0001", "fulfillment-channel": "DEFAULT"},
        ],
        delimiter="\t",
    )  # fmt: skip
    (shoes,) = load_source(path).products
    assert shoes.product_id == "SNK-2" and shoes.title_hint == "Trail running shoes EU 42"
    assert shoes.attributes["condition"] == "Used, very good"
    assert shoes.attributes["condition_note"] == "Worn twice, original box"
    assert shoes.attributes["asin"] == "B0TEST0001"


def test_amazon_inventory_file(tmp_path: Path) -> None:
    path = write(
        tmp_path / "inventory.csv",
        AMAZON_INVENTORY_HEADER,
        [
            {"feed_product_type": "kitchen", "item_sku": "BRD-5", "brand_name": "Grain",
             "item_name": "Walnut end-grain board", "standard_price": "45.00",
             "product_description": "Oiled walnut, 40 x 30 cm", "condition_type": "New",
             "website_shipping_weight": "3.1", "website_shipping_weight_unit_of_measure": "LB"},
        ],
    )  # fmt: skip
    (board,) = load_source(path).products
    assert board.product_id == "BRD-5" and board.attributes["weight_g"] == "1406"
    assert board.notes == "Oiled walnut, 40 x 30 cm" and board.attributes["brand"] == "Grain"


def test_amazon_product_data_with_shipping_weight_in_ounces(tmp_path: Path) -> None:
    path = tmp_path / "amazon-products.csv"
    path.write_text(
        "ASIN,Product Name,Brand,Price,Cost Price,Shipping Weight,Product Dimensions\n"
        'B0TEST0002,Teal stoneware mug,Kiln,$24.00,$17.49,13.4 ounces,"4.5 x 3.5 x 4 inches"\n'
    )
    (mug,) = load_source(path).products
    assert mug.product_id == "B0TEST0002" and mug.cost_price == "17.49"
    assert mug.attributes["weight_g"] == "380" and mug.attributes["list_price"] == "24.00"


def test_a_plain_spreadsheet(tmp_path: Path) -> None:
    path = tmp_path / "my products.csv"
    path.write_text(
        "Product ID,Name,Description,Cost,Weight,Dimensions,Colour\n"
        "m1,Teal mug,350 ml no chips,€4.20,0.4 kg,10 x 8 x 10 cm,teal\n"
    )
    (mug,) = load_source(path).products
    assert mug.product_id == "m1" and mug.title_hint == "Teal mug"
    assert mug.cost_price == "4.20" and mug.attributes["cost_price_currency"] == "EUR"
    assert mug.attributes["weight_g"] == "400" and mug.attributes["color"] == "teal"
