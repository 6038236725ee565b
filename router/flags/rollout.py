"""Deterministic rollout: a request's bucket is a hash of its content, never of a dice roll.

The fingerprint covers what the agent asked (tenant, agent, task type, messages, schema name)
and not the request id, so a retry or a repeat of the same request lands in the same arm.
The bucket hashes the fingerprint with a salt (the flag's or the experiment's name), so
independent flags split traffic independently while the arms of one experiment, sharing
a salt, partition it.
"""

from __future__ import annotations

import hashlib

import msgspec

from bus.messages import LlmRequest

BUCKETS = 10_000
"""Resolution of a rollout: percentages are honoured to 0.01 of a point."""
_ENCODER = msgspec.json.Encoder()


def request_fingerprint(request: LlmRequest) -> bytes:
    """A digest of the request's content: equal for the same request, whatever its id."""
    digest = hashlib.blake2b(digest_size=16)
    for part in (request.tenant, request.agent, request.task_type):
        digest.update(part.encode())
        digest.update(b"\0")
    digest.update(_ENCODER.encode(request.messages))
    if request.output_schema is not None:
        digest.update(request.output_schema.name.encode())
    return digest.digest()


def bucket(salt: str, fingerprint: bytes) -> float:
    """Where a request falls in [0, 100) for one salt, in steps of 0.01."""
    digest = hashlib.blake2b(fingerprint, digest_size=8, key=salt.encode()[:64])
    return (int.from_bytes(digest.digest(), "big") % BUCKETS) * 100 / BUCKETS


def in_range(position: float, start: float, percent: float) -> bool:
    """Whether a bucket position falls in [start, start + percent)."""
    return start <= position < start + percent
