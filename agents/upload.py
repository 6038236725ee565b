"""The product-upload entry point: photos into the object store, then product.uploaded."""

from __future__ import annotations

import io
import json
import uuid
from dataclasses import dataclass
from pathlib import Path

from faststream.nats import NatsBroker
from opentelemetry import context, trace
from PIL import Image

from bus import subjects
from bus.codec import encode
from bus.messages import Photo, Priority, ProductUploaded

MSG_ID = "Nats-Msg-Id"
SAMPLES = Path(__file__).parent / "samples"


@dataclass(frozen=True, kw_only=True)
class ProductInput:
    """A product as a seller hands it in: notes and photo files."""

    product_id: str
    title_hint: str = ""
    notes: str = ""
    cost_price: str = ""
    photos: tuple[Path, ...] = ()


def load_catalog(path: Path = SAMPLES / "catalog.json") -> list[ProductInput]:
    """The products of a catalog file like the shipped sample."""
    raw = json.loads(path.read_text())
    return [
        ProductInput(
            product_id=item["product_id"],
            title_hint=item.get("title_hint", ""),
            notes=item.get("notes", ""),
            cost_price=item.get("cost_price", ""),
            photos=tuple(path.parent / "photos" / p["file"] for p in item.get("photos", [])),
        )
        for item in raw["products"]
    ]


async def upload_product(
    broker: NatsBroker,
    product: ProductInput,
    *,
    tenant: str,
    priority: Priority = Priority.STANDARD,
    workflow_id: str | None = None,
    tracer: trace.Tracer | None = None,
) -> ProductUploaded:
    """Store the photos and announce the upload; this starts the product's one trace."""
    wf = workflow_id or uuid.uuid4().hex
    tracer = tracer or trace.get_tracer("flipsync.upload")
    # A new root span: each upload is its own trace, whatever the caller was doing.
    with tracer.start_as_current_span("product.upload", context=context.Context()) as span:
        span.set_attribute("flipsync.tenant", tenant)
        span.set_attribute("flipsync.workflow_id", wf)
        span.set_attribute("flipsync.product_id", product.product_id)
        photos = await _store_photos(broker, wf, product.photos)
        upload = ProductUploaded(
            workflow_id=wf,
            tenant=tenant,
            product_id=product.product_id,
            title_hint=product.title_hint,
            notes=product.notes,
            cost_price=product.cost_price,
            photos=photos,
            priority=priority,
        )
        await broker.publish(
            encode(upload),
            subjects.product_uploaded(tenant),
            headers={MSG_ID: wf},
            stream=subjects.STREAM_WORKFLOW,
        )
    return upload


async def _store_photos(broker: NatsBroker, wf: str, paths: tuple[Path, ...]) -> list[Photo]:
    store = await broker.connection.jetstream().object_store(subjects.OBJECT_STORE_PHOTOS)
    photos: list[Photo] = []
    for index, path in enumerate(paths):
        data = path.read_bytes()
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            content_type = Image.MIME.get(image.format or "", "application/octet-stream")
        name = f"{wf}/{index}-{path.name}"
        await store.put(name, data)
        photos.append(
            Photo(object_name=name, content_type=content_type, width=width, height=height)
        )
    return photos
