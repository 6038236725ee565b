"""Savings split by lever: each lever's part of the counterfactual chain, summing exactly to
baseline minus cost, from the price page's figures."""

from __future__ import annotations

from bus.messages import Lever, LlmRequest, LlmResult, Status, Usage
from cost_ledger.catalog import PriceCatalog
from cost_ledger.pricing import baseline_micro_usd, cost_micro_usd
from cost_ledger.savings import chain, net_by_lever, paid_call_steps, settled
from router.levers.served import with_trim_savings
from router.outcomes import ledger_event
from tests.helpers import make_request

CATALOG = PriceCatalog.load()


def test_a_routed_call_with_cached_tokens_splits_into_routing_and_prompt_cache() -> None:
    mini = CATALOG.get("gpt-4o-mini")
    usage = Usage(input_tokens=2000, cached_input_tokens=1024, output_tokens=100)
    naive = baseline_micro_usd(CATALOG, "gpt-4o", usage)
    assert naive == 2000 * 2.5 + 100 * 10  # gpt-4o, no cache: 6,000 micro-dollars
    split = chain(naive, paid_call_steps(mini, usage, naive=naive))
    # gpt-4o-mini uncached: 2000 x 0.15 + 100 x 0.60 = 360; with 1,024 cached at 0.075: 283.2.
    assert split == {"routed": 6000 - 360, "prompt_cache": 360 - 283}
    assert sum(split.values()) == naive - cost_micro_usd(mini, usage)


def test_packing_and_the_batch_api_take_their_own_parts() -> None:
    mini = CATALOG.get("gpt-4o-mini")
    alone = Usage(input_tokens=400, output_tokens=50)
    share = Usage(input_tokens=150, output_tokens=50)  # the shared instructions paid once
    naive = baseline_micro_usd(CATALOG, "gpt-4o", alone)  # 1000 + 500
    split = chain(naive, paid_call_steps(mini, share, naive=naive, alone=alone, packed=True))
    assert split == {"routed": 1500 - 90, "packed": 90 - 53}  # 52.5 rounds half up
    batch = chain(naive, paid_call_steps(mini, alone, naive=naive, batch=True))
    assert batch == {"routed": 1500 - 90, "batch_api": 45}


def test_the_ledger_event_completes_the_split_to_baseline_minus_cost() -> None:
    request: LlmRequest = make_request()
    routed = LlmResult(
        request_id=request.id, tenant=request.tenant, agent=request.agent, status=Status.OK,
        model="gpt-4o-mini", cost_micro_usd=283, baseline_micro_usd=6000, lever=Lever.ROUTED,
        savings_by_lever={"routed": 5640, "prompt_cache": 77},
    )  # fmt: skip
    trimmed = with_trim_savings(routed, 500, 200, ("history",))
    event = ledger_event(request, trimmed, CATALOG.version)
    assert event.lever is Lever.TRIMMED
    assert event.savings_by_lever == {"routed": 5640, "prompt_cache": 77, "trimmed": 500}
    assert sum(event.savings_by_lever.values()) == event.baseline_micro_usd - 283
    hit = LlmResult(
        request_id=request.id, tenant=request.tenant, agent=request.agent, status=Status.OK,
        baseline_micro_usd=4321, lever=Lever.EXACT_CACHE,
    )  # fmt: skip
    assert ledger_event(request, hit, CATALOG.version).savings_by_lever == {"exact_cache": 4321}


def test_a_cascade_that_cost_more_books_a_negative_part_and_lever_costs_net_out() -> None:
    split = settled({"routed": 100}, baseline=1000, cost=1200, lever="escalated")
    assert split == {"routed": 100, "escalated": -300}
    gross, costs = net_by_lever([split, {"routed": 50}], [("semantic_cache", 7)])
    assert gross == {"routed": 150, "escalated": -300} and costs == {"semantic_cache": 7}
