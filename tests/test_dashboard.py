"""The operator dashboard in a real browser: Debian's chromium, driven by Playwright.

A real Redis holds three weeks of ledger events (aggregates and budget counters, as the ledger
service leaves them), the HTTP API serves the page and the cost views with uvicorn on a free
port, and headless Chromium loads the page with an operator key. The screenshot is kept at
tests/output/dashboard.png (gitignored).
"""

from __future__ import annotations

import asyncio
import os
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from playwright.async_api import ConsoleMessage, Page, Route, async_playwright

from api.app import create_app
from api.dashboard import DASHBOARD_PATH
from api.server import ApiServer
from bus.broker import make_broker
from bus.embedded import EmbeddedNats, EmbeddedRedis
from bus.messages import LedgerEvent, Lever
from bus.settings import Settings
from bus.streams import ensure_streams
from cost_ledger.aggregates import AggregateStore
from tests.dashboard_ledger import (
    ACME_KEY,
    DAYS,
    LEVERS,
    OPERATOR_KEY,
    SHORT_HOURS,
    SPIKE_AGO,
    ZERO_CALL_LEVERS,
    Ledger,
    fill_ledger,
    short_ledger_events,
)

CHARTS = ("chart-spend", "chart-savings", "chart-routing", "chart-products", "chart-forecast")
TABLES = (
    "table-budgets",
    "table-anomalies",
    "table-recommendations",
    "table-zero-call",
    "table-places",
)
CHROMIUM = Path(os.environ.get("FLIPSYNC_CHROMIUM", "/usr/bin/chromium"))
"""Debian's chromium (`make test` installs it); Playwright never downloads a browser here."""
SCREENSHOT = Path(__file__).parent / "output" / "dashboard.png"


@dataclass(frozen=True)
class Served:
    """A running HTTP API and what it serves."""

    base_url: str
    ledger: Ledger


@pytest.fixture(scope="module")
async def served(
    nats_server: EmbeddedNats, redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Served]:
    """The HTTP API (api.app.create_app) over a filled ledger, served on a free port; the
    module's tests only read it, so they share it."""
    broker = make_broker(nats_server.url)
    await broker.connect()
    await ensure_streams(broker.connection.jetstream(), Settings())
    app_redis = aioredis.Redis.from_url(redis_server.url)
    await app_redis.flushall()
    ledger, settings = await fill_ledger(app_redis, broker, tmp_path_factory.mktemp("dashboard"))
    server = ApiServer(create_app(broker, app_redis, settings), "127.0.0.1", 0)
    await server.start()
    yield Served(base_url=server.url, ledger=ledger)
    await server.stop()
    await app_redis.aclose()
    await broker.stop()


@dataclass(frozen=True)
class Fresh:
    """A running HTTP API over a ledger of a few hours only."""

    base_url: str
    events: list[LedgerEvent]


@pytest.fixture(scope="module")
async def fresh(nats_server: EmbeddedNats, redis_server: EmbeddedRedis) -> AsyncIterator[Fresh]:
    """A second API over its own Redis database (so the three-week ledger is not in it)
    holding one tenant's first hours: the page must draw them per hour."""
    broker = make_broker(nats_server.url)
    await broker.connect()
    app_redis = aioredis.Redis.from_url(redis_server.url + "/3")
    await app_redis.flushdb()
    events = short_ledger_events(datetime.now(UTC))
    store = AggregateStore(app_redis)
    for event in events:
        assert await store.apply(event)
    settings = Settings(api_keys={OPERATOR_KEY: "*"})
    server = ApiServer(create_app(broker, app_redis, settings), "127.0.0.1", 0)
    await server.start()
    yield Fresh(base_url=server.url, events=events)
    await server.stop()
    await app_redis.flushdb()
    await app_redis.aclose()
    await broker.stop()


def chromium() -> str:
    """The browser's path; fails the test, saying how to install it, when it is missing."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it, or apt-get install chromium")
    return str(CHROMIUM)


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


async def test_page_and_assets_need_no_key_but_the_data_does(served: Served) -> None:
    status, headers, body = await asyncio.to_thread(_get, served.base_url + DASHBOARD_PATH)
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b'<canvas id="chart-spend"' in body
    assert "script-src 'self'" in headers["content-security-policy"]
    status, headers, body = await asyncio.to_thread(
        _get, served.base_url + "/dashboard/assets/vendor/chart.umd.min.js"
    )
    assert status == 200 and headers["content-type"].startswith("text/javascript")
    assert body.startswith(b"/*!\n * Chart.js v4") and b"MIT License" in body[:200]
    for missing in ("nope.js", "../dashboard.py", "vendor/chart.js.LICENSE.md"):
        status, _, body = await asyncio.to_thread(
            _get, f"{served.base_url}/dashboard/assets/{missing}"
        )
        assert status == 404, missing
    status, _, _ = await asyncio.to_thread(_get, served.base_url + "/api/cost/spend")
    assert status == 401


async def _open(page: Page, url: str) -> None:
    await page.goto(url)
    # A selector, not wait_for_function: the page's CSP forbids the eval that would need.
    await page.wait_for_selector(
        "body[data-loaded=true], body[data-loaded=partial]", state="attached", timeout=20_000
    )


@dataclass(frozen=True)
class Drawn:
    """What one Chart.js chart on the page holds: its labels and each dataset's values."""

    labels: list[str]
    series: dict[str, list[float | None]]
    """Dataset label -> values (dollars for money: the page turns micro-dollars into dollars)."""

    def micro(self, dataset: str) -> dict[str, int]:
        """A money dataset back in micro-dollars, by label."""
        values = self.series[dataset]
        return {k: round(v * 1_000_000) for k, v in zip(self.labels, values, strict=True) if v}


async def _drawn(page: Page, canvas_id: str) -> Drawn:
    raw = await page.evaluate(
        """(id) => {
            const chart = Chart.getChart(document.getElementById(id));
            return { labels: chart.data.labels,
                     datasets: chart.data.datasets.map((d) => ({ label: d.label, data: d.data })) };
        }""",
        canvas_id,
    )
    return Drawn(
        labels=[str(label) for label in raw["labels"]],
        series={d["label"]: list(d["data"]) for d in raw["datasets"]},
    )


@pytest.mark.slow
async def test_dashboard_draws_every_chart_in_chromium(served: Served) -> None:
    errors: list[str] = []
    outside: list[str] = []
    requested: list[str] = []

    async def local_only(route: Route) -> None:
        # The page must never reach a CDN: anything but this server is refused and recorded.
        requested.append(route.request.url)
        if route.request.url.startswith(served.base_url):
            await route.continue_()
        else:
            outside.append(route.request.url)
            await route.abort()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium(), headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("console", on_console)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.route("**/*", local_only)
            await _open(page, f"{served.base_url}{DASHBOARD_PATH}#key={OPERATOR_KEY}")
            status = await page.inner_text("#status")
            assert await page.evaluate("document.body.dataset.loaded") == "true", status
            ready = await page.eval_on_selector_all(
                "[data-ready]", "els => els.map(e => [e.id, e.dataset.ready])"
            )
            assert {el_id for el_id, _ in ready} >= {*CHARTS, *TABLES, "totals"}
            assert all(state == "true" for _, state in ready), ready
            # The key was taken from the address and removed from it, and no URL the
            # browser asked a server for carried it (the fragment is never sent).
            assert OPERATOR_KEY not in page.url
            assert requested and not [url for url in requested if OPERATOR_KEY in url]
            await _check_content(page, served.ledger)
            SCREENSHOT.parent.mkdir(exist_ok=True)
            await page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            await browser.close()
    assert errors == []
    assert outside == []
    assert SCREENSHOT.stat().st_size > 20_000


async def _check_content(page: Page, ledger: Ledger) -> None:
    """The charts show the ledger's numbers, and the budgets table each alert state."""
    spend = await _drawn(page, "chart-spend")
    assert len(spend.labels) == DAYS + 1
    by_day: dict[str, int] = defaultdict(int)
    for e in ledger.events:
        by_day[datetime.fromtimestamp(e.finished_ms / 1000, UTC).strftime("%Y-%m-%d")] += (
            e.cost_micro_usd
        )
    assert spend.micro("Spend") == dict(by_day)

    saved: dict[str, int] = defaultdict(int)
    for e in ledger.events:
        saved[e.lever.value] += e.baseline_micro_usd - e.cost_micro_usd
    savings = await _drawn(page, "chart-savings")
    assert savings.micro("Saved") == dict(saved)
    assert all(v > 0 for v in saved.values()) and len(saved) == len(set(LEVERS))

    calls = Counter(e.model for e in ledger.events)
    routing = await _drawn(page, "chart-routing")
    assert dict(zip(routing.labels, routing.series["Calls"], strict=True)) == dict(calls)

    rows = await page.eval_on_selector_all(
        "#table-budgets tbody tr",
        "rows => rows.map(r => [r.dataset.budget, r.dataset.scope,"
        " r.querySelector('[data-alert]').dataset.alert,"
        " r.querySelector('.badge').textContent])",
    )
    states = {(budget, scope): (alert, label) for budget, scope, alert, label in rows}
    assert states[("acme-daily", "tenant:acme")] == ("high", "80% alert")
    assert states[("pricer-daily", "agent:acme:pricer")] == ("over", "100% alert")
    assert states[("all-monthly", "global")] == ("ok", "ok")
    anomalies = await page.eval_on_selector_all(
        "#table-anomalies tbody tr", "rows => rows.map(r => r.innerText)"
    )
    spike = (ledger.now - SPIKE_AGO).strftime("%Y-%m-%dT%H")
    top = anomalies[0]
    assert top.startswith(spike) and "spend per hour" in top and "agent photo" in top, anomalies

    places = await page.eval_on_selector_all(
        "#table-places tbody tr", "rows => rows.map(r => [r.dataset.place, r.dataset.calls])"
    )
    by_project = Counter(f"{e.workspace}/{e.project}" for e in ledger.events)
    assert {name: int(calls) for name, calls in places} == dict(by_project)

    products = await _drawn(page, "chart-products")
    assert sum(v or 0 for v in products.series["Products"]) == len(
        {e.workflow_id for e in ledger.events}
    )
    forecast = await _drawn(page, "chart-forecast")
    assert any(forecast.series["Forecast"]), "three weeks of history give a forecast"
    # Three weeks: one point a day.
    assert await page.get_attribute("#chart-spend", "data-granularity") == "day"
    assert await page.inner_text("#spend-title") == "Spend per day"


@pytest.mark.slow
async def test_a_wrong_key_is_reported_on_the_page(served: Served) -> None:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium(), headless=True)
        try:
            page = await browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await _open(page, f"{served.base_url}{DASHBOARD_PATH}#key=not-a-key")
            assert await page.evaluate("document.body.dataset.loaded") == "partial"
            status = await page.inner_text("#status")
            assert "HTTP 401 invalid API key" in status
            states = await page.eval_on_selector_all(
                "canvas, table", "els => els.map(e => e.dataset.ready)"
            )
            assert set(states) == {"error"}
            assert errors == []  # refused views are reported on the page, not thrown
        finally:
            await browser.close()


@pytest.mark.slow
async def test_a_tenant_key_sees_only_its_tenant(served: Served) -> None:
    acme_by_day: dict[str, int] = defaultdict(int)
    for e in served.ledger.events:
        if e.tenant == "acme":
            day = datetime.fromtimestamp(e.finished_ms / 1000, UTC).strftime("%Y-%m-%d")
            acme_by_day[day] += e.cost_micro_usd
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium(), headless=True)
        try:
            page = await browser.new_page()
            await _open(page, f"{served.base_url}{DASHBOARD_PATH}#key={ACME_KEY}")
            assert await page.evaluate("document.body.dataset.loaded") == "true"
            assert (await _drawn(page, "chart-spend")).micro("Spend") == dict(acme_by_day)
            # Asking for another tenant is refused, and the page says why.
            await page.fill("#tenant", "beta")
            await page.click("#controls button")
            await page.wait_for_selector("body[data-loaded=partial]", state="attached")
            status = await page.inner_text("#status")
            assert "HTTP 403 this API key is not allowed to access tenant 'beta'" in status
        finally:
            await browser.close()


async def test_the_page_narrows_to_a_workspace_and_project(served: Served) -> None:
    eu = [e for e in served.ledger.events if e.workspace == "eu"]
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium(), headless=True)
        try:
            page = await browser.new_page()
            await _open(page, f"{served.base_url}{DASHBOARD_PATH}?workspace=eu#key={OPERATOR_KEY}")
            status = await page.inner_text("#status")
            assert await page.evaluate("document.body.dataset.loaded") == "true", status
            places = await page.eval_on_selector_all(
                "#table-places tbody tr",
                "rows => rows.map(r => [r.dataset.place, r.dataset.calls])",
            )
            expected = Counter(f"eu/{e.project}" for e in eu)
            assert {name: int(calls) for name, calls in places} == dict(expected)
            spend = await _drawn(page, "chart-spend")
            assert sum(spend.micro("Spend").values()) == sum(e.cost_micro_usd for e in eu)
            # Views the ledger keeps per tenant only are left out, and the page says so.
            skipped = await page.get_attribute("#chart-forecast", "data-ready")
            assert skipped == "skipped"
            assert "kept per tenant only" in await page.inner_text("#status")
            await page.fill("#project", "fall")
            await page.click("#controls button")
            await page.wait_for_selector("body[data-loaded=true]", state="attached")
            places = await page.eval_on_selector_all(
                "#table-places tbody tr",
                "rows => rows.map(r => [r.dataset.place, r.dataset.calls])",
            )
            assert places == [["eu/fall", str(expected["eu/fall"])]]
        finally:
            await browser.close()


@pytest.mark.slow
async def test_a_key_in_the_query_string_is_not_used(served: Served) -> None:
    """?key= would reach the server's and proxies' logs: the page reads only #key=."""
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium(), headless=True)
        try:
            page = await browser.new_page()
            await page.goto(f"{served.base_url}{DASHBOARD_PATH}?key={OPERATOR_KEY}")
            await page.wait_for_load_state("networkidle")
            assert await page.input_value("#api-key") == ""
            assert await page.evaluate("document.body.dataset.loaded") is None
        finally:
            await browser.close()


async def _zero_call_rows(page: Page) -> dict[str, tuple[str, str, str]]:
    rows = await page.eval_on_selector_all(
        "#table-zero-call tbody tr[data-lever]",
        "rows => rows.map(r => [r.dataset.lever, ...[...r.cells].map(c => c.innerText)])",
    )
    return {lever: (work, calls, saved) for lever, work, calls, saved in rows}


@pytest.mark.slow
async def test_a_short_ledger_is_drawn_per_hour_and_zero_call_work_is_named(
    fresh: Fresh,
) -> None:
    by_hour: dict[str, int] = defaultdict(int)
    for e in fresh.events:
        by_hour[datetime.fromtimestamp(e.finished_ms / 1000, UTC).strftime("%m-%d %H:00")] += (
            e.cost_micro_usd
        )
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium(), headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await _open(page, f"{fresh.base_url}{DASHBOARD_PATH}#key={OPERATOR_KEY}")
            status = await page.inner_text("#status")
            assert await page.evaluate("document.body.dataset.loaded") == "true", status
            assert await page.get_attribute("#chart-spend", "data-granularity") == "hour"
            title = await page.inner_text("#spend-title")
            assert title == "Spend per hour (the ledger spans less than two days)"
            spend = await _drawn(page, "chart-spend")
            assert len(spend.labels) <= SHORT_HOURS + 1  # first to last hour, none missing
            assert spend.micro("Spend") == {h: m for h, m in by_hour.items() if m}
            assert sum(v or 0 for v in spend.series["Calls"]) == len(fresh.events)

            rows = await _zero_call_rows(page)
            assert set(rows) == {lever.value for lever in ZERO_CALL_LEVERS}
            for lever, count in ZERO_CALL_LEVERS.items():
                work, calls, saved = rows[lever.value]
                baseline = sum(e.baseline_micro_usd for e in fresh.events if e.lever is lever)
                assert int(calls) == count and saved == _usd(baseline), rows[lever.value]
            assert rows["pattern"][0].startswith("Pattern responder")
            assert rows["exact_cache"][0].startswith("Exact cache")
            assert rows["dedup"][0].startswith("Dedup")
            free = sum(ZERO_CALL_LEVERS.values())
            total = await page.inner_text("#zero-call-total")
            assert total.startswith(f"{free} of {len(fresh.events)} calls"), total
            paid = [e for e in fresh.events if e.lever is Lever.ROUTED]
            assert "routed" not in rows and paid
            SCREENSHOT.parent.mkdir(exist_ok=True)
            await page.screenshot(path=str(SCREENSHOT.with_name("dashboard-hourly.png")))
        finally:
            await browser.close()
    assert errors == []


def _usd(micro: int) -> str:
    """Micro-dollars as the page shows them (dashboard.js usd())."""
    dollars = micro / 1e6
    digits = 2 if dollars == 0 else 6 if dollars < 0.01 else 4 if dollars < 1 else 2
    return f"${dollars:.{digits}f}"
