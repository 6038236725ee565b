"""Delivering a notice to a target once across every replica: a claim while sending, then a
sent marker, both in Redis.

A replica claims (SET NX with an expiry) before it sends and marks the pair sent after; a
replica that finds it sent skips it, one that finds it claimed comes back later. Only a
replica that dies between the receiver's answer and the marker can cause a second copy; the
Idempotency-Key header and the email's Message-ID let a receiver drop that one too.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random

import redis.asyncio as aioredis

from bus.settings_sections import NotifySettings
from notifier import keys
from notifier.errors import DeliveryError
from notifier.render import Notice
from notifier.senders import Sender
from notifier.targets import Target, redacted

log = logging.getLogger(__name__)


class Delivery(enum.StrEnum):
    """What became of one notice for one target."""

    SENT = "sent"
    ALREADY_SENT = "already_sent"
    BUSY = "busy"
    """Another replica is sending it now: come back later."""
    FAILED = "failed"
    """Every attempt failed (or one failed for good): come back later."""


class DeliverOnce:
    """Sends a notice to a target unless some replica already did, retrying with backoff."""

    def __init__(self, redis: aioredis.Redis, send: Sender, settings: NotifySettings) -> None:
        self._redis = redis
        self._send = send
        self._settings = settings

    async def deliver(self, notice: Notice, target: Target, name: str) -> Delivery:
        """Deliver notice to target (name is the target's configured string)."""
        sent_key, claim_key = keys.sent(notice.id, name), keys.claim(notice.id, name)
        if await self._redis.exists(sent_key):
            return Delivery.ALREADY_SENT
        claim_ms = int(self._settings.claim_s * 1000)
        if not await self._redis.set(claim_key, "1", nx=True, px=claim_ms):
            return Delivery.BUSY
        try:
            if await self._redis.exists(sent_key):  # sent between the check and the claim
                return Delivery.ALREADY_SENT
            if not await self._attempts(notice, target):
                return Delivery.FAILED
            await self._redis.set(sent_key, "1", ex=keys.SENT_TTL_S)
            return Delivery.SENT
        finally:
            await self._redis.delete(claim_key)

    async def _attempts(self, notice: Notice, target: Target) -> bool:
        s = self._settings
        for attempt in range(s.attempts):
            try:
                await self._send(notice, target)
                return True
            except DeliveryError as exc:
                log.warning("notice %s, attempt %d: %s", notice.id, attempt + 1, exc)
                if exc.permanent:
                    return False
            if attempt + 1 < s.attempts:
                await asyncio.sleep(backoff_s(attempt, s.backoff_base_s, s.backoff_max_s))
        log.warning("notice %s not delivered to %s yet", notice.id, redacted(target))
        return False


def backoff_s(attempt: int, base_s: float, max_s: float, rng: random.Random | None = None) -> float:
    """Full-jitter exponential backoff before retry number attempt + 1."""
    return (rng or random).uniform(0, min(max_s, base_s * 2**attempt))
