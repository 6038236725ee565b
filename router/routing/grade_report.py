"""Where each agent's graded quality stands, for people: the `flipsync report` section.

Read from the running averages router.routing.grades keeps in Redis: an agent whose average
is under its target right now (its alert sent: grade.alert.<tenant>) is named with its
average; the others are counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from bus.subjects import token
from router.keys import PREFIX
from router.routing.grades import FLOOR, TARGET

_SCAN = 500


@dataclass(frozen=True, kw_only=True)
class Standing:
    """One agent's running quality average and its alerts."""

    tenant: str
    agent: str
    average: float
    answers: int
    under_target: bool
    """Its average crossed under target and has not recovered (an alert was sent)."""
    crossings: int
    """Times its average crossed under target (alerts sent, or tried)."""
    target: float = TARGET
    """The target its last grade was held to (routing.grade, routing.grade_by_agent)."""


def _text(value: bytes | str | None, default: str = "0") -> str:
    if value is None:
        return default
    return value.decode() if isinstance(value, bytes) else value


async def standings(
    redis: aioredis.Redis, tenant: str | None = None, agent: str | None = None
) -> list[Standing]:
    """Every graded agent of a tenant (or of all; one agent if named), under target first,
    then by name."""
    pattern = f"{PREFIX}grade:{token(tenant) if tenant else '*'}:{token(agent) if agent else '*'}"
    out: list[Standing] = []
    async for raw in redis.scan_iter(match=pattern, count=_SCAN):
        key = _text(raw)
        _, owner, agent = key.removeprefix(PREFIX).split(":", 2)
        fields = await redis.hmget(key, ["avg", "n", "alerted", "crossings", "target"])
        average, answers, alerted, crossings = (_text(f) for f in fields[:4])
        target = _text(fields[4], str(TARGET))  # grades folded before targets were kept
        out.append(
            Standing(
                tenant=owner,
                agent=agent,
                average=float(average),
                answers=int(answers),
                under_target=alerted == "1",
                crossings=int(crossings),
                target=float(target),
            )
        )
    return sorted(out, key=lambda s: (not s.under_target, s.tenant, s.agent))


def render_standings(rows: list[Standing], *, simulated: bool = False) -> str:
    """The report's quality section; empty when no answer was graded. simulated: the
    answers graded came from the simulated provider (said, so no one reads them as real)."""
    if not rows:
        return ""
    targets = {s.target for s in rows}
    against = (
        f"a target of {next(iter(targets)):.0%}" if len(targets) == 1 else "each agent's own target"
    )
    lines = [
        f"Quality now (each agent's running average of its graded answers, against "
        f"{against}; single answers are held to a floor, {FLOOR:.0%} unless set)"
    ]
    if simulated:
        lines.append("  graded answers of the SIMULATED provider")
    under = [s for s in rows if s.under_target]
    for s in under:
        lines.append(
            f"  UNDER TARGET  {s.tenant}/{s.agent}  {s.average:.1%} over {s.answers} answers, "
            f"target {s.target:.0%} (alert {s.crossings} sent)"
        )
    rest = len(rows) - len(under)
    tenants = len({s.tenant for s in rows})
    what = "graded agents" if tenants == 1 else f"graded agents (of {tenants} tenants)"
    lines.append(f"  {rest} of {len(rows)} {what} at or over target")
    return "\n".join(lines) + "\n"
