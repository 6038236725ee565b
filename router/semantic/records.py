"""What the semantic cache keeps in Redis: msgpack-encoded, versioned records.

These are storage records of one package, not messages between services, so they live here
rather than in bus.messages. A reader skips a record of another version or model.
"""

from __future__ import annotations

import msgspec
import numpy as np

from bus.messages import LlmResult
from router.semantic.index import EntryMeta
from router.semantic.protocol import Vectors

RECORD_VERSION = 1


class LogRecord(msgspec.Struct, kw_only=True):
    """One entry as replicas learn of it from the log stream: vector and metadata."""

    tenant: str
    entry_id: str
    task_type: str
    partition: str
    answer_key: str
    created_ms: int
    expires_ms: int
    model: str
    """The embedder that made the vector: vectors of two models are never compared."""
    vector: bytes
    """float32, little-endian."""
    v: int = RECORD_VERSION

    def meta(self) -> EntryMeta:
        """The index's view of the entry."""
        return EntryMeta(
            tenant=self.tenant,
            entry_id=self.entry_id,
            partition=self.partition,
            answer_key=self.answer_key,
            created_ms=self.created_ms,
            expires_ms=self.expires_ms,
        )

    def array(self) -> Vectors:
        """The vector as a numpy row."""
        return np.frombuffer(self.vector, dtype="<f4").astype(np.float32)


class StoredEntry(msgspec.Struct, kw_only=True):
    """One entry as kept under its own key: its log record, question and cached result."""

    record: LogRecord
    question: str
    """The question that was answered (the tenant's own data, under the tenant's key)."""
    entities: str
    """The question's entities, human-readable."""
    result: LlmResult
    v: int = RECORD_VERSION


def vector_bytes(vector: Vectors) -> bytes:
    """A vector as float32 little-endian bytes."""
    return np.asarray(vector, dtype="<f4").tobytes()


_ENCODER = msgspec.msgpack.Encoder()
_LOG_DECODER = msgspec.msgpack.Decoder(LogRecord)
_ENTRY_DECODER = msgspec.msgpack.Decoder(StoredEntry)


def encode(record: LogRecord | StoredEntry) -> bytes:
    """A record as msgpack bytes."""
    return _ENCODER.encode(record)


def decode_log(raw: bytes) -> LogRecord | None:
    """A log record, or None if it is unreadable or of another version."""
    try:
        record = _LOG_DECODER.decode(raw)
    except msgspec.DecodeError:
        return None
    return record if record.v == RECORD_VERSION else None


def decode_entry(raw: bytes) -> StoredEntry | None:
    """A stored entry, or None if it is unreadable or of another version."""
    try:
        entry = _ENTRY_DECODER.decode(raw)
    except msgspec.DecodeError:
        return None
    return entry if entry.v == RECORD_VERSION else None
