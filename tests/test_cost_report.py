"""Spend reports from the ledger cube, on a real Redis: filters, savings per lever, rates,
cost per operation and per product, and an event replayed twice counted once."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date

import msgspec
import pytest
import redis.asyncio as aioredis

from bus.embedded import EmbeddedRedis
from bus.messages import (
    BudgetChange,
    BudgetPeriod,
    BudgetScope,
    BudgetSpec,
    LedgerEvent,
    Lever,
)
from bus.settings import Settings
from cost_ledger.aggregates import AggregateStore
from cost_ledger.api_models import Filter, Recommendation, RecommendationsResponse
from cost_ledger.budgets.config import BudgetConfig
from cost_ledger.budgets.live import LiveBudgets
from cost_ledger.cli import add_commands, render_recommendations, run_command
from cost_ledger.report import (
    NO_BASELINE_NOTE,
    SIMULATED_NOTE,
    build_report,
    counted,
    describe,
    render_report,
    render_spend,
    usd,
)
from cost_ledger.slices import FilterError, check_filter
from cost_ledger.spend import per, spend_view, timeseries_view
from cost_ledger.text_console import MIN_COLUMNS
from flipsync.cost_report import print_report
from router.routing.grades import grade_key
from tests.cost_events import apply_all, ledger_event


def seeded() -> list[LedgerEvent]:
    """Two days of events of two tenants, every lever that matters here."""
    day1, day2 = "2026-11-02T10:00:00", "2026-11-03T09:30:00"
    return [
        ledger_event(at=day1, agent="lister", cost=300, baseline=1000, workflow_id="wf-a"),
        ledger_event(at=day1, agent="lister", cost=0, baseline=1000, lever=Lever.EXACT_CACHE,
                     workflow_id="wf-a"),
        ledger_event(at=day1, agent="pricer", model="gpt-4o", task_type="pricing", cost=900,
                     baseline=900, workflow_id="wf-b"),
        ledger_event(at=day2, agent="pricer", task_type="pricing", cost=0, baseline=800,
                     lever=Lever.SEMANTIC_CACHE, workflow_id="wf-b"),
        ledger_event(at=day2, agent="lister", cost=0, baseline=700, lever=Lever.DEDUP),
        *(
            ledger_event(at=day2, agent="tagger", task_type="tags", cost=50, baseline=400,
                         lever=Lever.PACKED, pack_size=3, workflow_id="wf-c")
            for _ in range(3)
        ),
        ledger_event(at=day2, tenant="beta", agent="lister", cost=1000, baseline=1000),
    ]  # fmt: skip


async def test_spend_report_of_a_tenant(redis_client: aioredis.Redis) -> None:
    store = AggregateStore(redis_client)
    await apply_all(store, seeded())
    view = await spend_view(store, Filter(tenant="acme"))
    t = view.totals
    assert (t.spend_micro_usd, t.baseline_micro_usd, t.calls) == (1350, 5600, 8)
    assert t.savings_micro_usd == 4250
    assert t.cost_per_call_micro_usd == per(1350, 8) == 169
    assert view.savings_by_lever == {
        "dedup": 700, "exact_cache": 1000, "packed": 1050, "routed": 700, "semantic_cache": 800,
    }  # fmt: skip
    assert sum(view.savings_by_lever.values()) == t.savings_micro_usd
    assert view.rates.exact_cache_hit_rate == pytest.approx(1 / 8)
    assert view.rates.semantic_cache_hit_rate == pytest.approx(1 / 8)
    assert view.rates.cache_hit_rate == pytest.approx(2 / 8)
    assert view.rates.dedup_rate == pytest.approx(1 / 8)
    assert view.rates.packed_items == 3 and view.rates.packing_factor == pytest.approx(3, abs=1e-3)
    agents = {r.name: r for r in view.by_agent}
    assert agents["pricer"].cost_per_call_micro_usd == 450
    assert agents["tagger"].cost_per_call_micro_usd == 50
    tasks = {r.name: r.spend_micro_usd for r in view.by_task_type}
    assert tasks == {"listing": 300, "pricing": 900, "tags": 150}
    assert view.products is not None
    assert view.products.products == 3
    assert view.products.spend_micro_usd == 1350
    assert view.products.cost_per_product_micro_usd == 450
    assert [d.name for d in view.by_day] == ["2026-11-02", "2026-11-03"]
    assert view.by_tenant == []


async def test_filters_by_agent_model_period_and_all_tenants(redis_client: aioredis.Redis) -> None:
    store = AggregateStore(redis_client)
    await apply_all(store, seeded())
    lister = await spend_view(store, Filter(tenant="acme", agent="lister"))
    assert (lister.totals.calls, lister.totals.spend_micro_usd) == (3, 300)
    assert [r.name for r in lister.by_agent] == ["lister"]
    assert {r.name for r in lister.by_lever} == {"routed", "exact_cache", "dedup"}
    assert lister.rates.dedup_rate == pytest.approx(1 / 3)

    assert lister.products is None  # no workflow rows in an agent's slice: not "0 products"

    gpt4o = await spend_view(store, Filter(model="gpt-4o"))
    assert (gpt4o.totals.calls, gpt4o.totals.spend_micro_usd) == (1, 900)
    assert [r.name for r in gpt4o.by_model] == ["gpt-4o"]
    assert gpt4o.products is None
    series = await timeseries_view(store, Filter(tenant="acme", agent="lister"))
    assert series.products is None and series.cost_per_product_micro_usd is None
    assert series.spend_micro_usd == [300, 0]

    day2 = await spend_view(store, Filter(tenant="acme", start=date(2026, 11, 3)))
    assert (day2.totals.calls, day2.totals.spend_micro_usd) == (5, 150)
    day1 = await spend_view(store, Filter(end=date(2026, 11, 2)))
    assert day1.totals.spend_micro_usd == 1200

    everyone = await spend_view(store, Filter())
    assert everyone.totals.spend_micro_usd == 2350
    assert {r.name: r.spend_micro_usd for r in everyone.by_tenant} == {"acme": 1350, "beta": 1000}
    assert {r.name: r.calls for r in everyone.by_tenant} == {"acme": 8, "beta": 1}
    beta_day1 = await spend_view(store, Filter(end=date(2026, 11, 2)))
    assert [r.name for r in beta_day1.by_tenant] == ["acme"]  # beta had no events that day
    assert (await store.totals()).spend_micro_usd == everyone.totals.spend_micro_usd


async def test_replayed_event_counts_once_in_the_cube(redis_client: aioredis.Redis) -> None:
    store = AggregateStore(redis_client)
    events = seeded()
    await apply_all(store, events)
    before = await spend_view(store, Filter(tenant="acme"))
    for e in events:
        assert await store.apply(e) is False
    assert await spend_view(store, Filter(tenant="acme")) == before


async def test_timeseries_per_day(redis_client: aioredis.Redis) -> None:
    store = AggregateStore(redis_client)
    await apply_all(store, seeded())
    series = await timeseries_view(store, Filter(tenant="acme"))
    assert series.days == [date(2026, 11, 2), date(2026, 11, 3)]
    assert series.spend_micro_usd == [1200, 150]
    assert series.savings_by_lever["exact_cache"] == [1000, 0]
    assert series.calls_by_model == {"gpt-4o": [1, 0], "gpt-4o-mini": [2, 5]}
    assert series.products == [2, 2]
    assert series.cost_per_product_micro_usd == [600, 75]


async def test_bad_filters_are_refused_with_a_reason(redis_client: aioredis.Redis) -> None:
    with pytest.raises(FilterError, match="not both"):
        check_filter(Filter(agent="a", model="m"))
    with pytest.raises(FilterError, match="after end"):
        check_filter(Filter(start=date(2026, 11, 3), end=date(2026, 11, 2)))
    with pytest.raises(FilterError, match="bad tenant"):
        check_filter(Filter(tenant="a:b"))
    view = await spend_view(AggregateStore(redis_client), Filter(tenant="nobody"))
    assert view.totals.calls == 0 and view.by_day == [] and view.rates.packing_factor is None


async def test_text_report_shows_rates(redis_client: aioredis.Redis) -> None:
    store = AggregateStore(redis_client)
    await apply_all(store, seeded())
    report = await build_report(store, "acme")
    text = render_report(report)
    assert text == render_spend(await spend_view(store, Filter(tenant="acme")))  # one path
    assert "tenant acme" in text and "$0.001350" in text
    assert "Saved:    $0.004250  (75.9%)" in text
    assert "cache hits 25.0% (exact 12.5%, semantic 12.5%), dedup 12.5%" in text
    assert "packing 3.00 items/call" in text
    assert "Products: 3 workflows, $0.000450 per product" in text
    assert (counted(1, "workflow"), counted(0, "product")) == ("1 workflow", "0 products")
    assert "By lever that served the call" in text and "By agent" in text
    assert "By day (UTC)" in text
    split = (await spend_view(store, Filter(tenant="acme"))).savings_by_lever
    assert split and "  by lever (what each took off" in text  # not what it served
    lines = text.split("  by lever (")[1].splitlines()[1 : 1 + len(split)]
    assert all(
        any(line.split() == [lever, usd(value)] for line in lines) for lever, value in split.items()
    )
    view = await spend_view(store, Filter(tenant="acme", agent="pricer", end=date(2026, 11, 2)))
    text = render_spend(view)
    assert "tenant acme, agent pricer, first day .. 2026-11-02 (UTC)" in text
    assert "$0.000900  ($0.000900 per call)" in text and "By task type" in text
    assert "Products: not available under an agent or model filter" in text
    assert "No calls recorded" not in text
    nobody = render_spend(await spend_view(store, Filter(tenant="nobody")))  # a mistyped name
    assert "No calls recorded for this filter (check the names and dates)." in nobody


async def test_a_model_with_spend_and_no_baseline_is_explained(
    redis_client: aioredis.Redis,
) -> None:
    """A shadow call's model shows "baseline $0 saved -$x" in By model: the report says why
    (a newcomer read it as a fault), and only when such a row is there."""
    store = AggregateStore(redis_client)
    await apply_all(store, seeded())
    assert NO_BASELINE_NOTE not in render_report(await build_report(store, "acme"))
    shadow = ledger_event(at="2026-11-03T11:00:00", model="gpt-4.1-mini", cost=361, baseline=0)
    await apply_all(store, [shadow])
    text = render_report(await build_report(store, "acme"))
    assert NO_BASELINE_NOTE in text and text.index("By model") < text.index(NO_BASELINE_NOTE)


def test_a_day_range_reads_as_a_range_open_or_not() -> None:
    """`report --start 2026-12-08` printed the header "2026-12-08..... (UTC)" (a newcomer)."""
    start, end = date(2026, 12, 8), date(2026, 12, 10)
    assert describe(Filter(start=start)) == "all tenants, 2026-12-08 .. now (UTC)"
    assert describe(Filter(end=end)) == "all tenants, first day .. 2026-12-10 (UTC)"
    both = Filter(tenant="acme", start=start, end=end)
    assert describe(both) == "tenant acme, 2026-12-08 .. 2026-12-10 (UTC)"


async def test_text_tables_fit_the_readers_terminal(
    redis_client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tables were drawn 110-120 columns wide whatever the terminal: every row of them
    wrapped on an 80-column one."""
    store = AggregateStore(redis_client)
    await apply_all(store, seeded())
    view = await spend_view(store, Filter(tenant="acme"))
    monkeypatch.setenv("COLUMNS", "80")
    assert render_spend(view) == render_spend(view, width=120)  # not a terminal: a log's width
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)  # a terminal 80 columns wide
    narrow = render_spend(view)
    assert max(len(line) for line in narrow.splitlines()) <= 80
    assert "By agent" in narrow and "lister" in narrow and "semantic_cac…" not in narrow
    assert max(len(line) for line in render_spend(view, width=120).splitlines()) > 80
    monkeypatch.setenv("COLUMNS", "20")  # too narrow to draw a table: MIN_COLUMNS
    assert max(len(line) for line in render_spend(view).splitlines()) <= MIN_COLUMNS


def test_recommendations_fold_at_the_readers_terminal_under_their_own_column(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A newcomer's `flipsync cost recommend`: a folded title or detail went on at the left
    margin, where it read as the next recommendation."""
    item = Recommendation(
        kind="cheaper_tier",
        title="Move bundles from gpt-4.1-mini to gpt-4.1-nano: recorded quality 0.91 "
        "against a floor of 0.85 on 1,200 calls",
        detail="gpt-4.1-nano answered 340 of the bundles agent's calls with a recorded "
        "quality of 0.91 (floor 0.85); moving the rest saves about 62% of its spend.",
        monthly_saving_micro_usd=1_234_567,
    )
    view = RecommendationsResponse(
        filter=Filter(tenant="acme"),
        window_days=14,
        total_monthly_saving_micro_usd=1_234_567,
        items=[item],
    )
    monkeypatch.setenv("COLUMNS", "60")
    wide = render_recommendations(view)  # not a terminal: FALLBACK_COLUMNS, as the tables
    assert "[cheaper_tier] Move bundles from gpt-4.1-mini to gpt-4.1-nano" in wide
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)  # a terminal 60 columns wide
    lines = render_recommendations(view).splitlines()
    assert max(len(line) for line in lines) <= 60 and all(line == line.rstrip() for line in lines)
    first = next(i for i, line in enumerate(lines) if line.startswith("$1.234567/month  "))
    indent = " " * len("$1.234567/month  ")
    body = [line for line in lines[first + 1 :] if line]
    assert len(body) >= 4 and all(line.startswith(indent) for line in body), lines
    assert " ".join(line.strip() for line in lines[first:]).endswith(item.detail)


async def test_cost_commands_read_a_deployments_redis(
    redis_client: aioredis.Redis, redis_server: EmbeddedRedis, capsys: pytest.CaptureFixture[str]
) -> None:
    store = AggregateStore(redis_client)
    await apply_all(store, seeded())
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command"))
    settings = Settings(redis_url=redis_server.url)

    async def run(*argv: str) -> tuple[int, str, str]:
        code = await run_command(parser.parse_args(argv), settings)
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = await run("cost", "spend", "--tenant", "acme", "--agent", "pricer")
    assert code == 0 and "tenant acme, agent pricer" in out and "$0.000900" in out
    code, out, _ = await run("cost", "forecast", "--tenant", "acme")
    assert code == 0 and "not enough history: 2 complete days of spend (today, still" in out
    assert SIMULATED_NOTE not in out  # acme's events came from a real provider
    simulated = ledger_event(at="2026-11-03T09:00:00", tenant="sim", cost=70, baseline=90)
    await apply_all(store, [msgspec.structs.replace(simulated, simulated=True)])
    for view in ("forecast", "anomalies", "recommend", "vs-reference"):
        code, out, _ = await run("cost", view, "--tenant", "sim")
        assert code == 0 and SIMULATED_NOTE in out, (view, out)
    code, out, _ = await run("cost", "anomalies", "--tenant", "acme")
    assert code == 0 and "none above a score of 3.5" in out
    code, out, _ = await run("cost", "recommend", "--tenant", "acme", "--json")
    assert code == 0 and json.loads(out)["window_days"] == 2
    code, out, _ = await run("cost", "timeseries", "--tenant", "acme")
    assert json.loads(out)["spend_micro_usd"] == [1200, 150]
    code, _, err = await run("cost", "spend", "--agent", "a", "--model", "m")
    assert code == 2 and "not both" in err

    where = Filter(tenant="acme", model="gpt-4o")
    assert await print_report(settings, "acme", where=where) == 0
    out, _ = capsys.readouterr()
    assert "model gpt-4o" in out and "$0.000900" in out and "Budgets" in out

    # A mistyped tenant printed an empty report and exited 0: now one line naming the
    # tenants that have data, and status 2 (a name that does not exist), as JSON too.
    unknown = "no data for tenant 'acmee' in the ledger; tenants with data: acme, beta, sim\n"
    for as_json in (False, True):
        assert await print_report(settings, "acmee", as_json=as_json) == 2
        assert capsys.readouterr() == ("", f"flipsync report: {unknown}")
    for view in ("spend", "forecast", "recommend", "vs-reference"):
        code, out, err = await run("cost", view, "--tenant", "acmee")
        assert (code, out, err) == (2, "", f"flipsync cost {view}: {unknown}"), view
    # A tenant with a budget of its own but no call yet is no typo: its report (found in
    # review: exit 2, and its budget never shown).
    live = LiveBudgets(redis_client, BudgetConfig.load(settings.budget_config))
    spec = BudgetSpec(name="newco-day", scope=BudgetScope.TENANT, period=BudgetPeriod.DAY,
                      limit_micro_usd=5_000_000, tenant="newco")  # fmt: skip
    assert await live.apply(BudgetChange(change_id="c1", set_budgets=[spec]))
    assert await print_report(settings, "newco") == 0
    out, _ = capsys.readouterr()
    assert "No calls recorded" in out and "newco-day" in out
    for view in ("spend", "forecast", "recommend", "vs-reference"):
        code, out, err = await run("cost", view, "--tenant", "newco")
        assert code == 0 and err == "", (view, err)

    # Unfiltered, the same cube: agg:* keys that disagree with it are never read.
    await redis_client.delete(*await redis_client.keys("fs:ledger:agg:*"))
    assert await print_report(settings, "acme") == 0
    out, _ = capsys.readouterr()
    expected = render_spend(await spend_view(store, Filter(tenant="acme")))
    assert out.startswith(expected) and "$0.001350" in out and "Budgets" in out
    assert await print_report(settings, None, where=Filter(agent="a", model="m")) == 2


async def test_a_mistyped_agent_or_model_is_refused_with_its_close_matches(
    redis_client: aioredis.Redis, redis_server: EmbeddedRedis, capsys: pytest.CaptureFixture[str]
) -> None:
    """`report --agent ebay_lsting` printed a zero report with status 0 (a newcomer): a name
    neither known (an agent spec, a catalog model) nor in the ledger is status 2 with the
    close matches; a known name with no call yet is an empty report, not an error."""
    await apply_all(AggregateStore(redis_client), seeded())
    settings = Settings(redis_url=redis_server.url)
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command"))
    refused = {
        "ebay_lsting": "unknown agent 'ebay_lsting': not a known agent and not in the ledger; "
        "did you mean ebay_listing, etsy_listing",
        "pricr": "unknown agent 'pricr': not a known agent and not in the ledger; "
        "did you mean pricer, price?",  # pricer is in the ledger only (seeded), not a spec
        "gpt-4o-mnii": "unknown model 'gpt-4o-mnii': not a known model and not in the ledger;"
        " did you mean gpt-4o-mini",
    }
    for name, said in refused.items():
        field = "model" if name.startswith("gpt") else "agent"
        assert await print_report(settings, None, where=Filter(**{field: name})) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.startswith(f"flipsync report: {said}"), err
        argv = ("cost", "spend", f"--{field}", name)
        assert await run_command(parser.parse_args(argv), settings) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.startswith(f"flipsync cost spend: {said}"), err
    where = Filter(agent="zzzzqqq")
    assert await print_report(settings, None, where=where) == 2
    assert capsys.readouterr().err.endswith("; none is close to it\n")
    for known in (Filter(agent="ebay_listing"), Filter(model="gpt-4o-2024-08-06"),
                  Filter(tenant="acme", agent="tagger"),
                  Filter(agent="openai_compat")):  # fmt: skip
        assert await print_report(settings, None, where=known) == 0, known
        assert capsys.readouterr().err == ""
    # A graded agent excuses a tenant with no calls, never a mistyped model (a review found
    # any grade anywhere let `report --model gpt-4o-mnii` print a zero report).
    await redis_client.hset(grade_key("newshop", "ebay_listing"), mapping={"avg": 1, "n": 1})
    assert await print_report(settings, "newshop", where=Filter(tenant="newshop")) == 0
    capsys.readouterr()
    assert await print_report(settings, None, where=Filter(model="gpt-4o-mnii")) == 2
    assert "unknown model 'gpt-4o-mnii'" in capsys.readouterr().err
