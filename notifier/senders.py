"""The two ways a notice leaves: a JSON POST to a webhook, an email over SMTP."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Protocol

import aiohttp
import aiosmtplib

from bus.settings_sections import NotifySettings
from notifier.errors import DeliveryError
from notifier.render import Notice, email_text, slack_body
from notifier.targets import Mailbox, Target, Webhook, redacted

IDEMPOTENCY_HEADER = "Idempotency-Key"
"""Carries the notice id, for receivers that can drop a duplicate themselves."""


class Sender(Protocol):
    """Delivers one notice to one target, or raises DeliveryError."""

    async def __call__(self, notice: Notice, target: Target) -> None:
        """One attempt."""
        ...


class Senders:
    """Webhook and SMTP delivery, one attempt per call; open() before use, close() after."""

    def __init__(self, settings: NotifySettings) -> None:
        self._settings = settings
        self._http: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        """Start the HTTP session (webhook POSTs share its connections)."""
        if self._http is None:
            timeout = aiohttp.ClientTimeout(total=self._settings.timeout_s)
            self._http = aiohttp.ClientSession(timeout=timeout)

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def __call__(self, notice: Notice, target: Target) -> None:
        """Deliver notice to target once, or raise DeliveryError."""
        if isinstance(target, Webhook):
            await self._post(notice, target)
        else:
            await self._mail(notice, target)

    async def _post(self, notice: Notice, target: Webhook) -> None:
        await self.open()
        assert self._http is not None
        shown = redacted(target)
        try:
            async with self._http.post(
                target.url, json=slack_body(notice), headers={IDEMPOTENCY_HEADER: notice.id}
            ) as response:
                if response.status < 300:
                    return
                # A 4xx other than 408/429 says the request is wrong: retrying cannot help.
                permanent = 400 <= response.status < 500 and response.status not in (408, 429)
                reason = f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DeliveryError(shown, f"{type(exc).__name__}: {exc}") from exc
        raise DeliveryError(shown, reason, permanent=permanent)

    async def _mail(self, notice: Notice, target: Mailbox) -> None:
        s = self._settings
        subject, body = email_text(notice)
        message = EmailMessage()
        try:
            message["From"] = s.smtp_from
            message["To"] = target.address
            message["Subject"] = subject
            message["Message-ID"] = f"<{_safe(notice.id)}@flipsync>"  # receivers may dedupe
            message.set_content(body)
        except ValueError as exc:  # a header the email library refuses: retrying cannot help
            raise DeliveryError(
                redacted(target), f"unsendable email: {exc}", permanent=True
            ) from exc
        try:
            await aiosmtplib.send(
                message,
                hostname=s.smtp_host,
                port=s.smtp_port,
                username=s.smtp_user,
                password=s.smtp_password.get_secret_value() if s.smtp_password else None,
                start_tls=s.smtp_starttls,
                timeout=s.timeout_s,
            )
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            raise DeliveryError(redacted(target), f"{type(exc).__name__}: {exc}") from exc


def _safe(notice_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-._" else "." for c in notice_id)
