"""Local stand-ins for the people alerts go to: a webhook receiver (Slack's incoming-webhook
shape) that can fail its first requests, and an SMTP server keeping what it receives."""

from __future__ import annotations

from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from bus.embedded.process import free_port

HOST = "127.0.0.1"


@dataclass(kw_only=True)
class Post:
    """One POST the webhook answered with 200."""

    body: dict[str, Any]
    headers: dict[str, str]


@dataclass(kw_only=True)
class WebhookReceiver:
    """An HTTP server on a free port: answers 503 to its first fail_first POSTs, 200 after."""

    fail_first: int = 0
    accepted: list[Post] = field(default_factory=list)
    refused: int = 0
    port: int = field(default_factory=free_port)
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """Where to POST: a path like Slack's, with its secret part."""
        return f"http://{HOST}:{self.port}/services/T000/B000/secret"

    async def start(self) -> None:
        """Listen."""
        app = web.Application()
        app.router.add_post("/services/{path:.*}", self._post)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, HOST, self.port).start()

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()

    async def _post(self, request: web.Request) -> web.Response:
        body = await request.json()
        if self.refused < self.fail_first:
            self.refused += 1
            return web.Response(status=503, text="try later")
        self.accepted.append(Post(body=body, headers=dict(request.headers)))
        return web.Response(text="ok")


class _Keep:
    def __init__(self, kept: list[Message]) -> None:
        self.kept = kept

    async def handle_DATA(  # noqa: N802 - the name aiosmtpd calls
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        content = envelope.content
        data = content if isinstance(content, bytes) else str(content).encode()
        self.kept.append(message_from_bytes(data))
        return "250 OK"


class SmtpReceiver:
    """An SMTP server on a free port (aiosmtpd, on its own thread) keeping every message."""

    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[Message] = []
        self._controller = Controller(_Keep(self.messages), hostname=HOST, port=self.port)

    def start(self) -> None:
        """Listen."""
        self._controller.start()

    def stop(self) -> None:
        """Stop listening."""
        self._controller.stop()
