"""Notify targets, from the strings a budget or the settings name: a webhook or a mailbox."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from notifier.errors import TargetError

MAILTO = "mailto:"


@dataclass(frozen=True, kw_only=True)
class Webhook:
    """An HTTP(S) URL that takes a Slack-compatible JSON POST."""

    url: str


@dataclass(frozen=True, kw_only=True)
class Mailbox:
    """An email address, reached over the configured SMTP relay."""

    address: str


Target = Webhook | Mailbox


def parse_target(text: str) -> Target:
    """The target a string names; raises TargetError for anything else."""
    if text.startswith(MAILTO):
        address = text.removeprefix(MAILTO)
        local, at, domain = address.partition("@")
        if not (local and at and domain) or any(c in address for c in " \r\n<>,"):
            raise TargetError(text, "not one plain email address")
        return Mailbox(address=address)
    parts = urlsplit(text)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise TargetError(text, "neither an http(s) URL nor a mailto: address")
    return Webhook(url=text)


def redacted(target: Target) -> str:
    """A target as logs and keys may show it: a webhook's URL path is its secret, so only its
    host is shown."""
    if isinstance(target, Mailbox):
        return f"{MAILTO}{target.address}"
    parts = urlsplit(target.url)
    return f"{parts.scheme}://{parts.netloc}/…"
