"""Experiments: two or more arms (prompt variants, models, lever settings) that split a
scope's traffic through the rollout mechanism, a metric, and a stopping rule.

Each arm becomes a flag rule with the experiment's name as its salt, so the arms partition
the traffic and a request always lands in the same arm. Starting, and promoting the winner,
are flag changes: every router replica applies them without a restart.
"""

from __future__ import annotations

import enum
import re

import msgspec
import redis.asyncio as aioredis

from bus.codec import decode, encode
from bus.messages import FlagChange, FlagRule, Lever, PromptPatch, now_ms
from optimizer import keys
from optimizer.errors import BadInput, ExperimentError
from optimizer.flag_store import FlagStore
from optimizer.flags import check_rule
from optimizer.metric import Metric as Metric

WEEK_S = 7 * 24 * 3600
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,48}$")


class Status(enum.StrEnum):
    """Where an experiment stands."""

    RUNNING = "running"
    STOPPED = "stopped"
    PROMOTED = "promoted"


class Arm(msgspec.Struct, kw_only=True):
    """One arm: its share of the traffic and what it changes (nothing, for a control arm)."""

    name: str
    percent: float
    model: str = ""
    routing_policy: str = ""
    disable_levers: list[Lever] = []
    prompt: PromptPatch | None = None
    prompt_tokens: int = 0
    """Tokens of the arm's prompt (system prompt plus instructions), for prompt variants."""
    note: str = ""


class Experiment(msgspec.Struct, kw_only=True):
    """An experiment: its scope, arms, metric, stopping rule and state."""

    name: str
    arms: list[Arm]
    metric: Metric = Metric.COST_PER_VALID
    tenant: str = ""
    agent: str = ""
    task_type: str = ""
    min_samples: int = 200
    """Stopping rule: results of at least this many requests in every arm..."""
    max_duration_s: int = WEEK_S
    """...or this long since the start, whichever comes first."""
    quality_floor: float = 0.0
    """The least share of valid answers an arm must hold to be promoted."""
    alpha: float = 0.05
    control: str = ""
    """The arm the others are compared with (default: the first)."""
    status: Status = Status.RUNNING
    started_ms: int = msgspec.field(default_factory=now_ms)
    promoted_arm: str = ""
    v: int = 1

    @property
    def control_arm(self) -> str:
        """The name of the control arm."""
        return self.control or self.arms[0].name

    def arm(self, name: str) -> Arm:
        """One arm by name; raises BadInput if there is none."""
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise BadInput(f"experiment {self.name} has no arm {name!r}")


def check_experiment(experiment: Experiment) -> None:
    """Raise ExperimentError with the reason when an experiment cannot run."""
    where = f"experiment {experiment.name!r}"
    if not _NAME.match(experiment.name):
        raise ExperimentError(f"{where}: a name is 1-48 letters, digits, _ or -")
    if len(experiment.arms) < 2:
        raise ExperimentError(f"{where}: an experiment needs at least two arms")
    names = [arm.name for arm in experiment.arms]
    if len(set(names)) != len(names) or not all(_NAME.match(n) for n in names):
        raise ExperimentError(f"{where}: arm names must be unique letters, digits, _ or -")
    if any(arm.percent <= 0 for arm in experiment.arms):
        raise ExperimentError(f"{where}: every arm needs a share of the traffic above 0%")
    if sum(arm.percent for arm in experiment.arms) > 100 + 1e-9:
        raise ExperimentError(f"{where}: the arms' shares add up to more than 100%")
    if experiment.min_samples < 2 or experiment.max_duration_s <= 0:
        raise ExperimentError(f"{where}: min_samples >= 2 and a positive max duration")
    if experiment.control and experiment.control not in names:
        raise ExperimentError(f"{where}: control {experiment.control!r} is not an arm")
    if not 0 <= experiment.quality_floor <= 1 or not 0 < experiment.alpha < 1:
        raise ExperimentError(f"{where}: quality_floor in 0..1 and alpha in (0, 1)")
    for rule in arm_rules(experiment):
        check_rule(rule)


def arm_label(experiment: str, arm: str) -> str:
    """What ctx.arm and the ledger record for a request in an arm."""
    return f"{experiment}/{arm}"


def arm_rule_name(experiment: str, arm: str) -> str:
    """The flag rule of one arm."""
    return f"exp:{experiment}:{arm}"


def arm_rules(experiment: Experiment) -> list[FlagRule]:
    """One flag rule per arm: consecutive bucket ranges under the experiment's salt."""
    rules: list[FlagRule] = []
    start = 0.0
    for arm in experiment.arms:
        rules.append(
            FlagRule(
                name=arm_rule_name(experiment.name, arm.name),
                tenant=experiment.tenant,
                agent=experiment.agent,
                task_type=experiment.task_type,
                percent=arm.percent,
                bucket_from=start,
                salt=experiment.name,
                disable_levers=list(arm.disable_levers),
                routing_policy=arm.routing_policy,
                model=arm.model,
                prompt=arm.prompt,
                arm=arm_label(experiment.name, arm.name),
            )
        )
        start += arm.percent
    return rules


def promoted_rule(experiment: Experiment, arm: Arm) -> FlagRule:
    """The flag that makes an arm the default of the experiment's scope (all its traffic)."""
    return FlagRule(
        name=f"promoted:{experiment.name}",
        tenant=experiment.tenant,
        agent=experiment.agent,
        task_type=experiment.task_type,
        disable_levers=list(arm.disable_levers),
        routing_policy=arm.routing_policy,
        model=arm.model,
        prompt=arm.prompt,
    )


class ExperimentStore:
    """Experiments in Redis, started and ended through the flags."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self.flags = FlagStore(redis)

    async def get(self, name: str) -> Experiment:
        """An experiment by name; raises BadInput if there is none."""
        raw = await self._redis.hget(keys.EXPERIMENTS, name)
        if raw is None:
            raise BadInput(f"no experiment named {name!r}")
        return decode(keys.raw(raw), Experiment)

    async def all(self) -> list[Experiment]:
        """Every experiment, by name."""
        raw = await self._redis.hgetall(keys.EXPERIMENTS)
        found = [decode(keys.raw(value), Experiment) for value in raw.values()]
        return sorted(found, key=lambda e: e.name)

    async def running(self) -> list[Experiment]:
        """Experiments still collecting results."""
        return [e for e in await self.all() if e.status is Status.RUNNING]

    async def save(self, experiment: Experiment) -> None:
        """Write an experiment's state."""
        await self._redis.hset(keys.EXPERIMENTS, experiment.name, encode(experiment))

    async def start(self, experiment: Experiment, *, replace: bool = False) -> FlagChange:
        """Check, store and switch on an experiment's arms; returns the flag change to publish."""
        check_experiment(experiment)
        exists = await self._redis.hexists(keys.EXPERIMENTS, experiment.name)
        if exists and not replace:
            raise ExperimentError(f"experiment {experiment.name!r} exists already")
        await self.save(experiment)
        return await self.flags.change(set_rules=arm_rules(experiment), by="experiment")

    async def end(self, experiment: Experiment, winner: Arm | None) -> FlagChange:
        """Remove the arms' rules; make winner the default when given."""
        removed = [arm_rule_name(experiment.name, arm.name) for arm in experiment.arms]
        rules = [promoted_rule(experiment, winner)] if winner is not None else []
        experiment.status = Status.PROMOTED if winner is not None else Status.STOPPED
        experiment.promoted_arm = winner.name if winner is not None else ""
        await self.save(experiment)
        return await self.flags.change(set_rules=rules, removed=removed, by="experiment")
