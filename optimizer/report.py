"""An experiment's report: each arm's cost, quality and latency with confidence intervals,
whether the stopping rule is met, and whether the leader's difference is significant.
Promotion is refused unless there is a significant winner that holds the quality floor."""

from __future__ import annotations

import math
from dataclasses import dataclass

import msgspec

from bus.messages import FlagChange, now_ms
from optimizer.arm_stats import ArmStats, ArmSums
from optimizer.errors import ExperimentError
from optimizer.experiments import Experiment, ExperimentStore, Metric, Status
from optimizer.stats import (
    Estimate,
    mean_estimate,
    proportions_p,
    ratio_estimate,
    welch_p,
    wilson,
    z_p,
)

LOWER_IS_BETTER = {Metric.COST_PER_VALID: True, Metric.QUALITY: False, Metric.LATENCY: True}


@dataclass(frozen=True, kw_only=True)
class ArmResult:
    """One arm's figures (cost in micro-USD, latency in ms, quality as a share)."""

    name: str
    sums: ArmSums
    cost: Estimate
    quality: Estimate
    cost_per_valid: Estimate
    latency: Estimate
    prompt_tokens: int = 0

    def metric(self, metric: Metric) -> Estimate:
        """The estimate the experiment is decided on."""
        match metric:
            case Metric.COST_PER_VALID:
                return self.cost_per_valid
            case Metric.QUALITY:
                return self.quality
            case _:
                return self.latency


@dataclass(frozen=True, kw_only=True)
class Comparison:
    """The leader against one other arm."""

    other: str
    p_value: float
    significant: bool


@dataclass(frozen=True, kw_only=True)
class Report:
    """Where an experiment stands and what it says."""

    experiment: Experiment
    arms: list[ArmResult]
    leader: str
    comparisons: list[Comparison]
    ready: bool
    """Whether the stopping rule is met (enough samples in every arm, or time is up)."""
    why_not_ready: str
    winner: str | None
    """The leader, when the rule is met and it beats every other arm significantly."""
    verdict: str


def arm_result(name: str, sums: ArmSums, alpha: float, prompt_tokens: int = 0) -> ArmResult:
    """The estimates of one arm from its sums."""
    cost = mean_estimate(sums.cost, sums.cost2, sums.n, alpha)
    quality = wilson(sums.valid, sums.judged, alpha)
    return ArmResult(
        name=name,
        sums=sums,
        cost=cost,
        quality=quality,
        cost_per_valid=ratio_estimate(cost, quality, alpha),
        latency=mean_estimate(sums.lat, sums.lat2, sums.n, alpha),
        prompt_tokens=prompt_tokens,
    )


def compare(metric: Metric, a: ArmResult, b: ArmResult) -> float:
    """p-value that a and b differ on the metric."""
    match metric:
        case Metric.QUALITY:
            return proportions_p(a.sums.valid, a.sums.judged, b.sums.valid, b.sums.judged)
        case Metric.LATENCY:
            return welch_p(a.latency, b.latency)
        case _:
            return z_p(a.cost_per_valid, b.cost_per_valid)


def decide(experiment: Experiment, arms: list[ArmResult], at_ms: int | None = None) -> Report:
    """The report of an experiment from its arms' results."""
    metric = experiment.metric
    sign = 1 if LOWER_IS_BETTER[metric] else -1

    def score(arm: ArmResult) -> float:
        value = arm.metric(metric).value
        return math.inf if math.isnan(value) else sign * value

    leader = min(arms, key=score)
    others = [arm for arm in arms if arm is not leader]
    bonferroni = experiment.alpha / max(len(others), 1)
    comparisons = []
    for other in others:
        p = compare(metric, leader, other)
        comparisons.append(Comparison(other=other.name, p_value=p, significant=p < bonferroni))
    elapsed_s = ((at_ms or now_ms()) - experiment.started_ms) / 1000
    needs_quality = metric is not Metric.LATENCY
    short = [
        f"{arm.name} {count}/{experiment.min_samples}"
        for arm in arms
        if (count := arm.sums.judged if needs_quality else arm.sums.n) < experiment.min_samples
    ]
    timed_out = elapsed_s >= experiment.max_duration_s
    ready = not short or timed_out
    why = "" if ready else "waiting for samples: " + ", ".join(short)
    winner = None
    if not ready and not any(arm.sums.n for arm in arms):
        verdict = f"not ready ({why}); no arm has a sample yet"
    elif not ready:
        verdict = f"not ready ({why}); {leader.name} leads so far"
    elif all(c.significant for c in comparisons):
        winner = leader.name
        worst = max(c.p_value for c in comparisons)
        verdict = f"winner: {leader.name} on {metric} (p={worst:.3g} < {bonferroni:.3g})"
    else:
        close = [c for c in comparisons if not c.significant]
        detail = ", ".join(f"{c.other} p={c.p_value:.3g}" for c in close)
        verdict = (
            f"no winner: {leader.name} leads on {metric} but the difference is not "
            f"significant ({detail}; alpha {bonferroni:.3g})"
        )
    return Report(
        experiment=experiment,
        arms=arms,
        leader=leader.name,
        comparisons=comparisons,
        ready=ready,
        why_not_ready=why,
        winner=winner,
        verdict=verdict,
    )


async def build_report(store: ExperimentStore, stats: ArmStats, name: str) -> Report:
    """The report of a stored experiment, from its arms' sums in Redis."""
    experiment = await store.get(name)
    arms = [
        arm_result(arm.name, await stats.sums(name, arm.name), experiment.alpha, arm.prompt_tokens)
        for arm in experiment.arms
    ]
    return decide(experiment, arms)


def quality_problem(report: Report, arm_name: str) -> str | None:
    """Why an arm does not hold the quality floor, or None when it does.

    It must have quality results, a share of valid answers at or above the floor, and not
    be significantly worse than the control arm.
    """
    experiment = report.experiment
    arm = next(a for a in report.arms if a.name == arm_name)
    if arm.sums.judged == 0:
        return f"{arm_name} has no quality signals yet"
    if arm.quality.value < experiment.quality_floor:
        return (
            f"{arm_name} holds {arm.quality.value:.1%} valid answers, under the quality floor "
            f"of {experiment.quality_floor:.1%}"
        )
    control = next(a for a in report.arms if a.name == experiment.control_arm)
    if control is not arm and control.sums.judged:
        p = proportions_p(arm.sums.valid, arm.sums.judged, control.sums.valid, control.sums.judged)
        if arm.quality.value < control.quality.value and p < experiment.alpha:
            return (
                f"{arm_name} is significantly less often valid than {control.name} "
                f"({arm.quality.value:.1%} vs {control.quality.value:.1%}, p={p:.3g})"
            )
    return None


async def promote(
    store: ExperimentStore, stats: ArmStats, name: str, arm: str | None = None
) -> tuple[Report, FlagChange]:
    """Make the winner (or the named arm, if it is the winner) the flag default.

    Raises ExperimentError with the reason when there is no significant winner, the named
    arm is not it, or it does not hold the quality floor.
    """
    report = await build_report(store, stats, name)
    experiment = report.experiment
    if experiment.status is not Status.RUNNING:
        raise ExperimentError(f"experiment {name} is {experiment.status}, not running")
    if report.winner is None:
        raise ExperimentError(f"nothing to promote: {report.verdict}")
    chosen = arm or report.winner
    if chosen != report.winner:
        raise ExperimentError(f"{chosen} is not the winner: {report.verdict}")
    problem = quality_problem(report, chosen)
    if problem is not None:
        raise ExperimentError(f"refusing to promote {chosen}: {problem}")
    change = await store.end(experiment, experiment.arm(chosen))
    return report, change


def render(report: Report) -> str:
    """The report as a table a person reads."""
    experiment = report.experiment
    scope = "/".join(
        part for part in (experiment.tenant, experiment.agent, experiment.task_type) if part
    )
    lines = [
        f"experiment {experiment.name} [{experiment.status}] scope {scope or 'all traffic'}; "
        f"metric {experiment.metric}; stop at {experiment.min_samples} per arm or "
        f"{experiment.max_duration_s}s; quality floor {experiment.quality_floor:.0%}",
        f"{'arm':<14}{'n':>6}  {'cost/req µ$ [95% CI]':<24}{'valid [95% CI]':<30}"
        f"{'cost/valid µ$':<24}{'latency ms':<18}{'prompt tokens':>13}",
    ]
    for arm in report.arms:
        tokens = str(arm.prompt_tokens) if arm.prompt_tokens else "-"
        lines.append(
            f"{arm.name:<14}{arm.sums.n:>6}  {_micro(arm.cost):<24}{_share(arm.quality):<30}"
            f"{_micro(arm.cost_per_valid):<24}{_ms(arm.latency):<18}{tokens:>13}"
        )
    for c in report.comparisons:
        mark = "significant" if c.significant else "not significant"
        lines.append(f"  {report.leader} vs {c.other}: p={c.p_value:.3g} ({mark})")
    lines.append(report.verdict)
    return "\n".join(lines) + "\n"


def as_json(report: Report) -> str:
    """The report as JSON (`experiment report --json`): every arm's sums and estimates."""
    return msgspec.json.format(msgspec.json.encode(report), indent=2).decode()


def _micro(e: Estimate) -> str:
    if not math.isfinite(e.value):
        return "-"
    return f"{e.value:.1f} [{e.low:.1f}, {e.high:.1f}]"


def _share(e: Estimate) -> str:
    if math.isnan(e.value):
        return "-"
    return f"{e.value:.1%} [{e.low:.1%}, {e.high:.1%}] n={e.n}"


def _ms(e: Estimate) -> str:
    if not math.isfinite(e.value):
        return "-"
    high = f"{e.high:.0f}" if math.isfinite(e.high) else "inf"
    return f"{e.value:.0f} [{e.low:.0f}, {high}]"
