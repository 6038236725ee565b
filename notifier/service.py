"""The notifier service: consumes alerts from JetStream and delivers each to its targets,
once per target across every replica; and scans for spend anomalies, delivered the same way
to the anomaly targets.

Alerts come on two subjects, each with a durable consumer of its stream: budget alerts
(budget.alert.>, LEDGER: to the budget's targets and the default ones) and grade alerts
(grade.alert.>, WORKFLOW: to the quality targets and the default ones). Both go through
one handler (``on_alert``): the subject says how to read the message (``_notice_of``), and
the rest (deliver once, nack while a target is owed) is the same.
"""

from __future__ import annotations

import logging

import redis.asyncio as aioredis
from faststream.exceptions import NackMessage
from faststream.nats import NatsRouter

from bus import subjects
from bus.codec import decode
from bus.consumers import Incoming, dead_letter_publisher, durable_consumer, message, working
from bus.errors import WireError
from bus.messages import BudgetAlert, GradeAlert
from bus.settings import Settings
from cost_ledger.aggregates import AggregateStore
from cost_ledger.budgets import keys as budget_keys
from cost_ledger.budgets.config import BudgetConfig
from cost_ledger.budgets.crossings import crossing_of
from cost_ledger.budgets.live import LiveBudgets
from notifier.anomalies import AnomalyWatch
from notifier.errors import TargetError
from notifier.once import DeliverOnce, Delivery
from notifier.render import Notice, budget_notice, grade_notice
from notifier.senders import Sender, Senders
from notifier.targets import parse_target

log = logging.getLogger(__name__)


def prefix(subject_filter: str) -> str:
    """The literal start of a subject filter ending in ">": "grade.alert.>" -> "grade.alert."."""
    return subject_filter.removesuffix(">")


SOURCE = "notifier"
"""Its dead letters go to dlq.notifier."""


class NotifierService:
    """Delivers budget and grade alerts to webhooks and mailboxes; any number of replicas."""

    def __init__(
        self, settings: Settings, redis: aioredis.Redis, sender: Sender | None = None
    ) -> None:
        self._settings = settings
        self._senders = Senders(settings.notify)  # opens its HTTP session on first use
        self._once = DeliverOnce(redis, sender or self._senders, settings.notify)
        self._budgets = LiveBudgets(redis, BudgetConfig.load(settings.budget_config))
        self.anomalies = AnomalyWatch(AggregateStore(redis), self.deliver, settings.notify)
        """The periodic anomaly scan (runs once start() is called, if anomaly targets are set)."""
        self.delivered: dict[Delivery, int] = dict.fromkeys(Delivery, 0)
        """Deliveries by outcome, since start (for tests and metrics)."""

    def router(self) -> NatsRouter:
        """The FastStream router with the durable alert consumers every replica shares."""
        router = NatsRouter()
        self._dead_letter = dead_letter_publisher(router, SOURCE)
        for subject, stream, durable in (
            (subjects.BUDGET_ALERTS_ALL, subjects.STREAM_LEDGER, subjects.DURABLE_NOTIFIER),
            (subjects.GRADE_ALERTS_ALL, subjects.STREAM_WORKFLOW, subjects.DURABLE_NOTIFIER_GRADES),
        ):
            durable_consumer(
                router,
                self.on_alert,
                subject=subject,
                stream=stream,
                durable=durable,
                settings=self._settings,
                workers=4,
            )
        return router

    def start(self) -> None:
        """Start the anomaly scan (the alert consumer runs with the broker)."""
        self.anomalies.start()

    async def close(self) -> None:
        """Stop the anomaly scan and close the webhook session."""
        await self.anomalies.close()
        await self._senders.close()

    async def on_alert(self, incoming: Incoming) -> None:
        """Deliver one alert to each of its targets; nack it (for later) while any is owed."""
        msg = message(incoming)
        try:
            notice, targets = await self._notice_of(msg.raw_message.subject, msg.body)
        except WireError as exc:
            await self._dead_letter(msg, exc.code, exc.reason)
            return
        async with working(msg, self._settings.ack_wait_s / 3):
            owed = await self.deliver(notice, targets)
        if owed:
            raise NackMessage(delay=self._settings.notify.backoff_max_s)

    async def _notice_of(self, subject: str, body: bytes) -> tuple[Notice, list[str]]:
        """The notice of an alert message and its targets; raises WireError if unreadable."""
        notify = self._settings.notify
        if subject.startswith(prefix(subjects.GRADE_ALERTS_ALL)):
            names = [*notify.quality_targets, *notify.default_targets]
            return grade_notice(decode(body, GradeAlert)), list(dict.fromkeys(names))
        alert = decode(body, BudgetAlert)
        # The alert's marker is its id everywhere: the same in every copy of the message.
        alert_id = crossing_of(alert).marker.removeprefix(budget_keys.ALERT_PREFIX)
        return budget_notice(alert, alert_id), await self._targets_of(alert)

    async def deliver(self, notice: Notice, names: list[str]) -> int:
        """Deliver notice to each named target once; returns how many are still owed."""
        owed = 0
        for name in names:
            try:
                target = parse_target(name)
            except TargetError as exc:  # a bad target cannot improve: say so, skip it
                log.warning("notice %s: %s", notice.id, exc)
                continue
            outcome = await self._once.deliver(notice, target, name)
            self.delivered[outcome] += 1
            owed += outcome in (Delivery.BUSY, Delivery.FAILED)
        return owed

    async def _targets_of(self, alert: BudgetAlert) -> list[str]:
        rules = await self._budgets.current()
        spec = rules.budgets.get(alert.budget)
        names = [*(spec.notify if spec else []), *self._settings.notify.default_targets]
        return list(dict.fromkeys(names))  # each target once, in order
