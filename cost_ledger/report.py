"""Spend reports: what was paid, what the naive path would have paid, and which lever saved it."""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from rich.console import Console
from rich.table import Table

from cost_ledger.aggregates import AggregateStore, Totals
from cost_ledger.api_models import Filter, Rates, Row, SpendResponse
from cost_ledger.keys import Dimension
from cost_ledger.pricing import to_usd
from cost_ledger.spend import rates

SIMULATED_NOTE = "SIMULATED provider: no real money was spent"


@dataclass(frozen=True, kw_only=True)
class Report:
    """A ledger report of one tenant, or of all tenants; money in integer micro-dollars."""

    tenant: str | None
    """The tenant reported on; None means every tenant."""
    totals: Totals
    by_lever: Mapping[str, Totals]
    by_agent: Mapping[str, Totals]
    by_model: Mapping[str, Totals]
    by_provider: Mapping[str, Totals]
    by_day: Mapping[str, Totals]
    by_tenant: Mapping[str, Totals]
    """Per-tenant rows; empty in a one-tenant report."""

    @property
    def spend_usd(self) -> Decimal:
        """What was actually paid, in dollars."""
        return self.totals.spend_usd

    @property
    def baseline_usd(self) -> Decimal:
        """What the naive path would have paid, in dollars."""
        return self.totals.baseline_usd

    @property
    def savings_usd(self) -> Decimal:
        """Baseline minus spend, in dollars."""
        return self.totals.savings_usd

    @property
    def savings_by_lever_usd(self) -> dict[str, Decimal]:
        """What each lever saved against the baseline, in dollars."""
        return {lever: t.savings_usd for lever, t in self.by_lever.items()}

    @property
    def calls(self) -> int:
        """Requests served, by any lever."""
        return self.totals.calls

    @property
    def paid_calls(self) -> int:
        """Requests that paid for an upstream provider call."""
        return self.totals.paid_calls

    @property
    def simulated(self) -> bool:
        """Whether any event came from the simulated provider."""
        return self.totals.simulated_events > 0


async def build_report(store: AggregateStore, tenant: str | None = None) -> Report:
    """Read a report of one tenant, or of every tenant, from the aggregates."""
    return Report(
        tenant=tenant,
        totals=await store.totals(tenant),
        by_lever=await store.breakdown(Dimension.LEVER, tenant),
        by_agent=await store.breakdown(Dimension.AGENT, tenant),
        by_model=await store.breakdown(Dimension.MODEL, tenant),
        by_provider=await store.breakdown(Dimension.PROVIDER, tenant),
        by_day=await store.breakdown(Dimension.DAY, tenant),
        by_tenant={} if tenant is not None else await store.breakdown(Dimension.TENANT),
    )


def render_report(report: Report, *, width: int = 100) -> str:
    """The report as plain text tables, for a terminal or a log."""
    out = io.StringIO()
    # Names come from tenants and agents: never read them as markup or emoji codes.
    console = Console(
        file=out,
        width=width,
        color_system=None,
        force_terminal=False,
        markup=False,
        emoji=False,
        highlight=False,
    )
    scope = f"tenant {report.tenant}" if report.tenant is not None else "all tenants"
    t = report.totals
    console.print(f"FlipSync cost report: {scope}")
    if report.simulated:
        console.print(f"{SIMULATED_NOTE} ({t.simulated_events} of {t.calls} events simulated)")
    console.print(f"Spend:    {usd(t.spend_micro_usd)}")
    console.print(f"Baseline: {usd(t.baseline_micro_usd)}  (premium model, no cache, no batch)")
    console.print(f"Saved:    {usd(t.savings_micro_usd)}  ({percent(t)})")
    console.print(f"Calls:    {t.calls} served, {t.paid_calls} paid upstream")
    console.print(
        f"Tokens:   {t.input_tokens} input ({t.cached_input_tokens} cached), "
        f"{t.output_tokens} output"
    )
    console.print(f"Rates:    {rates_text(t)}")
    sections = (
        ("lever", report.by_lever),
        ("tenant", report.by_tenant),
        ("agent", report.by_agent),
        ("model", report.by_model),
        ("provider", report.by_provider),
        ("day (UTC)", report.by_day),
    )
    for title, rows in sections:
        if rows:
            console.print(_table(title, rows))
    return out.getvalue()


def rates_text(totals: Totals) -> str:
    """Cache hit rate (exact + semantic), dedup rate and packing factor, on one line."""
    return _rates_line(rates(totals))


def describe(where: Filter) -> str:
    """A filter in words: 'tenant acme, agent lister, 2026-11-01..2026-11-07'."""
    parts = [f"tenant {where.tenant}" if where.tenant else "all tenants"]
    if where.agent:
        parts.append(f"agent {where.agent}")
    if where.model:
        parts.append(f"model {where.model}")
    if where.start or where.end:
        parts.append(f"{where.start or '...'}..{where.end or '...'} (UTC)")
    return ", ".join(parts)


def render_spend(view: SpendResponse, *, width: int = 110) -> str:
    """A filtered spend report (spend.spend_view) as plain text tables."""
    out = io.StringIO()
    console = _console(out, width)
    t = view.totals
    console.print(f"FlipSync cost report: {describe(view.filter)}")
    if view.simulated:
        console.print(f"{SIMULATED_NOTE} ({t.simulated_events} of {t.calls} events simulated)")
    share = (
        f"{100 * t.savings_micro_usd / t.baseline_micro_usd:.1f}%" if t.baseline_micro_usd else "-"
    )
    console.print(
        f"Spend:    {usd(t.spend_micro_usd)}  ({usd(t.cost_per_call_micro_usd)} per call)"
    )
    console.print(f"Baseline: {usd(t.baseline_micro_usd)}  (premium model, no cache, no batch)")
    console.print(f"Saved:    {usd(t.savings_micro_usd)}  ({share})")
    console.print(f"Calls:    {t.calls} served, {t.paid_calls} paid upstream")
    console.print(f"Rates:    {_rates_line(view.rates)}")
    p = view.products
    console.print(
        f"Products: {p.products} workflows, {usd(p.cost_per_product_micro_usd)} per product"
    )
    for title, rows in (
        ("lever", view.by_lever),
        ("tenant", view.by_tenant),
        ("agent", view.by_agent),
        ("model", view.by_model),
        ("task type", view.by_task_type),
        ("day (UTC)", view.by_day),
    ):
        if rows:
            console.print(_row_table(title, rows))
    return out.getvalue()


def _rates_line(r: Rates) -> str:
    factor = f"{r.packing_factor:.2f} items/call" if r.packing_factor is not None else "-"
    return (
        f"cache hits {r.cache_hit_rate:.1%} (exact {r.exact_cache_hit_rate:.1%}, semantic "
        f"{r.semantic_cache_hit_rate:.1%}), dedup {r.dedup_rate:.1%}, packing {factor}"
    )


def _console(out: io.StringIO, width: int) -> Console:
    # Names come from tenants and agents: never read them as markup or emoji codes.
    return Console(
        file=out, width=width, color_system=None, force_terminal=False,
        markup=False, emoji=False, highlight=False,
    )  # fmt: skip


def _row_table(title: str, rows: list[Row]) -> Table:
    table = Table(title=f"By {title}", title_justify="left")
    table.add_column(title.split()[0])
    for column in ("calls", "paid", "spend", "per call", "baseline", "saved"):
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(
            r.name, str(r.calls), str(r.paid_calls), usd(r.spend_micro_usd),
            usd(r.cost_per_call_micro_usd), usd(r.baseline_micro_usd), usd(r.savings_micro_usd),
        )  # fmt: skip
    return table


def usd(micro_usd: int) -> str:
    """Micro-dollars as dollars with six decimals: $0.000123, -$1.500000."""
    sign = "-" if micro_usd < 0 else ""
    return f"{sign}${to_usd(abs(micro_usd)):,.6f}"


def percent(totals: Totals) -> str:
    """Savings as a share of the baseline."""
    if totals.baseline_micro_usd == 0:
        return "-"
    share = Decimal(100 * totals.savings_micro_usd) / totals.baseline_micro_usd
    return f"{share:.1f}%"


def _table(title: str, rows: Mapping[str, Totals]) -> Table:
    table = Table(title=f"By {title}", title_justify="left")
    table.add_column(title.split()[0])
    for column in ("calls", "paid", "spend", "baseline", "saved", "saved %"):
        table.add_column(column, justify="right")
    for name, t in rows.items():
        table.add_row(
            name,
            str(t.calls),
            str(t.paid_calls),
            usd(t.spend_micro_usd),
            usd(t.baseline_micro_usd),
            usd(t.savings_micro_usd),
            percent(t),
        )
    return table
