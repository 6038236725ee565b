"""The product-upload entry point: photos into the object store, then product.uploaded.

Any client can start a workflow the same way: put the photos in the photos object store and
publish a ProductUploaded on product.uploaded.<tenant> (stream WORKFLOW) with a Nats-Msg-Id
of its workflow id. This module does that for the CLI, the HTTP endpoint and the demo, and
prepares each photo on the way: its perceptual hash (mapped to the tenant's earlier photo of
the same picture, if any) and its low- and high-detail renditions, stored once per tenant.
"""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor

from faststream.nats import NatsBroker
from nats.js.errors import NotFoundError, ObjectNotFoundError
from opentelemetry import context, trace

from agents.catalog_file import load_catalog
from agents.limits import product_id_problem, product_size_problem
from agents.photos import PhotoError, PreparedPhoto, prepare
from agents.product_input import PhotoFile, ProductInput
from agents.stores import StoreOpener, Stores
from bus import subjects
from bus.codec import encode
from bus.messages import Photo, PhotoRendition, Priority, ProductUploaded
from bus.publishing import publish
from bus.settings import Settings

PHOTO_WORKERS = 2
"""Photos decoded at once in a process: each may take a few hundred MB while it decodes, and
on the default pool they starved the router's schema checks in an embedded stack (found by
review: a tenant's answer failed its 2 s check while another uploaded 8000x8000 photos)."""
PHOTO_POOL = ThreadPoolExecutor(PHOTO_WORKERS, thread_name_prefix="flipsync-photos")
"""The photos' own threads (created idle; a thread starts on first use)."""


class Uploader:
    """Uploads products for any tenant over one broker connection."""

    def __init__(self, broker: NatsBroker, settings: Settings | None = None) -> None:
        self._broker = broker
        self._settings = settings or Settings()
        self._stores = StoreOpener(self._settings)
        self._sides = {"low": self._settings.photo_low_side, "high": self._settings.photo_high_side}

    async def upload(
        self,
        product: ProductInput,
        *,
        tenant: str,
        priority: Priority = Priority.STANDARD,
        workflow_id: str | None = None,
        tracer: trace.Tracer | None = None,
    ) -> ProductUploaded:
        """Store the photos and announce the upload; this starts the product's one trace.

        Raises ValueError for a bad tenant or product id, agents.photos.PhotoError for a
        file that is not a readable photo.
        """
        wf = workflow_id or uuid.uuid4().hex
        subjects.checkpoint_key(tenant, wf, "upload")  # a bad tenant fails here, not later
        if problem := product_id_problem(product.product_id):  # it names a package folder
            raise ValueError(problem)
        if problem := product_size_problem(product):  # the HTTP API's fields too
            raise ValueError(problem)
        tracer = tracer or trace.get_tracer("flipsync.upload")
        # A new root span: each upload is its own trace, whatever the caller was doing.
        with tracer.start_as_current_span("product.upload", context=context.Context()) as span:
            span.set_attribute("flipsync.tenant", tenant)
            span.set_attribute("flipsync.workflow_id", wf)
            span.set_attribute("flipsync.product_id", product.product_id)
            stores = await self._stores(self._broker.connection.jetstream())
            photos = [
                await self._store_photo(stores, tenant, wf, index, photo)
                for index, photo in enumerate(product.photos)
            ]
            upload = ProductUploaded(
                workflow_id=wf,
                tenant=tenant,
                product_id=product.product_id,
                title_hint=product.title_hint,
                notes=product.notes,
                cost_price=product.cost_price,
                photos=photos,
                priority=priority,
                attributes=dict(product.attributes),
            )
            # Kept before it is published (the workflow service keeps it again, a no-op): a
            # status asked the moment the 202 is back finds it running, not 404 (review).
            await stores.checkpoints.put_upload(upload)
            await publish(
                self._broker,
                encode(upload),
                subjects.product_uploaded(tenant),
                stream=subjects.STREAM_WORKFLOW,
                msg_id=wf,
            )
        return upload

    async def _store_photo(
        self, stores: Stores, tenant: str, wf: str, index: int, photo: PhotoFile
    ) -> Photo:
        data = photo.read()
        try:
            prepared: PreparedPhoto = await asyncio.get_running_loop().run_in_executor(
                PHOTO_POOL, prepare, data, self._sides
            )
        except PhotoError as exc:  # named: a product has several photos, a run many products
            raise type(exc)(f"{photo.path or photo.name}: {exc}") from exc
        phash = await stores.photos.canonical(tenant, prepared.phash)
        name = f"{tenant}/{wf}/{index}-{_safe(photo.name)}"
        await stores.objects.put(name, data)
        renditions: dict[str, PhotoRendition] = {}
        for detail, rendition in prepared.renditions.items():
            # Content-addressed per tenant: the same picture is stored (and sent) once.
            object_name = f"{tenant}/renditions/{phash}/{rendition.width}x{rendition.height}"
            if not await _exists(stores, object_name):
                await stores.objects.put(object_name, rendition.data)
            renditions[detail] = PhotoRendition(
                object_name=object_name,
                content_type="image/jpeg",
                width=rendition.width,
                height=rendition.height,
            )
        return Photo(
            object_name=name,
            content_type=prepared.content_type,
            width=prepared.width,
            height=prepared.height,
            phash=phash,
            renditions=renditions,
        )


async def upload_product(
    broker: NatsBroker,
    product: ProductInput,
    *,
    tenant: str,
    priority: Priority = Priority.STANDARD,
    workflow_id: str | None = None,
    tracer: trace.Tracer | None = None,
    settings: Settings | None = None,
) -> ProductUploaded:
    """Upload one product (an Uploader for a single use)."""
    uploader = Uploader(broker, settings)
    return await uploader.upload(
        product, tenant=tenant, priority=priority, workflow_id=workflow_id, tracer=tracer
    )


async def _exists(stores: Stores, name: str) -> bool:
    try:
        await stores.objects.get_info(name)
    except (NotFoundError, ObjectNotFoundError):
        return False
    return True


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name)[:80] or "photo"


__all__ = ["PhotoFile", "ProductInput", "Uploader", "load_catalog", "upload_product"]
