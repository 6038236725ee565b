"""The notifier: delivers budget alerts and spend anomalies to webhooks and email, once each."""

from notifier.service import NotifierService

__all__ = ["NotifierService"]
