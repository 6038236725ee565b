"""Grade alerts on the bus: an agent's running quality average under its target.

router.routing.grades decides, atomically in Redis, when an agent's average crosses under
its target (once per crossing: the next one only after the average came back to the
target); this module builds the alert and publishes it on grade.alert.<tenant>, kept in the
WORKFLOW stream, with ``<tenant>:<agent>:<crossing>`` as message id, so a retried publish is
stored once. The notifier delivers it to people as it does budget alerts (notifier.service).
"""

from __future__ import annotations

from typing import Protocol

from faststream.nats import NatsBroker

from bus import subjects
from bus.codec import encode
from bus.messages import GradeAlert
from bus.publishing import publish


class GradeAlertSink(Protocol):
    """Where grade alerts go (JetStream in a deployment, a list in a test)."""

    async def __call__(self, alert: GradeAlert, msg_id: str) -> None:
        """Deliver one alert; msg_id is unique per alert, for deduplication."""
        ...


def alert_id(alert: GradeAlert) -> str:
    """The alert's id, the same in every copy: tenant, agent and which crossing."""
    return f"grade:{alert.tenant}:{alert.agent}:{alert.crossing}"


class JetStreamGradeAlerts:
    """Publishes grade alerts on grade.alert.<tenant>, stored in the WORKFLOW stream."""

    def __init__(self, broker: NatsBroker) -> None:
        self._broker = broker

    async def __call__(self, alert: GradeAlert, msg_id: str) -> None:
        """Publish and wait for JetStream's ack."""
        await publish(
            self._broker,
            encode(alert),
            subjects.grade_alert(alert.tenant),
            stream=subjects.STREAM_WORKFLOW,
            msg_id=msg_id,
        )
