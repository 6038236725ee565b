"""Prometheus metrics of a FlipSync process, and the /metrics endpoint that serves them.

``REGISTRY`` is the process's one Prometheus registry (as prometheus_client's own default
registry is): each service registers its counters there once, at import (the router's LLM
result counters live in router/metrics.py). Counted here as work happens: messages each
durable consumer processed. Read when scraped: circuit breaker states (from the server's
``BreakerReader``s) and whatever async ``ScrapeReader``s the composition root hands the
server (budget use, queue depths: see flipsync/scrape.py).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
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

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=True)
"""Every FlipSync metric of this process (plus the standard process, platform and GC ones)."""
for _standard in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    REGISTRY.register(_standard)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
"""Histogram buckets (seconds) shared by FlipSync's latency histograms."""

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

BREAKER_STATES = ("closed", "half_open", "open")

BreakerReader = Callable[[], Awaitable[Mapping[tuple[str, str], str]]]
"""Returns the state (closed, half_open, open) of each (provider, model) circuit breaker."""
ScrapeReader = Callable[[], Awaitable[Iterable[Metric]]]
"""Reads gauges from elsewhere (Redis, JetStream) when /metrics is scraped."""


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
        return [await breaker_states(self._breakers)]

    async def _read(self, reader: ScrapeReader) -> list[Metric]:
        async with asyncio.timeout(self._read_timeout_s):
            return list(await reader())

    async def _scrape(self, _request: web.Request) -> web.Response:
        body = await self.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
