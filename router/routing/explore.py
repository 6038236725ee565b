"""Exploring: a stated share of requests tries a cheaper model than the policy's pick.

Quality estimates only move for models that get calls. A model whose estimate fell (it
failed for a while, or its prior is low) gets none under the policy, so it could never show
that it recovered. A request explores when a stable hash of its id falls in
``explore_share`` (3% by default); it then goes to one of the usable models cheaper than
the pick, chosen by the same hash, so exploring never costs more than the pick would have.
Its answer is validated like any other, and the verdict feeds the estimates; a recovered
model climbs back over the floor after enough good answers (bench and tests state how many).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def explores(request_id: str, share: float) -> bool:
    """Whether a request explores: a stable hash of its id falls in the share."""
    return share > 0 and zlib.crc32(request_id.encode()) / 2**32 < share


def cheaper_pick(
    request_id: str, options: Sequence[T], costs: Sequence[int], pick_cost: int
) -> T | None:
    """One of the options cheaper than the pick (by a second hash of the id), or None."""
    cheaper = [o for o, c in zip(options, costs, strict=True) if c < pick_cost]
    if not cheaper:
        return None
    return cheaper[zlib.crc32(b"explore:" + request_id.encode()) % len(cheaper)]
