"""Upload many products and wait for their listing packages (the CLI's and the bench's path)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from faststream.nats import NatsBroker

from agents.sources import ProductInput
from agents.upload import Uploader
from agents.watch import OnProgress, WorkflowWatcher
from bus.messages import Priority, ProductUploaded, WorkflowDone
from bus.settings import Settings

UPLOADS_AT_ONCE = 8


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
) -> list[WorkflowDone]:
    """Upload every product (a few at a time) and return their final events, in order.

    tenant is one tenant for all, or a function of the product's index (a replay of many
    sellers).
    """
    uploader = Uploader(broker, settings)
    tenants = [tenant(i) if callable(tenant) else tenant for i in range(len(products))]
    gate = asyncio.Semaphore(UPLOADS_AT_ONCE)
    watchers = {t: WorkflowWatcher(broker, t, on_progress) for t in sorted(set(tenants))}
    for watcher in watchers.values():
        await watcher.__aenter__()
    try:

        async def one(product: ProductInput, owner: str) -> ProductUploaded:
            async with gate:
                upload = await uploader.upload(product, tenant=owner, priority=priority)
            if on_upload is not None:
                on_upload(upload)
            return upload

        uploads = await asyncio.gather(*(one(p, t) for p, t in zip(products, tenants, strict=True)))
        done: list[WorkflowDone] = []
        async with asyncio.timeout(timeout_s):
            for upload in uploads:
                finished = await watchers[upload.tenant].wait([upload.workflow_id], timeout_s)
                done.append(finished[upload.workflow_id])
        return done
    finally:
        for watcher in watchers.values():
            await watcher.__aexit__(None, None, None)
