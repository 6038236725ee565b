"""Prometheus counters of the router's LLM results, in the process registry (bus.metrics).

Counted as each result is published (a few counter and histogram updates, on label children
cached per label set): requests by tenant, agent, lever, status and model with their latency;
cost, baseline and savings per lever in micro-dollars. Tenants, agents and models label at
most MAX_LABEL_VALUES series each; past that, results count under OTHER.

No hit-ratio gauge is exported: a ratio one replica computes alone is wrong when several
router replicas serve the traffic. Derive it in Prometheus from every replica's counters, e.g.
the exact cache's hit ratio over five minutes::

    sum(rate(flipsync_llm_requests_total{lever="exact_cache", status="ok"}[5m]))
      / sum(rate(flipsync_llm_requests_total{status="ok"}[5m]))

(``lever="semantic_cache"`` for the semantic cache; add ``by (tenant)`` to both sums per tenant.)
"""

from __future__ import annotations

import logging

from prometheus_client import Counter, Histogram

from bus.messages import LlmResult
from bus.metrics import LATENCY_BUCKETS, REGISTRY

log = logging.getLogger(__name__)

REQUEST_LABELS = ("tenant", "agent", "lever", "status", "model")
MAX_LABEL_VALUES = {"tenant": 1000, "agent": 200, "model": 200}
"""Distinct values one recorder labels series with: a sender naming a new tenant (or agent)
per request would otherwise add series to the registry without end. Past the bound, results
are counted under OTHER."""
OTHER = "_other"
MONEY_LABELS = ("tenant", "lever")

LLM_REQUESTS = Counter(
    "flipsync_llm_requests",
    "LLM requests answered by the router, by tenant, agent, lever, status and model.",
    REQUEST_LABELS,
    registry=REGISTRY,
)
LLM_LATENCY = Histogram(
    "flipsync_llm_request_duration_seconds",
    "Time the router took from taking a request to publishing its result.",
    REQUEST_LABELS,
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
LLM_COST = Counter(
    "flipsync_llm_cost_micro_usd",
    "What was paid for answered requests, in micro-dollars, per lever.",
    MONEY_LABELS,
    registry=REGISTRY,
)
LLM_BASELINE = Counter(
    "flipsync_llm_baseline_micro_usd",
    "What the naive path would have paid for the same requests, in micro-dollars, per lever.",
    MONEY_LABELS,
    registry=REGISTRY,
)
LLM_SAVINGS = Counter(
    "flipsync_llm_savings_micro_usd",
    "Baseline minus cost of answered requests, in micro-dollars, per lever (a request that "
    "cost more than its baseline adds 0 here; baseline - cost of the two counters is exact).",
    MONEY_LABELS,
    registry=REGISTRY,
)


class ResultRecorder:
    """Counts the results a router publishes; cheap enough for every request."""

    def __init__(self) -> None:
        self._bounds = {name: LabelBound(name, limit) for name, limit in MAX_LABEL_VALUES.items()}
        self._requests: dict[tuple[str, str, str, str, str], tuple[Counter, Histogram]] = {}
        self._money: dict[tuple[str, str], tuple[Counter, Counter, Counter]] = {}

    def record(self, result: LlmResult, seconds: float) -> None:
        """Count one published result that took seconds to produce."""
        tenant = self._bounds["tenant"](result.tenant)
        agent = self._bounds["agent"](result.agent)
        model = self._bounds["model"](result.model)
        key = (tenant, agent, result.lever, result.status, model)
        children = self._requests.get(key)
        if children is None:
            children = (LLM_REQUESTS.labels(*key), LLM_LATENCY.labels(*key))
            self._requests[key] = children
        children[0].inc()
        children[1].observe(seconds)
        cost, baseline = result.cost_micro_usd, result.baseline_micro_usd
        if cost or baseline:
            money_key = (tenant, result.lever.value)
            money = self._money.get(money_key)
            if money is None:
                money = (
                    LLM_COST.labels(*money_key),
                    LLM_BASELINE.labels(*money_key),
                    LLM_SAVINGS.labels(*money_key),
                )
                self._money[money_key] = money
            if cost > 0:
                money[0].inc(cost)
            if baseline > 0:
                money[1].inc(baseline)
            if baseline > cost:
                money[2].inc(baseline - cost)


class LabelBound:
    """The values of one label a recorder has used, at most limit; the rest become OTHER
    (said once in the log)."""

    def __init__(self, name: str, limit: int) -> None:
        self._name = name
        self._limit = limit
        self._seen: set[str] = set()

    def __call__(self, value: str) -> str:
        """value if it is labelled already or there is room, else OTHER."""
        if value in self._seen:
            return value
        if len(self._seen) < self._limit:
            self._seen.add(value)
            return value
        if len(self._seen) == self._limit:
            self._seen.add(OTHER)  # marks the warning as given
            log.warning(
                "metrics: over %d %s values, the rest are counted as %r", self._limit,
                self._name, OTHER,
            )  # fmt: skip
        return OTHER
