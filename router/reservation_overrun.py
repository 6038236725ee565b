"""Answers that cost more than their reservation: booked in full, counted and alerted.

A reservation is meant to bound the bill (router.token_bound); when a provider still bills
more (a tokenizer finer than the bound's factor, an image rule we do not know), the real cost
is settled and booked as it is, this counter grows, and a budget alert of kind "overrun" goes
out on budget.alert.<tenant>, so the gap is seen and the bound fixed, never silently absorbed.
"""

from __future__ import annotations

import logging

from prometheus_client import Counter

from bus.messages import BudgetAlert, LlmRequest, LlmResult
from bus.metrics import REGISTRY
from cost_ledger.budgets.alerts import AlertSink

log = logging.getLogger(__name__)

OVERRUNS = Counter(
    "flipsync_budget_overruns",
    "Answers whose booked cost exceeded the budget reservation made for them, by tenant.",
    ("tenant",),
    registry=REGISTRY,
)
OVERRUN_MICRO_USD = Counter(
    "flipsync_budget_overrun_micro_usd",
    "Micro-dollars booked above the reservations of overrunning answers, by tenant.",
    ("tenant",),
    registry=REGISTRY,
)


class Overruns:
    """Counts and alerts answers that cost more than reserved."""

    def __init__(self, alerts: AlertSink | None) -> None:
        """Without alerts, overruns are counted and logged only."""
        self._alerts = alerts

    async def record(self, request: LlmRequest, result: LlmResult, reserved: int) -> None:
        """One overrun: the counter, a warning, and an alert (a failed alert is only logged)."""
        over = result.cost_micro_usd - reserved
        OVERRUNS.labels(request.tenant).inc()
        OVERRUN_MICRO_USD.labels(request.tenant).inc(over)
        log.warning(
            "request %s on %s cost %d micro-USD, %d over its %d reservation: booked in full",
            request.id, result.model, result.cost_micro_usd, over, reserved,
        )  # fmt: skip
        if self._alerts is None:
            return
        alert = BudgetAlert(
            scope=f"request:{request.tenant}:{request.id}",
            period="request",
            threshold=1.0,
            limit_micro_usd=reserved,
            spent_micro_usd=result.cost_micro_usd,
            budget="reservation",
            tenant=request.tenant,
            kind="overrun",
            request_id=request.id,
        )
        try:
            await self._alerts(alert, f"overrun-{request.id}")
        except Exception:
            log.warning("overrun alert of request %s not sent", request.id, exc_info=True)
