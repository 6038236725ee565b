"""Upload many products and wait for their listing packages (the CLI's and the bench's path)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Sequence

import nats.errors
from faststream.nats import NatsBroker

from agents.photos import PhotoError
from agents.product_input import ProductInput
from agents.upload import Uploader
from agents.watch import OnProgress, WorkflowWatcher
from bus.messages import Priority, ProductUploaded, WorkflowDone
from bus.settings import Settings

UPLOADS_AT_ONCE = 8
LOST_NATS = (
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionDrainingError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.NoServersError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.StaleConnectionError,
    nats.errors.TimeoutError,
    ConnectionError,
)
"""What a publish raises when NATS stopped answering (a publish's ack not coming is one)."""
OnDone = Callable[[WorkflowDone], None]
"""Called with each product's final event as it arrives (its package can be written then)."""


class UploadError(Exception):
    """A product's upload (its photos stored, its announcement published) failed for a reason
    other than a photo of it (agents.photos.PhotoError stays itself); __cause__ says why."""

    def __init__(self, product_id: str, cause: Exception) -> None:
        """product_id: the product whose upload failed; cause: what its upload raised."""
        self.product_id = product_id
        self.lost_nats = isinstance(cause, LOST_NATS)  # not: NATS refused this one message
        said = str(cause) or type(cause).__name__
        super().__init__(f"uploading product {product_id!r} failed: {said}")


async def upload_and_wait(
    broker: NatsBroker,
    products: Sequence[ProductInput],
    *,
    tenant: str | Callable[[int], str],
    priority: Priority = Priority.STANDARD,
    settings: Settings | None = None,
    timeout_s: float = 600.0,
    on_progress: OnProgress | None = None,
    on_upload: Callable[[ProductUploaded], None] | None = None,
    on_done: OnDone | None = None,
    on_start: Callable[[str], None] | None = None,
) -> list[WorkflowDone]:
    """Upload every product (a few at a time) and return their final events, in order.

    tenant is one tenant for all, or a function of the product's index (a replay of many
    sellers). on_done sees each final event as soon as it comes, so that what finished is
    kept when the wait is cut short: TimeoutError after timeout_s, or a cancellation.
    on_start sees each workflow id before its upload is published, so that a cut-short
    caller knows every workflow it may have started (agents.cancel). A failed upload raises
    UploadError (PhotoError for a photo) once the uploads in flight are cancelled.
    """
    uploader = Uploader(broker, settings)
    tenants = [tenant(i) if callable(tenant) else tenant for i in range(len(products))]
    gate = asyncio.Semaphore(UPLOADS_AT_ONCE)
    watchers = {t: WorkflowWatcher(broker, t, on_progress) for t in sorted(set(tenants))}
    for watcher in watchers.values():
        await watcher.__aenter__()
    try:

        async def one(product: ProductInput, owner: str) -> WorkflowDone:
            async with gate:
                workflow_id = uuid.uuid4().hex
                if on_start is not None:
                    on_start(workflow_id)
                try:
                    upload = await uploader.upload(
                        product, tenant=owner, priority=priority, workflow_id=workflow_id
                    )
                except PhotoError:
                    raise
                except Exception as exc:  # a publish refused, NATS gone: named by product
                    raise UploadError(product.product_id, exc) from exc
            # nats-py waits for a publish's ack with asyncio.wait_for, which on Python 3.11
            # drops a cancellation that lands as the ack arrives: this upload, cancelled when
            # another failed, went on to wait for its listing until the backstop (80 s more).
            if (task := asyncio.current_task()) is not None and task.cancelling():
                raise asyncio.CancelledError
            if on_upload is not None:
                on_upload(upload)
            # The overall timeout below ends the wait; this one is only a backstop.
            finished = await watchers[owner].wait([upload.workflow_id], timeout_s + 60)
            done = finished[upload.workflow_id]
            if on_done is not None:
                on_done(done)
            return done

        try:
            async with asyncio.timeout(timeout_s), asyncio.TaskGroup() as group:
                pairs = zip(products, tenants, strict=True)
                tasks = [group.create_task(one(p, t)) for p, t in pairs]
        except ExceptionGroup as failed:  # the first failure, as gather would raise it
            raise failed.exceptions[0] from None
        return [task.result() for task in tasks]
    finally:
        for watcher in watchers.values():
            # NATS gone: nothing left to unsubscribe from, and the failure above is the news.
            with contextlib.suppress(*LOST_NATS):
                await watcher.__aexit__(None, None, None)
