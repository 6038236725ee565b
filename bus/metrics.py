"""Prometheus metrics of a FlipSync process, and the /metrics endpoint that serves them.

Counted as work happens (a few counter and histogram updates each, on label children cached
per label set): LLM results by tenant, agent, lever, status and model with their latency;
cost, baseline and savings per lever in micro-dollars; messages each durable consumer
processed. Read when scraped: cache hit ratios (from the lever counts), circuit breaker states
(from ``BreakerReader``s) and whatever async ``ScrapeReader``s the composition root hands the
server (budget use, queue depths: see flipsync/scrape.py).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import Counter as Tally
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bus.messages import Lever, LlmResult, Status

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=True)
"""Every FlipSync metric of this process (plus the standard process, platform and GC ones)."""
for _standard in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    REGISTRY.register(_standard)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
REQUEST_LABELS = ("tenant", "agent", "lever", "status", "model")
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
MESSAGES = Counter(
    "flipsync_messages_processed",
    "Messages a durable consumer finished (ok) or gave back for redelivery (error).",
    ("durable", "outcome"),
    registry=REGISTRY,
)
MESSAGE_LATENCY = Histogram(
    "flipsync_message_duration_seconds",
    "Time a durable consumer's handler took per message.",
    ("durable",),
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)

CACHES: Mapping[str, Lever] = {"exact": Lever.EXACT_CACHE, "semantic": Lever.SEMANTIC_CACHE}
"""The caches whose hit ratio is exported, and the lever that marks their hits."""
BREAKER_STATES = ("closed", "half_open", "open")

BreakerReader = Callable[[], Awaitable[Mapping[tuple[str, str], str]]]
"""Returns the state (closed, half_open, open) of each (provider, model) circuit breaker."""
ScrapeReader = Callable[[], Awaitable[Iterable[Metric]]]
"""Reads gauges from elsewhere (Redis, JetStream) when /metrics is scraped."""


class ResultRecorder:
    """Counts the results a router publishes; cheap enough for every request."""

    def __init__(self) -> None:
        self._requests: dict[tuple[str, str, str, str, str], tuple[Counter, Histogram]] = {}
        self._money: dict[tuple[str, str], tuple[Counter, Counter, Counter]] = {}
        self.answered = 0
        """Ok results, the denominator of the cache hit ratios."""
        self.by_lever: Tally[Lever] = Tally()
        """Ok results per lever."""

    def record(self, result: LlmResult, seconds: float) -> None:
        """Count one published result that took seconds to produce."""
        key = (result.tenant, result.agent, result.lever, result.status, result.model)
        children = self._requests.get(key)
        if children is None:
            children = (LLM_REQUESTS.labels(*key), LLM_LATENCY.labels(*key))
            self._requests[key] = children
        children[0].inc()
        children[1].observe(seconds)
        if result.status is Status.OK:
            self.answered += 1
            self.by_lever[result.lever] += 1
        cost, baseline = result.cost_micro_usd, result.baseline_micro_usd
        if cost or baseline:
            money_key = (result.tenant, result.lever.value)
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

    def hit_ratio(self, lever: Lever) -> float:
        """Share of ok results this process served with lever (0 before any)."""
        return self.by_lever[lever] / self.answered if self.answered else 0.0


RESULTS = ResultRecorder()
"""The process's recorder of router results."""

_breaker_readers: list[BreakerReader] = []


def register_breaker_reader(reader: BreakerReader) -> None:
    """Export the breaker states reader returns on every scrape of this process, besides
    those of the servers' own breaker readers (flipsync/scrape.py wires a router's)."""
    _breaker_readers.append(reader)


def unregister_breaker_reader(reader: BreakerReader) -> None:
    """Stop exporting a reader's breakers (its stack stopped)."""
    if reader in _breaker_readers:
        _breaker_readers.remove(reader)


class _ReadAtScrape(Collector):
    """Cache hit ratios, computed from the lever counts when the registry is collected."""

    def collect(self) -> Iterator[Metric]:
        ratio = GaugeMetricFamily(
            "flipsync_cache_hit_ratio",
            "Share of ok results this process served from a cache, by cache.",
            labels=["cache"],
        )
        for cache, lever in CACHES.items():
            ratio.add_metric([cache], RESULTS.hit_ratio(lever))
        yield ratio


REGISTRY.register(_ReadAtScrape())

Handler = Callable[[Any], Awaitable[None]]


def count_messages(durable: str, handler: Handler) -> Handler:
    """handler, counting each message it finishes or raises on, for a durable consumer."""
    ok = MESSAGES.labels(durable, "ok")
    failed = MESSAGES.labels(durable, "error")
    took = MESSAGE_LATENCY.labels(durable)

    @functools.wraps(handler)
    async def counted(incoming: Any) -> None:
        started = time.perf_counter()
        try:
            await handler(incoming)
        except BaseException:
            failed.inc()
            raise
        ok.inc()
        took.observe(time.perf_counter() - started)

    return counted


async def breaker_states(readers: Iterable[BreakerReader]) -> Metric:
    """flipsync_breaker_state: 1 for each breaker's state, 0 for its others."""
    state = GaugeMetricFamily(
        "flipsync_breaker_state",
        "1 for the state each provider circuit breaker is in, 0 for the others.",
        labels=["provider", "model", "state"],
    )
    for reader in readers:
        for (provider, model), current in (await reader()).items():
            for option in sorted({*BREAKER_STATES, str(current)}):
                state.add_metric([provider, model, option], 1.0 if option == current else 0.0)
    return state


class _Snapshot(Collector):
    """The registry plus the families async readers returned for one scrape."""

    def __init__(self, extra: list[Metric]) -> None:
        self._extra = extra

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()
        yield from self._extra


class MetricsServer:
    """Serves GET /metrics over HTTP on the running event loop (aiohttp)."""

    def __init__(
        self,
        host: str,
        port: int,
        readers: Sequence[ScrapeReader] = (),
        *,
        breakers: Sequence[BreakerReader] = (),
        read_timeout_s: float = 5.0,
    ) -> None:
        self.host = host
        self.port = port
        self._readers = [*readers, self._read_breakers]
        self._breakers = list(breakers)
        self._read_timeout_s = read_timeout_s
        self._runner: web.AppRunner | None = None
        self.scrape_errors = 0

    @property
    def url(self) -> str:
        """Where to scrape it from this machine."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}/metrics"

    async def start(self) -> None:
        """Listen; raises OSError if the port is taken."""
        app = web.Application()
        app.router.add_get("/metrics", self._scrape)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner

    async def stop(self) -> None:
        """Stop listening."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def render(self) -> bytes:
        """The text exposition of every metric, with the readers' gauges read now."""
        extra: list[Metric] = []
        outcomes = await asyncio.gather(
            *(self._read(reader) for reader in self._readers), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                self.scrape_errors += 1
                log.warning("a metrics reader failed: %r", outcome)
            else:
                extra.extend(outcome)
        errors = GaugeMetricFamily(
            "flipsync_scrape_errors", "Readers that failed since this process started."
        )
        errors.add_metric([], float(self.scrape_errors))
        extra.append(errors)
        return generate_latest(_Snapshot(extra))

    async def _read_breakers(self) -> Iterable[Metric]:
        return [await breaker_states([*self._breakers, *_breaker_readers])]

    async def _read(self, reader: ScrapeReader) -> list[Metric]:
        async with asyncio.timeout(self._read_timeout_s):
            return list(await reader())

    async def _scrape(self, _request: web.Request) -> web.Response:
        body = await self.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
