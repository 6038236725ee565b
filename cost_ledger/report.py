"""Spend reports: what was paid, what the naive path would have paid, and which lever saved it.

One path: a report is the spend view (spend.spend_view, read from the ledger cube, as the
cost API answers) rendered as text, whatever the filter.
"""

from __future__ import annotations

import difflib
import io
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from decimal import Decimal

import redis.asyncio as aioredis
from rich.table import Table

from bus.settings import Settings
from cost_ledger.aggregates import AggregateStore
from cost_ledger.api_models import Filter, Metrics, Rates, Row, SpendResponse
from cost_ledger.catalog import PriceCatalog
from cost_ledger.keys import Dimension
from cost_ledger.pricing import to_usd
from cost_ledger.reference import agent_task_types
from cost_ledger.spend import spend_view
from cost_ledger.text_console import plain_console

SIMULATED_NOTE = "SIMULATED provider: no real money was spent"
NO_BASELINE_NOTE = "(no baseline: that model made only the levers' own calls, or failed ones)"
"""Under the By model table when a row's saved is negative for want of a baseline (a
newcomer read gpt-4.1-mini's "baseline $0.000000 saved -$0.000361" as a fault)."""
TENANTS_LISTED = 20
"""How many tenants with data an unknown tenant's message names at most."""
NAMED_FILTERS = {"agent": Dimension.AGENT, "model": Dimension.MODEL}
"""The filter fields that name a member of a ledger dimension (checked by unknown_name)."""
CLOSE_MATCHES = 5
"""How many close matches an unknown name's message offers at most."""


@dataclass(frozen=True, kw_only=True)
class Report:
    """A ledger report: the spend view of a filter (one tenant or all, maybe an agent, a model,
    a day range); money in integer micro-dollars."""

    view: SpendResponse

    @property
    def tenant(self) -> str | None:
        """The tenant reported on; None means every tenant."""
        return self.view.filter.tenant

    @property
    def totals(self) -> Metrics:
        """Everything in the filter, summed."""
        return self.view.totals

    @property
    def spend_usd(self) -> Decimal:
        """What was actually paid, in dollars."""
        return to_usd(self.totals.spend_micro_usd)

    @property
    def baseline_usd(self) -> Decimal:
        """What the naive path would have paid, in dollars."""
        return to_usd(self.totals.baseline_micro_usd)

    @property
    def savings_usd(self) -> Decimal:
        """Baseline minus spend, in dollars."""
        return to_usd(self.totals.savings_micro_usd)

    @property
    def savings_by_lever_usd(self) -> dict[str, Decimal]:
        """What each lever saved against the baseline, in dollars."""
        return {lever: to_usd(v) for lever, v in self.view.savings_by_lever.items()}

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
        return self.view.simulated


async def build_report(
    store: AggregateStore, tenant: str | None = None, *, where: Filter | None = None
) -> Report:
    """The report of a filter (default: every day of one tenant, or of every tenant), read
    from the same cube as the cost API; raises slices.FilterError for a bad filter."""
    return Report(view=await spend_view(store, where or Filter(tenant=tenant)))


async def simulated_note(store: AggregateStore, where: Filter) -> str:
    """SIMULATED_NOTE as a line when any event in the filter came from the simulated provider
    (the figures shown of that filter are then of simulated calls), else ''."""
    return f"{SIMULATED_NOTE}\n" if (await spend_view(store, where)).simulated else ""


async def unknown_tenant(store: AggregateStore, tenant: str | None) -> str:
    """Why a report of tenant would be empty because no ledger event names it (a mistyped
    --tenant printed an empty report and exited 0), with the tenants that have data; "" for
    every tenant (None) or one the ledger knows."""
    if tenant is None:
        return ""
    known = await store.members(Dimension.TENANT)
    if tenant in known:
        return ""
    listed = ", ".join(known[:TENANTS_LISTED]) or "none yet"
    if len(known) > TENANTS_LISTED:
        listed += f" and {len(known) - TENANTS_LISTED} more"
    return f"no data for tenant {tenant!r} in the ledger; tenants with data: {listed}"


async def unknown_name(
    store: AggregateStore,
    where: Filter,
    known: Mapping[str, Collection[str]],
    *,
    tenant_only: bool = False,
) -> str:
    """Why a filter would read as zero spend because its agent or model (NAMED_FILTERS) is
    likely mistyped: neither in known[field] (the agent specs, the price catalog) nor in the
    ledger for any tenant (for where's tenant only when tenant_only: the cost API, where a
    tenant's key must learn nothing of another tenant's names); with the close matches. ""
    when every name is known."""
    scope = where.tenant if tenant_only else None
    ledger = "the ledger" if scope is None else f"the ledger of tenant {scope!r}"
    for field, dimension in NAMED_FILTERS.items():
        name = getattr(where, field)
        if name is None or name in known.get(field, ()):
            continue
        names = set(known.get(field, ())) | set(await store.members(dimension, scope))
        if name in names:
            continue
        close = difflib.get_close_matches(name, sorted(names), n=CLOSE_MATCHES)
        hint = f"did you mean {', '.join(close)}?" if close else "none is close to it"
        return f"unknown {field} {name!r}: not a known {field} and not in {ledger}; {hint}"
    return ""


async def known_names(
    client: aioredis.Redis, settings: Settings, where: Filter
) -> dict[str, set[str]]:
    """The agents and models that exist whether or not the ledger has their calls: the agent
    specs with the OpenAI endpoint's agent and the extra agents, and the price catalog's
    models (with those fine-tuned and registered at run time); read only for the fields
    where names."""
    known: dict[str, set[str]] = {}
    if where.agent is not None:
        known["agent"] = {*agent_task_types(), settings.openai_agent, *settings.extra_agents}
    if where.model is not None:
        catalog = PriceCatalog.load()
        from optimizer.models import load_registered  # lazy: the optimizer builds on the ledger

        await load_registered(client, catalog)
        known["model"] = {*catalog.entries, *catalog.aliases}
        if where.model in catalog:  # a dated snapshot id resolves to a catalog model
            known["model"].add(where.model)
    return known


def render_report(report: Report, *, width: int | None = None, by: str | None = None) -> str:
    """The report as plain text tables, for a terminal or a log (by: only that breakdown)."""
    return render_spend(report.view, width=width, by=by)


def describe(where: Filter) -> str:
    """A filter in words: 'tenant acme, agent lister, 2026-11-01 .. 2026-11-07 (UTC)'."""
    parts = [f"tenant {where.tenant}" if where.tenant else "all tenants"]
    if where.agent:
        parts.append(f"agent {where.agent}")
    if where.workspace:
        parts.append(f"workspace {where.workspace}")
    if where.project:
        parts.append(f"project {where.project}")
    if where.model:
        parts.append(f"model {where.model}")
    if where.start or where.end:
        # An open end reads as a word: "2026-12-08....." read as a typo, not a range.
        parts.append(f"{where.start or 'first day'} .. {where.end or 'now'} (UTC)")
    return ", ".join(parts)


def _gross_note(view: SpendResponse, lever: str) -> str:
    """ "  net: gross $x less its own calls $y" for a lever whose own calls cost something."""
    cost = view.lever_cost_micro_usd.get(lever, 0)
    if not cost:
        return ""
    gross = view.gross_savings_by_lever.get(lever, 0)
    return f"  net: gross {usd(gross)} less its own calls {usd(cost)}"


def render_spend(view: SpendResponse, *, width: int | None = None, by: str | None = None) -> str:
    """A filtered spend report (spend.spend_view) as plain text tables: every breakdown (the
    workspace and project ones when there is more than one member), or only ``by``'s."""
    out = io.StringIO()
    console = plain_console(out, width)
    t = view.totals
    console.print(f"FlipSync cost report: {describe(view.filter)}")
    if not t.calls:  # a mistyped tenant or agent reads as zero spend otherwise
        console.print("No calls recorded for this filter (check the names and dates).")
    if view.simulated:
        # "173 of 209 events simulated" left a newcomer asking what the other 36 were (the
        # agents that make no call): the provider calls are counted beside it.
        console.print(
            f"{SIMULATED_NOTE} ({t.simulated_events} of {t.calls} events hold simulated "
            f"answers, fresh or cached; {t.paid_calls} were provider calls)"
        )
    share = (
        f"{100 * t.savings_micro_usd / t.baseline_micro_usd:.1f}%" if t.baseline_micro_usd else "-"
    )
    console.print(
        f"Spend:    {usd(t.spend_micro_usd)}  ({usd(t.cost_per_call_micro_usd)} per call)"
    )
    console.print(f"Baseline: {usd(t.baseline_micro_usd)}  (premium model, no cache, no batch)")
    console.print(f"Saved:    {usd(t.savings_micro_usd)}  ({share})")
    if view.savings_by_lever:
        split = sorted(view.savings_by_lever.items(), key=lambda kv: (-kv[1], kv[0]))
        console.print("  by lever (what each took off, net of its own cost):")
        width = max(len(lever) for lever, _ in split)
        for lever, value in split:  # a line each: a narrow terminal never splits an item
            console.print(f"    {lever:<{width}}  {usd(value):>11}{_gross_note(view, lever)}")
    console.print(
        f"Calls:    {t.calls} served, {t.paid_calls} answered by a paid provider call "
        "(each item of a packed call counts)"
    )
    console.print(
        f"Tokens:   {t.input_tokens} input ({t.cached_input_tokens} cached), "
        f"{t.output_tokens} output"
    )
    console.print(f"Rates:    {_rates_line(view.rates)}")
    p = view.products
    if p is None:
        console.print("Products: not available under an agent or model filter")
    else:
        console.print(
            f"Products: {counted(p.products, 'workflow')}, "
            f"{usd(p.cost_per_product_micro_usd)} per product"
        )
    tables = (
        # saved here is baseline less spend of the calls each lever served, whatever levers
        # took it off; the split above is what each lever itself took off
        (
            "lever",
            "lever that served the call (saved: every lever's part in those calls)",
            view.by_lever,
        ),
        ("tenant", "tenant", view.by_tenant),
        ("agent", "agent", view.by_agent),
        ("model", "model", view.by_model),
        ("task_type", "task type", view.by_task_type),
        ("day", "day (UTC)", view.by_day),
        ("workspace", "workspace", view.by_workspace),
        ("project", "project", view.by_project),
    )
    for name, title, rows in tables:
        if by is not None and name != by:
            continue
        if by is None and name in ("workspace", "project") and len(rows) < 2:
            continue  # one workspace (the default) says nothing the totals do not
        if rows:
            console.print(_row_table(title, rows))
            if name == "model" and any(r.baseline_micro_usd == 0 < r.spend_micro_usd for r in rows):
                console.print(NO_BASELINE_NOTE)
        elif by is not None:
            console.print(f"By {title}: nothing in this filter")
    return out.getvalue()


def _rates_line(r: Rates) -> str:
    factor = f"{r.packing_factor:.2f} items/call" if r.packing_factor is not None else "-"
    return (
        f"cache hits {r.cache_hit_rate:.1%} (exact {r.exact_cache_hit_rate:.1%}, semantic "
        f"{r.semantic_cache_hit_rate:.1%}), dedup {r.dedup_rate:.1%}, packing {factor}"
    )


def _row_table(title: str, rows: list[Row]) -> Table:
    table = Table(title=f"By {title}", title_justify="left")
    table.add_column(title.split()[0], overflow="fold")  # a long name wraps, never cut
    for column in ("calls", "paid", "spend", "per call", "baseline", "saved"):
        table.add_column(column, justify="right", overflow="fold")  # wrapped, never cut
    for r in rows:
        table.add_row(
            r.name, str(r.calls), str(r.paid_calls), usd(r.spend_micro_usd),
            usd(r.cost_per_call_micro_usd), usd(r.baseline_micro_usd), usd(r.savings_micro_usd),
        )  # fmt: skip
    return table


def counted(n: int, noun: str) -> str:
    """A count and its noun, plural unless it is one: '1 product', '0 products', '6 products'."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def usd(micro_usd: int) -> str:
    """Micro-dollars as dollars with six decimals: $0.000123, -$1.500000."""
    sign = "-" if micro_usd < 0 else ""
    return f"{sign}${to_usd(abs(micro_usd)):,.6f}"
