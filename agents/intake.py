"""Upload many products and wait for their listing packages (the CLI's and the bench's path)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence

from faststream.nats import NatsBroker

from agents.sources import ProductInput
from agents.upload import Uploader
from agents.watch import OnProgress, WorkflowWatcher
from bus.messages import Priority, ProductUploaded, WorkflowDone
from bus.settings import Settings

UPLOADS_AT_ONCE = 8
OnDone = Callable[[WorkflowDone], None]
"""Called with each product's final event as it arrives (its package can be written then)."""


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
    caller knows every workflow it may have started (agents.cancel).
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
                upload = await uploader.upload(
                    product, tenant=owner, priority=priority, workflow_id=workflow_id
                )
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
            await watcher.__aexit__(None, None, None)
