"""The JetStream buckets agents keep their state in, opened (and created when missing) once."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig
from nats.js.errors import BucketNotFoundError
from nats.js.object_store import ObjectStore

from agents.checkpoints import CheckpointStore
from agents.photo_memory import PhotoMemory
from bus import subjects
from bus.settings import Settings


@dataclass(frozen=True, kw_only=True)
class Stores:
    """Checkpoints, photo memory and the photo object store of one connection."""

    checkpoints: CheckpointStore
    photos: PhotoMemory
    objects: ObjectStore


class StoreOpener:
    """Opens the stores on first use and hands the same ones out afterwards."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._stores: Stores | None = None
        self._lock = asyncio.Lock()

    async def __call__(self, js: JetStreamContext) -> Stores:
        """The stores, opened once per process."""
        if self._stores is None:
            async with self._lock:
                if self._stores is None:
                    self._stores = await open_stores(js, self._settings)
        return self._stores


async def open_stores(js: JetStreamContext, settings: Settings) -> Stores:
    """Open the buckets; the photo-analysis bucket is created here when it does not exist."""
    try:
        photo_kv = await js.key_value(subjects.BUCKET_PHOTO_ANALYSES)
    except BucketNotFoundError:
        photo_kv = await js.create_key_value(
            KeyValueConfig(
                bucket=subjects.BUCKET_PHOTO_ANALYSES,
                history=1,
                ttl=float(settings.photo_memory_ttl_s),
                replicas=settings.stream_replicas,
            )
        )
    return Stores(
        checkpoints=CheckpointStore(await js.key_value(subjects.BUCKET_CHECKPOINTS)),
        photos=PhotoMemory(photo_kv, claim_s=settings.photo_claim_s),
        objects=await js.object_store(subjects.OBJECT_STORE_PHOTOS),
    )
