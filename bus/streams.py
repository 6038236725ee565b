"""The JetStream streams, buckets and object stores FlipSync needs, created idempotently."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, ObjectStoreConfig, RetentionPolicy, StreamConfig
from nats.js.errors import BadRequestError

from bus import subjects
from bus.settings import Settings

DAY_S = 24 * 3600


DUPLICATE_WINDOW_S = 120.0
"""How long a stream remembers a message id: a second publish within it is acked as a
duplicate and not stored (bus.llm_client relies on it for the requests stream)."""


def stream_configs(settings: Settings, replicas: int | None = None) -> list[StreamConfig]:
    """Every stream, with retention fitted to what it holds (replicas: settings.stream_replicas)."""
    replicas = replicas or settings.stream_replicas
    ages = {
        subjects.STREAM_REQUESTS: DAY_S,
        subjects.STREAM_RESULTS: settings.result_ttl_s,
        subjects.STREAM_LEDGER: 0,  # the ledger is the source of truth for money: kept
        subjects.STREAM_WORKFLOW: 7 * DAY_S,
        subjects.STREAM_DLQ: 30 * DAY_S,
    }
    return [
        StreamConfig(
            name=name,
            subjects=subject_list,
            retention=RetentionPolicy.LIMITS,
            max_age=float(ages[name]),
            duplicate_window=DUPLICATE_WINDOW_S,
            num_replicas=replicas,
            allow_direct=True,
        )
        for name, subject_list in subjects.STREAM_SUBJECTS.items()
    ]


async def ensure_streams(
    js: JetStreamContext, settings: Settings, replicas: int | None = None
) -> None:
    """Create or update every stream, bucket and object store; safe to call from each replica.

    replicas defaults to settings.stream_replicas (3 on a three-node cluster, 1 embedded).
    """
    replicas = replicas or settings.stream_replicas
    for config in stream_configs(settings, replicas):
        try:
            await js.add_stream(config)
        except BadRequestError:
            await js.update_stream(config)
    await js.create_key_value(
        KeyValueConfig(bucket=subjects.BUCKET_CHECKPOINTS, history=1, replicas=replicas)
    )
    await js.create_object_store(subjects.OBJECT_STORE_PHOTOS, ObjectStoreConfig(replicas=replicas))
