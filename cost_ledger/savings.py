"""Savings split by lever: the counterfactual chain from the naive cost to the actual one.

The naive cost is the request on the premium baseline model, untrimmed, with no prompt cache,
no packing and no Batch API. Each lever in turn takes its part off the cost that remains:

    naive -> trimmed prompt (trimmed) -> routed model (routed) -> packed call or Batch API
          (packed, batch_api) -> provider prompt cache (prompt_cache) = actual

so each lever's part is its own, and the parts telescope to baseline minus actual exactly.
A lever that served the whole answer (exact or semantic cache, dedup, pattern) takes whatever
the chain leaves. Lever costs (events with overhead_of set) are subtracted in reports, from
the lever they are the cost of (``charged_lever``): the semantic cache's shadow checks from
``semantic_cache``, routing's own calls (``overhead_of="routing"``: shadow evaluations,
judgements, the cascade's failed attempts) from ``routed``, the lever routing's savings are
booked under. The ledger stores them by overhead_of as booked; the mapping is applied when
read, so stored sums and rebuilds are unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType

from bus.messages import Usage
from cost_ledger.catalog import ModelPrice
from cost_ledger.pricing import cost_micro_usd

PROMPT_CACHE = "prompt_cache"
"""The provider's own prompt cache (cached input tokens priced as such)."""
CHARGED_TO: Mapping[str, str] = MappingProxyType({"routing": "routed"})
"""overhead_of names whose cost is charged to a lever of another name; any other overhead
is charged to the lever of its own name."""


def charged_lever(overhead_of: str) -> str:
    """The lever whose savings an overhead event's cost is charged against."""
    return CHARGED_TO.get(overhead_of, overhead_of)


def by_charged_lever(costs: Mapping[str, int]) -> dict[str, int]:
    """Lever costs keyed by overhead_of, re-keyed by the lever each is charged to."""
    out: dict[str, int] = {}
    for name, amount in costs.items():
        lever = charged_lever(name)
        out[lever] = out.get(lever, 0) + amount
    return out


def chain(naive: int, steps: Sequence[tuple[str, int]]) -> dict[str, int]:
    """Each step's saving: steps are (lever, cost once that lever applied), in chain order."""
    out: dict[str, int] = {}
    before = naive
    for lever, after in steps:
        if after != before:
            out[lever] = out.get(lever, 0) + before - after
        before = after
    return out


def paid_call_steps(
    served: ModelPrice,
    usage: Usage,
    *,
    naive: int,
    alone: Usage | None = None,
    packed: bool = False,
    batch: bool = False,
) -> list[tuple[str, int]]:
    """The routed, packed or batch, and prompt-cache steps of one paid call's share.

    alone is the request's usage had it been sent alone (packed items); usage is its share of
    the call as billed.
    """
    own = alone or usage
    plain = Usage(input_tokens=own.input_tokens, output_tokens=own.output_tokens)
    steps = [("routed", min(naive, cost_micro_usd(served, plain)))]
    share = Usage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)
    if packed:
        steps.append(("packed", cost_micro_usd(served, share)))
    if batch:
        steps.append(("batch_api", cost_micro_usd(served, share, batch=True)))
    steps.append((PROMPT_CACHE, cost_micro_usd(served, usage, batch=batch)))
    return steps


def settled(split: Mapping[str, int], baseline: int, cost: int, lever: str) -> dict[str, int]:
    """split completed so that it sums to baseline - cost exactly: any remainder (a whole
    answer a cache served, a cascade's extra attempt) goes to the lever that served it."""
    out = {name: amount for name, amount in split.items() if amount}
    rest = baseline - cost - sum(out.values())
    if rest:
        out[lever] = out.get(lever, 0) + rest
    return out


def net_by_lever(
    splits: Iterable[Mapping[str, int]], overheads: Iterable[tuple[str, int]]
) -> tuple[dict[str, int], dict[str, int]]:
    """Gross savings summed by lever, and lever costs ((lever, cost) of overhead events)."""
    gross: dict[str, int] = {}
    for split in splits:
        for name, amount in split.items():
            gross[name] = gross.get(name, 0) + amount
    costs: dict[str, int] = {}
    for name, amount in overheads:
        costs[name] = costs.get(name, 0) + amount
    return gross, costs
