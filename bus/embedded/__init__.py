"""Launchers of the embedded nats-server and redis-server."""

from bus.embedded.nats_server import EmbeddedNats
from bus.embedded.redis_server import EmbeddedRedis

__all__ = ["EmbeddedNats", "EmbeddedRedis"]
