"""The durable a pull consumer reads (bus.pull_loop): where it is, and its settings."""

from __future__ import annotations

from dataclasses import dataclass

from nats.js.api import AckPolicy, ConsumerConfig, ConsumerInfo

from bus.consumers import consumer_limits
from bus.settings import Settings


@dataclass(frozen=True)
class Durable:
    """Where a pull consumer reads: its subject filter, stream and shared durable name."""

    subject: str
    stream: str
    durable: str


def consumer_config(where: Durable, settings: Settings, workers: int) -> ConsumerConfig:
    """The durable's settings: bus.consumers.consumer_limits, named and filtered."""
    config = consumer_limits(settings, workers)
    config.durable_name = where.durable
    config.filter_subject = where.subject
    config.ack_policy = AckPolicy.EXPLICIT
    return config


def delivered(info: ConsumerInfo) -> int:
    """How many deliveries the durable has made (its last delivery's consumer sequence)."""
    return (info.delivered.consumer_seq or 0) if info.delivered is not None else 0
