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
QUESTION_VERSION = 2
"""A log record with its question instead of a vector (pending, router.semantic.index).
Replicas before pending entries read every version-1 record as carrying a vector and would
index an empty one, failing every later lookup in its partition; they skip this version."""


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
    """float32, little-endian; empty when the entry was stored before its question was
    embedded (question then holds it, and v is QUESTION_VERSION)."""
    v: int = RECORD_VERSION
    actions: list[str] = []
    """The question's opposite-intent axes (compared with a request's, pairwise)."""
    unknown: list[str] = []
    """The question's unknown words (compared with a request's, pairwise)."""
    words: list[str] = []
    """The question's words (router.semantic.minimal_pairs; compared pairwise); an entry
    stored before they were kept has none and is not compared."""
    question: str = ""
    """The question, in a record without a vector: a replica embeds it when a lookup first
    searches the entry's partition (router.semantic.index, pending entries)."""

    def meta(self) -> EntryMeta:
        """The index's view of the entry."""
        return EntryMeta(
            tenant=self.tenant,
            entry_id=self.entry_id,
            partition=self.partition,
            answer_key=self.answer_key,
            created_ms=self.created_ms,
            expires_ms=self.expires_ms,
            actions=frozenset(self.actions),
            unknown=frozenset(self.unknown),
            words=tuple(self.words),
        )

    def array(self) -> Vectors:
        """The vector as a numpy row."""
        return np.frombuffer(self.vector, dtype="<f4").astype(np.float32)


class Observation(msgspec.Struct, kw_only=True):
    """One verified outcome of a lookup (router.semantic.calibration), shared by replicas."""

    tenant: str
    task_type: str
    entry_id: str
    """The best entry of the lookup."""
    score: float
    correct: bool
    """Whether the entry's answer was (or would have been) right for the request."""
    source: str
    """What verified it: "miss" (the paid answer), "validator", "feedback" or "shadow"."""
    v: int = RECORD_VERSION


class ServedHit(msgspec.Struct, kw_only=True):
    """A served semantic hit, kept under its request id until a verdict on it arrives (a
    validator, explicit feedback or a shadow check), on whichever replica that arrives."""

    tenant: str
    task_type: str
    entry_id: str
    answer_key: str
    """The served answer's digest (request_view.answer_key)."""
    score: float
    v: int = RECORD_VERSION


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
_OBSERVATION_DECODER = msgspec.msgpack.Decoder(Observation)
_SERVED_DECODER = msgspec.msgpack.Decoder(ServedHit)


def encode(record: LogRecord | StoredEntry | Observation | ServedHit) -> bytes:
    """A record as msgpack bytes."""
    return _ENCODER.encode(record)


def decode_log(raw: bytes) -> LogRecord | None:
    """A log record (with a vector, or its question), or None if it is unreadable or of
    another version."""
    try:
        record = _LOG_DECODER.decode(raw)
    except msgspec.DecodeError:
        return None
    return record if record.v in (RECORD_VERSION, QUESTION_VERSION) else None


def decode_entry(raw: bytes) -> StoredEntry | None:
    """A stored entry, or None if it is unreadable or of another version."""
    try:
        entry = _ENTRY_DECODER.decode(raw)
    except msgspec.DecodeError:
        return None
    return entry if entry.v == RECORD_VERSION else None


def decode_observation(raw: bytes) -> Observation | None:
    """An observation, or None if it is unreadable or of another version."""
    try:
        observation = _OBSERVATION_DECODER.decode(raw)
    except msgspec.DecodeError:
        return None
    return observation if observation.v == RECORD_VERSION else None


def decode_served(raw: bytes) -> ServedHit | None:
    """A served hit, or None if it is unreadable or of another version."""
    try:
        served = _SERVED_DECODER.decode(raw)
    except msgspec.DecodeError:
        return None
    return served if served.v == RECORD_VERSION else None
